"""What a routing policy buys: expected incremental conversions, margin and cost per setting.

The curves a marketer reads to pick an ad budget or a threshold. Each point is the real
``route_batch`` on the same scored visitors with one setting changed, so the curve is what
the batch job would do, holdout included. Expected incremental conversions of a contacted
visitor are their channel's ``Δp`` (``serving.policy.lift``: measured, or the policy's
assumption ``score × incremental_lift``); margin is that times order value and margin share.

Pure: ``RoutingInputs`` come from ``serving.batch.population``, which scores the lake's
visitors with a model as of a moment.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from serving.policy.lift import LiftModel, incremental_probability
from serving.policy.routing import (
    ADS,
    EMAIL,
    HOLDOUT,
    AdBudget,
    RoutedBatch,
    RoutingInputs,
    RoutingPolicy,
    route_batch,
)


def policy_outcome(
    inputs: RoutingInputs, policy: RoutingPolicy, lift: LiftModel | None = None
) -> dict[str, float]:
    """Contacts, cost and expected incremental conversions and margin of one policy."""
    return outcome_of(route_batch(inputs, policy, lift=lift), inputs, policy, lift)


def outcome_of(
    decided: RoutedBatch,
    inputs: RoutingInputs,
    policy: RoutingPolicy,
    lift: LiftModel | None = None,
) -> dict[str, float]:
    value = np.where(np.isnan(inputs.order_value), policy.default_order_value, inputs.order_value)
    row: dict[str, float] = {"holdout": float(np.count_nonzero(decided.route == HOLDOUT))}
    conversions = margin = cost = 0.0
    for name, code, channel in (("email", EMAIL, policy.email), ("ads", ADS, policy.ads)):
        sent = decided.route == code
        gained = incremental_probability(inputs.score[sent], name, channel.incremental_lift, lift)
        row[f"{name}_contacts"] = float(np.count_nonzero(sent))
        row[f"{name}_conversions"] = float(gained.sum())
        conversions += float(gained.sum())
        margin += float((gained * value[sent] * policy.margin).sum())
        cost += float(np.count_nonzero(sent)) * channel.unit_cost
    row |= {
        "incremental_conversions": conversions,
        "incremental_margin": margin,
        "cost": cost,
        "net_value": margin - cost,
    }
    return row


def budget_curve(
    inputs: RoutingInputs, policy: RoutingPolicy, budgets: Sequence[float]
) -> pl.DataFrame:
    """One row per ad budget (maximum spend per run)."""
    rows = []
    for budget in budgets:
        changed = policy.model_copy(
            update={"ad_budget": policy.ad_budget.model_copy(update={"max_spend": budget})}
        )
        rows.append({"ad_budget": float(budget), **policy_outcome(inputs, changed)})
    return pl.DataFrame(rows)


def unconstrained_ad_spend(inputs: RoutingInputs, policy: RoutingPolicy) -> float:
    """Ad spend with no budget: every ad worth its cost bought. A budget above it buys nothing
    more, so budget curves need not go further."""
    unlimited = policy.model_copy(update={"ad_budget": AdBudget()})
    return policy_outcome(inputs, unlimited)["ads_contacts"] * policy.ads.unit_cost


def threshold_curve(
    inputs: RoutingInputs, policy: RoutingPolicy, thresholds: Sequence[float]
) -> pl.DataFrame:
    """One row per minimum expected value a contact must clear."""
    rows = [
        {
            "min_expected_value": float(threshold),
            **policy_outcome(inputs, policy.model_copy(update={"min_expected_value": threshold})),
        }
        for threshold in thresholds
    ]
    return pl.DataFrame(rows)
