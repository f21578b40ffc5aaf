"""The decision, measured: the learned routing policy against the best possible one, on true
incremental profit, over campaign rounds on a simulated shop that responds to its contacts.

    python -m benchmarks.decision [--quick] [--seeds N] [--rounds N] [--visitors N]

Per seed, as a user runs it (the CLI, in process): simulate a shop of ``--visitors`` for
``REVEAL_DAYS + 7 × rounds`` days with only ``REVEAL_DAYS`` revealed, ingest, train and
promote a model, then ``--rounds`` times: ``score`` (valued with the live lift fit, none in
round 1), ``respond`` (the simulator plays the run's routes and reveals the week after it),
``ingest`` what the shop did, ``lift`` (refit from every run whose outcomes are in).

Each round, on the run's scored visitors, every policy decides who gets email, an ad, or
nothing, and is scored on **true** incremental profit: ``Σ Δp_true × order value × margin −
cost`` over its contacts, ``Δp_true`` the simulator's exact effect of that contact on that
visitor (``features.simulation.response.true_effects``). Policies, each a pure decision rule
(no holdout, no exploration: what it would do, not what it measures):

- ``oracle``: knows each visitor's true effects (the ceiling);
- ``learned``: the product's routing with the lift the round was scored with;
- ``fixed_lift``: the product's routing with the assumed relative lift (today's default);
- ``propensity_first``: highest score first, email where subscribed, else an ad;
- ``email_all``: every subscribed visitor gets an email, no ads;
- ``random``: random order, email where subscribed, else an ad.

All share the ad budget (``--ad-budget-share`` of the reach cost of the ad-consented
visitors active in the feature window before round 1). The policies that value contacts
(oracle, learned, fixed lift) email whoever they find worth it; the two that only rank
(propensity first, random) email as many as ``learned`` does, best first by their ranking.
Consent and the purchase suppression hold for all.

Beside each round, what ``propensity measure`` found: the email and ads effect measured on
the round's holdout, with its interval, and the simulator's true mean effect among the
contacted.

Printed: a table per round (profit, and as a fraction of the oracle's, mean and range over
seeds; then the profit of the emails and of the ads apart, to see which channel a policy
loses on), the learned lift per band beside the true mean effect of the visitors in the band,
and the last line ``RESULT fraction_of_oracle=… vs_fixed_lift=… vs_propensity_first=…
vs_email_all=… rounds=… seeds=… lift_error_pp_email=… lift_error_pp_ads=…
uplift_beats_lift=k/n``: the last round's learned profit as a fraction of the oracle's, its
ratio to each baseline's (mean over seeds), and in how many channels of the last round a
per-visitor uplift model (``propensity uplift``) out-ranks the lift curve on Qini. Target
(issue 18): after 3 rounds of learning, at least 0.8 of the oracle, and ahead of fixed lift,
propensity first and email-all by more than the seed-to-seed spread.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from features.batch import build_features
from features.definitions import FEATURE_COLUMNS
from features.events.schema import AdsConsent, EmailStatus
from features.ingest.contacts import read_contacts
from serving.campaign.fits import latest_fit
from serving.model.scoring import ROUTING_FEATURES
from serving.model.uplift import load_uplift_model, predicted_uplift, usable_uplift
from serving.policy.lift import LiftModel
from serving.policy.routing import ADS, EMAIL, RoutingInputs, RoutingPolicy, ads_limit, route_batch

REVEAL_DAYS = 60
ROUND_DAYS = 7
LOOKBACK = timedelta(days=21)
POLICIES = ("oracle", "learned", "fixed_lift", "propensity_first", "email_all", "random")
NONE_CODE = 0
Choice = npt.NDArray[np.int8]


@dataclass(frozen=True)
class Population:
    """A round's scored visitors, the routing inputs and each visitor's true effects."""

    inputs: RoutingInputs
    delta_email: npt.NDArray[np.float64]
    delta_ads: npt.NDArray[np.float64]


def _env(data_dir: Path, ad_budget: float | None) -> dict[str, str]:
    env = {
        "PROPENSITY_DATA_DIR": str(data_dir),
        "PROPENSITY_LOG_LEVEL": "WARNING",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "PROPENSITY_SNAPSHOTS__LOOKBACK": "P21D",
        "PROPENSITY_SNAPSHOTS__SLIDE": "P7D",
        "PROPENSITY_SNAPSHOTS__HORIZON": "P7D",
        "PROPENSITY_TRAINING__N_ESTIMATORS": "150",
        # Enough held out to see the email effect by band within a few rounds.
        "PROPENSITY_SERVING__ROUTING__EMAIL__MIN_DETECTABLE_EFFECT": "0.004",
    }
    if ad_budget is not None:
        env["PROPENSITY_SERVING__ROUTING__AD_BUDGET__MAX_SPEND"] = f"{ad_budget:.4f}"
    return env


def _cli(env: dict[str, str], *args: str) -> Any:
    from typer.testing import CliRunner

    from propensity.cli import app

    result = CliRunner().invoke(app, [*args, "--json"], env=env)
    if result.exit_code != 0:
        raise RuntimeError(
            f"propensity {' '.join(args)} failed:\n{result.output}{result.stderr}"
        ) from result.exception
    return json.loads(result.stdout.strip().splitlines()[-1])


def _population(
    data_dir: Path, run: dict[str, Any], effects_file: str, lift: LiftModel | None
) -> Population:
    """The run's visitors with what routing needs (the model's own features as of the run,
    and the predictions of the uplift models ``lift`` ranks channels by) and the simulator's
    true effects at the run's as_of."""
    from propensity import jobs
    from propensity.settings import Settings

    settings = Settings(data_dir=data_dir)
    scores = pl.read_parquet(run["files"]["scores"], columns=["visitor_id", "score"])
    contract = jobs.model_contract(settings, str(run["model_version"]))
    as_of = datetime.fromisoformat(run["as_of"])
    features = build_features(settings.lake_dir, as_of, config=contract.feature_config)
    assert isinstance(features, pl.LazyFrame)
    frame = (
        scores.join(features.collect(), on="visitor_id", how="left")
        .join(read_contacts(settings.lake_dir), on="visitor_id", how="left")
        .join(pl.read_parquet(effects_file), on="visitor_id", how="left")
    )
    if frame.get_column("delta_email").null_count():
        raise RuntimeError("scored visitors the simulator has no effect for")
    inputs = RoutingInputs(
        visitor_id=frame.get_column("visitor_id"),
        score=frame.get_column("score").to_numpy(),
        email_status=frame.get_column("email_status").fill_null("unknown").to_numpy(),
        ads_consent=frame.get_column("ads_consent").fill_null("unknown").to_numpy(),
        days_since_last_purchase=frame.get_column(ROUTING_FEATURES[0]).cast(pl.Float64).to_numpy(),
        order_value=frame.get_column(ROUTING_FEATURES[1]).cast(pl.Float64).to_numpy(),
        predicted_uplift=_predicted_uplift(settings, contract, lift, frame),
    )
    return Population(
        inputs,
        frame.get_column("delta_email").to_numpy(),
        frame.get_column("delta_ads").to_numpy(),
    )


def _predicted_uplift(
    settings: Any, contract: Any, lift: LiftModel | None, frame: pl.DataFrame
) -> dict[str, np.ndarray] | None:
    """As the scoring run predicted them: the uplift models of ``lift`` it could use."""
    from functools import partial

    from propensity import jobs

    paths = jobs.serving_paths(settings)
    load = partial(
        load_uplift_model, tracking_uri=paths.tracking_uri, cache_dir=paths.model_cache_dir
    )
    computed = {*contract.feature_columns, *ROUTING_FEATURES}
    _, scorers = usable_uplift(lift, load, contract.feature_config, computed)
    matrix = frame.select(pl.col(c).cast(pl.Float64) for c in FEATURE_COLUMNS).to_numpy()
    return predicted_uplift(scorers, matrix)


def decision_rule(policy: RoutingPolicy) -> RoutingPolicy:
    """The policy as a rule: nobody held out or explored."""
    quiet = {"holdout_share": 0.0, "min_detectable_effect": None, "exploration_share": 0.0}
    return policy.model_copy(
        update={
            "email": policy.email.model_copy(update=quiet),
            "ads": policy.ads.model_copy(update=quiet),
        }
    )


def _eligible(inputs: RoutingInputs, policy: RoutingPolicy) -> tuple[np.ndarray, np.ndarray]:
    """Per visitor: may be emailed, may be shown an ad (consent, and no recent purchase)."""
    open_ = ~(inputs.days_since_last_purchase < policy.suppression_days)
    email = (inputs.email_status == EmailStatus.SUBSCRIBED.value) & open_
    ads = (inputs.ads_consent == AdsConsent.GRANTED.value) & open_
    return np.asarray(email, dtype=bool), np.asarray(ads, dtype=bool)


def routed_choice(
    population: Population,
    policy: RoutingPolicy,
    *,
    lift: LiftModel | None = None,
    truth: bool = False,
) -> Choice:
    """What the product's routing decides (with the true effects, for the oracle)."""
    inputs = population.inputs
    if truth:
        uplift = {"email": population.delta_email, "ads": population.delta_ads}
        inputs = replace(inputs, uplift=uplift)
    return route_batch(inputs, decision_rule(policy), lift=lift).route.astype(np.int8)


def ranked_choice(
    population: Population, policy: RoutingPolicy, order: np.ndarray, volume: int | None
) -> Choice:
    """Down ``order``: email where allowed (up to ``volume``), else an ad (up to the budget)."""
    email_ok, ads_ok = _eligible(population.inputs, policy)
    choice = np.zeros(len(order), dtype=np.int8)
    email_order = order[email_ok[order]]
    choice[email_order[: len(email_order) if volume is None else volume]] = EMAIL
    ad_order = order[ads_ok[order] & (choice[order] != EMAIL)]
    choice[ad_order[: ads_limit(policy, len(order))]] = ADS
    return choice


def true_profit(population: Population, choice: Choice, policy: RoutingPolicy) -> float:
    """Σ over the contacted: true Δp × order value × margin − the contact's cost."""
    return sum(channel_profits(population, choice, policy).values())


def channel_profits(
    population: Population, choice: Choice, policy: RoutingPolicy
) -> dict[str, float]:
    """``true_profit`` of the emails and of the ads apart: where a policy loses to another."""
    inputs = population.inputs
    value = np.where(np.isnan(inputs.order_value), policy.default_order_value, inputs.order_value)
    profits = {}
    for name, code, delta, channel in (
        ("email", EMAIL, population.delta_email, policy.email),
        ("ads", ADS, population.delta_ads, policy.ads),
    ):
        sent = choice == code
        gained = float((delta * value)[sent].sum())
        profits[name] = gained * policy.margin - float(sent.sum()) * channel.unit_cost
    return profits


def compare_policies(
    population: Population, policy: RoutingPolicy, lift: LiftModel | None, seed: int
) -> dict[str, dict[str, float]]:
    """Each policy's true profit, emails and ad contacts on one round's population."""
    learned = routed_choice(population, policy, lift=lift)
    volume = int(np.count_nonzero(learned == EMAIL))
    n = len(learned)
    email_ok, _ = _eligible(population.inputs, policy)
    choices = {
        "oracle": routed_choice(population, policy, truth=True),
        "learned": learned,
        "fixed_lift": routed_choice(population, policy),
        "propensity_first": ranked_choice(
            population, policy, np.argsort(-population.inputs.score, kind="stable"), volume
        ),
        "email_all": np.where(email_ok, EMAIL, NONE_CODE).astype(np.int8),
        "random": ranked_choice(
            population, policy, np.random.default_rng(seed).permutation(n), volume
        ),
    }
    return {
        name: {
            "profit": true_profit(population, choice, policy),
            **{
                f"{channel}_profit": profit
                for channel, profit in channel_profits(population, choice, policy).items()
            },
            "emails": float(np.count_nonzero(choice == EMAIL)),
            "ads": float(np.count_nonzero(choice == ADS)),
        }
        for name, choice in choices.items()
    }


def lift_against_truth(
    lift: LiftModel | None, population: Population
) -> dict[str, list[dict[str, float]]]:
    """Per channel and band of ``lift``: its Δp and interval beside the mean true effect of
    the round's visitors in the band."""
    if lift is None:
        return {}
    score = population.inputs.score
    result: dict[str, list[dict[str, float]]] = {}
    for name, truth in (("email", population.delta_email), ("ads", population.delta_ads)):
        if name not in lift.channels:
            continue
        rows = []
        for band in lift.channels[name].bands:
            inside = (score >= band.lo) & (score < band.hi)
            if inside.any():
                rows.append({
                    "lo": band.lo, "hi": band.hi, "learned": band.delta, "low": band.low,
                    "high": band.high, "true": float(truth[inside].mean()),
                    "visitors": float(inside.sum()),
                })  # fmt: skip
        result[name] = rows
    return result


def _active_granted(data_dir: Path) -> int:
    """Ad-consented visitors seen in the feature window before the latest event: about the
    audience a run can show ads to."""
    from features.lake import scan_events

    lake = data_dir / "lake"
    events = scan_events(lake)
    latest = events.select(pl.col("event_time").max()).collect().item()
    active = (
        events.filter(pl.col("event_time") >= latest - LOOKBACK)
        .select("visitor_id")
        .unique()
        .collect()
    )
    granted = read_contacts(lake).filter(pl.col("ads_consent") == AdsConsent.GRANTED.value)
    return active.join(granted, on="visitor_id").height


def run_seed(seed: int, visitors: int, rounds: int, ad_budget_share: float) -> list[dict[str, Any]]:
    """Every round of one shop: the policies compared and the lift against the truth."""
    with tempfile.TemporaryDirectory(prefix="decision-") as tmp:
        data = Path(tmp) / "data"
        days = REVEAL_DAYS + ROUND_DAYS * rounds
        sim = data / "simulated"
        _cli(_env(data, None), "simulate", "--visitors", str(visitors), "--days", str(days),
             "--reveal-days", str(REVEAL_DAYS), "--seed", str(seed))  # fmt: skip
        _cli(_env(data, None), "ingest", str(sim / "events.csv"))
        _cli(_env(data, None), "ingest", str(sim / "contacts.csv"), "--format", "contacts")
        policy = RoutingPolicy()
        budget = ad_budget_share * _active_granted(data) * policy.ads.unit_cost
        env = _env(data, budget)
        policy = policy.model_copy(
            update={"ad_budget": policy.ad_budget.model_copy(update={"max_spend": budget})}
        )
        _cli(env, "train")
        _cli(env, "promote")
        results = []
        for number in range(1, rounds + 1):
            lift = latest_fit(data / "outputs")
            run = _cli(env, "score")
            played = _cli(env, "respond")
            population = _population(data, run, played["files"]["effects"], lift)
            results.append({
                "seed": seed, "round": number, "visitors": len(population.delta_email),
                "policies": compare_policies(population, policy, lift, seed * 100 + number),
                "lift": lift_against_truth(lift, population),
            })  # fmt: skip
            _cli(env, "ingest", played["files"]["events"])
            results[-1]["measured"] = _measured(env, played["files"]["effects"])
            _cli(env, "lift", "--until", played["window_end"])
            if number == rounds:
                checked = _cli(env, "uplift", "--until", played["window_end"])
                results[-1]["uplift"] = checked["channels"]
        return results


def _measured(env: dict[str, str], effects_file: str) -> dict[str, dict[str, float]]:
    """Per route: the converted difference measured on the run's holdout, its interval, and
    the simulator's true mean effect among the contacted."""
    found = _cli(env, "measure", "--summary", "--truth", effects_file)
    truth = found.get("true_effects", {})
    result = {}
    for segment in found["segments"]:
        if segment["by"] != "route_group":
            continue
        rate = next(r for r in segment["rates"] if r["outcome"] == "converted")
        result[segment["segment"]] = {
            "measured": rate["difference"], "low": rate["difference_low"],
            "high": rate["difference_high"], "true": truth.get(segment["segment"], float("nan")),
            "treated": rate["treated"], "control": rate["control"],
        }  # fmt: skip
    return result


def _spread(values: list[float]) -> str:
    return f"{np.mean(values):9.1f} [{min(values):8.1f}, {max(values):8.1f}]"


def report(results: list[dict[str, Any]], rounds: int) -> dict[str, float | int | str]:
    """Print the tables; return the RESULT figures."""
    seeds = sorted({r["seed"] for r in results})
    for number in range(1, rounds + 1):
        this = [r for r in results if r["round"] == number]
        print(f"\nround {number} ({len(seeds)} seeds; true incremental profit, mean [min, max])")
        print(
            f"{'policy':18} {'profit':>31} {'of oracle':>20} {'emails':>9} {'ads':>8} "
            f"{'email profit':>13} {'ads profit':>11}"
        )
        for name in POLICIES:
            profit = [r["policies"][name]["profit"] for r in this]
            share = [
                r["policies"][name]["profit"] / r["policies"]["oracle"]["profit"] for r in this
            ]
            mean = {
                key: np.mean([r["policies"][name][key] for r in this])
                for key in ("emails", "ads", "email_profit", "ads_profit")
            }
            print(
                f"{name:18} {_spread(profit):>31} {np.mean(share):8.3f} "
                f"[{min(share):.2f}, {max(share):.2f}] {mean['emails']:9.0f} {mean['ads']:8.0f} "
                f"{mean['email_profit']:13.1f} {mean['ads_profit']:11.1f}"
            )
    print("\nmeasured on each round's holdout (converted, pp) against the true mean effect")
    for r in results:
        for route, m in r.get("measured", {}).items():
            print(
                f"seed {r['seed']} round {r['round']} {route:18} measured "
                f"{m['measured'] * 100:+6.2f} [{m['low'] * 100:+6.2f}, {m['high'] * 100:+6.2f}]"
                f"  true {m['true'] * 100:+6.2f}  ({m['treated']:,}/{m['control']:,})"
            )
    last = [r for r in results if r["round"] == rounds]
    errors: dict[str, list[float]] = {"email": [], "ads": []}
    print(f"\nlearned lift used in round {rounds} against the true mean effect, in pp")
    for r in last:
        for name, bands in r["lift"].items():
            for band in bands:
                errors[name].append(abs(band["learned"] - band["true"]) * 100)
                print(
                    f"seed {r['seed']} {name:5} [{band['lo']:.4f}, {band['hi']:.4f}) "
                    f"learned {band['learned'] * 100:6.3f} [{band['low'] * 100:6.3f}, "
                    f"{band['high'] * 100:6.3f}]  true {band['true'] * 100:6.3f}  "
                    f"({band['visitors']:,.0f} visitors)"
                )

    print("\nper-visitor uplift model against the lift curve, Qini on the last round")
    wins = total = 0
    for r in last:
        for check in r.get("uplift", []):
            if check["qini_uplift"] is None:
                continue
            total += 1
            wins += check["qini_uplift"] > check["qini_lift"]
            print(
                f"seed {r['seed']} {check['channel']:5} uplift {check['qini_uplift']:+.5f}  "
                f"lift curve {check['qini_lift']:+.5f}  score {check['qini_score']:+.5f}"
            )

    def ratio(name: str) -> float:
        return float(np.mean([
            r["policies"]["learned"]["profit"] / r["policies"][name]["profit"] for r in last
        ]))  # fmt: skip

    return {
        "fraction_of_oracle": ratio("oracle"),
        "vs_fixed_lift": ratio("fixed_lift"),
        "vs_propensity_first": ratio("propensity_first"),
        "vs_email_all": ratio("email_all"),
        "rounds": rounds,
        "seeds": len(seeds),
        "lift_error_pp_email": float(np.mean(errors["email"])) if errors["email"] else float("nan"),
        "lift_error_pp_ads": float(np.mean(errors["ads"])) if errors["ads"] else float("nan"),
        "uplift_beats_lift": f"{wins}/{total}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller shop")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--rounds", type=int, default=4, help="scoring rounds (learning: one fewer)"
    )
    parser.add_argument(
        "--visitors", type=int, default=None, help="[default: 40,000; quick 20,000]"
    )
    parser.add_argument(
        "--ad-budget-share", type=float, default=0.2,
        help="ad budget per run: reach cost of this share of the ad-consented visitors",
    )  # fmt: skip
    parser.add_argument("--only-seed", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    visitors = args.visitors or (20_000 if args.quick else 40_000)
    if args.only_seed is not None:
        print(json.dumps(run_seed(args.only_seed, visitors, args.rounds, args.ad_budget_share)))
        return
    results = []
    for seed in range(1, args.seeds + 1):
        # A fresh process per shop: MLflow keeps per-process state about its stores.
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.decision", "--only-seed", str(seed),
             "--visitors", str(visitors), "--rounds", str(args.rounds),
             "--ad-budget-share", str(args.ad_budget_share)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        results += json.loads(done.stdout.strip().splitlines()[-1])
        print(f"seed {seed} done", flush=True)
    figures = report(results, args.rounds)
    print(
        "RESULT "
        + " ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
        )
    )


if __name__ == "__main__":
    main()
