"""Holdout draws are pinned: a change to the hash would silently reshuffle every holdout."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.policy.holdout import CHANNEL_KEYS, fnv1a_64, fnv1a_64_bytes, holdout_draws

MASK = (1 << 64) - 1


def _reference(visitor_id: str, salt: str, channel: str) -> float:
    """The same hash, one visitor at a time in plain Python."""
    state = 0xCBF29CE484222325
    for byte in [*salt.encode(), 0xFF, *visitor_id.encode()]:
        state = ((state ^ byte) * 0x100000001B3) & MASK
    state ^= CHANNEL_KEYS[channel]
    state ^= state >> 33
    state = (state * 0xFF51AFD7ED558CCD) & MASK
    state ^= state >> 33
    state = (state * 0xC4CEB93E75C9E2B3) & MASK
    state ^= state >> 33
    return (state >> 11) * 2.0**-53


#: FNV-1a 64 test vectors published with the algorithm (draft-eastlake-fnv, section 7).
PUBLISHED_FNV1A_64 = {"": 0xCBF29CE484222325, "a": 0xAF63DC4C8601EC8C, "foobar": 0x85944171F73967E8}


def test_the_hash_core_is_fnv1a_64_as_published() -> None:
    """Both paths of the hash the draws start from, against the published vectors rather
    than values this code produced itself."""
    texts = list(PUBLISHED_FNV1A_64)
    expected = np.array(list(PUBLISHED_FNV1A_64.values()), dtype=np.uint64)
    for kind in (texts, pl.Series(texts), pa.array(texts)):
        np.testing.assert_array_equal(fnv1a_64(kind), expected)
    assert [fnv1a_64_bytes(t.encode()) for t in texts] == expected.tolist()


def test_pinned_values() -> None:
    draws = holdout_draws(pl.Series(["alice", "bob", "visitor-123456", "é"]), "propensity")
    np.testing.assert_allclose(
        draws["email"],
        [0.460072247492157, 0.14401865921334933, 0.5810860327492192, 0.8407221060064486],
        rtol=0,
        atol=1e-15,
    )
    np.testing.assert_allclose(
        draws["ads"],
        [0.05996746837788969, 0.8423739620318379, 0.04151503892840691, 0.8659166567987645],
        rtol=0,
        atol=1e-15,
    )


@settings(deadline=None)
@given(ids=st.lists(st.text(min_size=0, max_size=20), max_size=20), salt=st.text(min_size=1))
def test_vectorised_and_scalar_paths_equal_reference(ids: list[str], salt: str) -> None:
    vectorised = holdout_draws(pl.Series(ids, dtype=pl.String), salt)
    scalar = holdout_draws(ids[:16], salt)
    for channel in CHANNEL_KEYS:
        expected = np.array([_reference(v, salt, channel) for v in ids], dtype=np.float64)
        np.testing.assert_array_equal(vectorised[channel], expected)
        np.testing.assert_array_equal(scalar[channel], expected[:16])


def test_input_kinds_agree_and_slices_are_respected() -> None:
    ids = ["x", "a", "bb", "ccc"]
    from_list = holdout_draws(ids[1:], "s")["email"]
    from_polars = holdout_draws(pl.Series(ids).slice(1), "s")["email"]
    from_arrow = holdout_draws(pa.chunked_array([pa.array(ids[:2]), pa.array(ids[2:])]), "s")
    np.testing.assert_array_equal(from_list, from_polars)
    np.testing.assert_array_equal(from_list, from_arrow["email"][1:])


def test_roughly_uniform() -> None:
    draws = holdout_draws([f"visitor-{i}" for i in range(20_000)], "salt")["ads"]
    counts = np.histogram(draws, bins=10, range=(0, 1))[0]
    assert counts.min() > 1_800 and counts.max() < 2_200


def test_minimum_detectable_effect_by_hand() -> None:
    """1,000 sent and 1,000 held out at a 1% base rate: (1.960 + 0.842) × √(0.01 × 0.99 ×
    2/1000) = 1.25 pp; four times the visitors halve it; without a holdout nothing shows."""
    from serving.policy.holdout import minimum_detectable_effect

    assert minimum_detectable_effect(0.01, 1_000, 1_000) == pytest.approx(0.012466, rel=1e-3)
    assert minimum_detectable_effect(0.01, 4_000, 4_000) == pytest.approx(0.012466 / 2, rel=1e-3)
    assert minimum_detectable_effect(0.01, 1_000, 0) == float("inf")
