"""Routing with a measured lift: consent holds whatever the lift says, a larger effect never
lowers a visitor's value, and without a measurement the assumption decides as before."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.policy.lift import BandLift, ChannelLift, LiftModel, incremental_probability
from serving.policy.routing import (
    ADS,
    EMAIL,
    EXPLORATION,
    RoutingPolicy,
    expected_values,
    route_batch,
)
from tests.unit.serving.policy.test_routing import _inputs, policies, visitor_rows


@st.composite
def lift_models(draw: st.DrawFn) -> LiftModel:
    """Bands over [0, 1] with any effect, harmful ones included, for one or both channels."""
    channels = {}
    for name in draw(st.sets(st.sampled_from(("email", "ads")), min_size=1)):
        edges = sorted(draw(st.sets(st.floats(0.001, 0.999), max_size=4)))
        bounds = [0.0, *edges, 1.0]
        deltas = draw(
            st.lists(st.floats(-0.5, 0.5), min_size=len(bounds) - 1, max_size=len(bounds) - 1)
        )
        channels[name] = ChannelLift(
            tuple(
                BandLift(lo, hi, d, d - 0.1, d + 0.1, 10, 10, d, 0.0)
                for lo, hi, d in zip(bounds[:-1], bounds[1:], deltas, strict=True)
            )
        )
    return LiftModel("lifttest", channels)


@settings(max_examples=150, deadline=None)
@given(rows=visitor_rows, policy=policies, lift=lift_models())
def test_consent_is_never_violated_whatever_the_lift(
    rows: list[dict[str, object]], policy: RoutingPolicy, lift: LiftModel
) -> None:
    inputs = _inputs(rows)
    decided = route_batch(inputs, policy, lift=lift)
    assert np.all(inputs.email_status[decided.route == EMAIL] == "subscribed")
    assert np.all(inputs.ads_consent[decided.route == ADS] == "granted")
    contacted = np.isin(decided.route, [EMAIL, ADS]) & (decided.reason != EXPLORATION)
    assert np.all(decided.expected_value[contacted] > policy.min_expected_value)


@settings(max_examples=100, deadline=None)
@given(rows=visitor_rows, policy=policies, lift=lift_models(), more=st.floats(0, 0.5))
def test_a_larger_effect_never_lowers_the_value(
    rows: list[dict[str, object]], policy: RoutingPolicy, lift: LiftModel, more: float
) -> None:
    inputs = _inputs(rows)
    raised = LiftModel(
        "raised",
        {
            name: ChannelLift(
                tuple(
                    BandLift(b.lo, b.hi, b.delta + more, b.low, b.high, 1, 1, None, b.prior)
                    for b in channel.bands
                )
            )
            for name, channel in lift.channels.items()
        },
    )
    for before, after in zip(
        expected_values(inputs, policy, lift), expected_values(inputs, policy, raised), strict=True
    ):
        assert np.all(after >= before - 1e-12)


@settings(max_examples=60, deadline=None)
@given(rows=visitor_rows, policy=policies)
def test_without_a_measurement_the_assumption_decides(
    rows: list[dict[str, object]], policy: RoutingPolicy
) -> None:
    inputs = _inputs(rows)
    empty = LiftModel("none", {})
    assumed, measured = route_batch(inputs, policy), route_batch(inputs, policy, lift=empty)
    np.testing.assert_array_equal(assumed.route, measured.route)
    np.testing.assert_array_equal(assumed.expected_value, measured.expected_value)
    np.testing.assert_allclose(
        incremental_probability(inputs.score, "email", policy.email.incremental_lift, None),
        inputs.score * policy.email.incremental_lift,
    )


def test_each_visitor_gets_its_bands_effect() -> None:
    bands = ChannelLift(
        (
            BandLift(0.0, 0.1, 0.01, 0.0, 0.02, 5, 5, 0.01, 0.0),
            BandLift(0.1, 1.0, 0.002, 0.0, 0.004, 5, 5, 0.002, 0.0),
        )
    )
    np.testing.assert_allclose(
        bands.at([0.0, 0.05, 0.1, 0.7, 1.0]), [0.01, 0.01, 0.002, 0.002, 0.002]
    )
