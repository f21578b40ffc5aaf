"""The one command line: thin commands that parse options, build settings and call the packages.

One module on purpose, although it is longer than most: it is the whole command line, a
dozen commands of about thirty lines each, none holding logic, and a reader looks for a
command here first."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

from propensity.logs import configure_logging
from propensity.settings import Settings, SnapshotSettings, describe_settings_error
from propensity.views import (
    files_table,
    ingest_table,
    lift_table,
    measurement_table,
    metrics_table,
    progress_bar,
    round_table,
    scoring_table,
    uplift_table,
)

#: Whether this invocation asked for ``--json``: set once by ``JsonErrorsGroup.main``.
_JSON_ERRORS: ContextVar[bool] = ContextVar("json_errors", default=False)


class JsonErrorsGroup(TyperGroup):
    """The command group, with errors as one JSON object on stdout when ``--json`` is given.

    Errors the commands raise go through ``_fail``; this catches the rest once, for every
    command: usage errors (a bad option) and unexpected exceptions, so a script reading
    ``--json`` output never has to parse text."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        argv = list(kwargs.get("args") or (args[0] if args else None) or sys.argv[1:])
        if "--json" not in argv or kwargs.get("standalone_mode") is False:
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        token = _JSON_ERRORS.set(True)
        try:
            code = super().main(*args, **kwargs)
        except TyperException as problem:  # usage errors: a bad option, a missing argument
            _emit_error(problem.format_message(), "see --help for the options")
            sys.exit(problem.exit_code)
        except typer.Abort:
            _emit_error("aborted", None)
            sys.exit(1)
        except Exception as problem:
            log.exception("unexpected error")  # the traceback goes to stderr, the JSON to stdout
            _emit_error(f"{type(problem).__name__}: {problem}", "rerun without --json for details")
            sys.exit(1)
        finally:
            _JSON_ERRORS.reset(token)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=JsonErrorsGroup,
    name="propensity",
    help="Purchase propensity scoring: ingest events, build features, train, score, route.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)
log = logging.getLogger(__name__)

JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
_CUT_HELP = "(a date is the shop's local midnight in SNAPSHOTS__TIMEZONE; ISO 8601)"
TestCutOption = Annotated[
    str | None, typer.Option("--test-as-of", help=f"the test cut {_CUT_HELP}")
]
ValidationCutOption = Annotated[
    str | None,
    typer.Option(
        "--validation-as-of", help=f"the validation cut [default: test cut - slide] {_CUT_HELP}"
    ),
]
TrainCutsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--train-as-of",
        help="a training cut, repeatable [default: back from the validation cut by the slide]",
    ),
]


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as invalid:
        raise _fail(describe_settings_error(invalid)) from None
    configure_logging(settings.log_level)
    return settings


def _with_cuts(
    settings: Settings, test: str | None, validation: str | None, train: list[str] | None
) -> Settings:
    """The settings with the cuts given on the command line in place of the configured ones."""
    given: dict[str, object] = {
        name: value
        for name, value in (
            ("test_as_of", test), ("validation_as_of", validation), ("train_as_of", train)
        )
        if value
    }  # fmt: skip
    if not given:
        return settings
    try:
        snapshots = SnapshotSettings.model_validate({**settings.snapshots.model_dump(), **given})
    except ValidationError as invalid:
        problems = "; ".join(
            f"--{str(p['loc'][0]).replace('_', '-')}: {p['msg']}" for p in invalid.errors()
        )
        hint = "give a date (2011-09-01) or an ISO 8601 time"
        raise _fail(f"invalid cut: {problems}", hint) from None
    return settings.model_copy(update={"snapshots": snapshots})


def _json_requested() -> bool:
    return _JSON_ERRORS.get()


def _emit_error(message: str, hint: str | None, **detail: object) -> None:
    _emit_json({"error": message, "hint": hint, **detail})


def _fail(problem: str | BaseException, hint: str | None = None, **detail: object) -> typer.Exit:
    """The one way a command reports an error: ``{"error", "hint"}`` on stdout under ``--json``,
    else a red line (and the hint) on stderr. An exception may carry its own ``hint``."""
    message = str(problem)
    hint = hint or getattr(problem, "hint", None)
    if _json_requested():
        _emit_error(message, hint, **detail)
    else:
        err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
        if hint and hint not in message:  # some messages already end in their hint
            err.print(f"hint: {escape(hint)}", soft_wrap=True, highlight=False)
    return typer.Exit(code=1)


def _emit_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")


@app.command()
def ingest(
    files: Annotated[
        list[str],
        typer.Argument(
            help="event file(s) (CSV/JSON lines/Parquet, may be .gz), folders or glob patterns"
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="canonical, taobao, rees46, retailrocket, ga4, cdnow, segment (also RudderStack), "
            "or contacts",
        ),
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="TOML column mapping for your own CSV/Parquet")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Validate files and append their events to the lake; quarantine what is invalid.

    One file: ingested (again, if it was before: its events count as duplicates). A folder,
    a glob or several files: ingested in name order, each once (files whose content is
    already in the lake are skipped), with a summary per file and in total.
    """
    from features.ingest.batch import IngestError
    from features.ingest.incremental import is_pattern
    from features.ingest.mapping import MappingError
    from features.ingest.vendor_files import where_to_get
    from propensity import jobs

    settings = _settings()
    single = len(files) == 1 and not is_pattern(files[0]) and not Path(files[0]).is_dir()
    if single and not Path(files[0]).is_file():
        hint = where_to_get(files[0], fmt, settings.shared_data)
        raise _fail(f"{files[0]}: no such file", hint)
    try:
        with progress_bar(
            err, f"ingesting {Path(files[0]).name}", disable=as_json or fmt == "contacts"
        ) as advance:
            if single:
                report = jobs.ingest(settings, Path(files[0]), fmt, mapping, on_progress=advance)
            else:
                many = jobs.ingest_many(settings, files, fmt, mapping, on_progress=advance)
    except (IngestError, MappingError, ValueError, OSError) as problem:
        raise _fail(problem) from None
    if single:
        if as_json:
            _emit_json(report.to_dict())
        else:
            out.print(ingest_table(report))
        return
    if as_json:
        _emit_json(many.to_dict())
    else:
        out.print(files_table(many))
    if many.failed:
        raise typer.Exit(code=1)


@app.command()
def simulate(
    visitors: Annotated[int, typer.Option(min=1, help="number of visitors")] = 20_000,
    days: Annotated[int, typer.Option(min=1, help="length of the simulated period")] = 90,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same data)")] = 42,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="folder to write to [default: DATA_DIR/simulated]")
    ] = None,
    fmt: Annotated[
        Literal["csv", "parquet"], typer.Option("--format", help="csv or parquet")
    ] = "csv",
    knobs: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="JSON of simulator settings (as in simulation.json: funnel rates, campaign "
            "response, ...); --visitors, --days and --seed still apply",
        ),
    ] = None,
    reveal_days: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="write only the first days' events: campaign rounds (propensity respond) "
            "reveal the rest [default: every day]",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write realistic simulated events, contacts and ground truth (deterministic by seed)."""
    from dataclasses import replace

    from features.simulation import SimulationConfig
    from features.simulation import simulate as run_simulation
    from features.simulation.writer import write_simulation

    settings = _settings()
    target = out_dir or settings.data_dir / "simulated"
    if reveal_days is not None and reveal_days > days:
        raise _fail(f"--reveal-days {reveal_days} is more than --days {days}")
    try:
        base = (
            SimulationConfig.from_json(knobs.read_text(encoding="utf-8"))
            if knobs
            else SimulationConfig()
        )
    except (OSError, ValueError, TypeError) as problem:
        raise _fail(f"{knobs}: {problem}") from None
    with err.status(f"simulating {visitors:,} visitors over {days} days"):
        config = replace(base, visitors=visitors, days=days, seed=seed)
        data = run_simulation(config)
        until = None if reveal_days is None else config.start + timedelta(days=reveal_days)
        files = write_simulation(data, target, fmt, config, reveal_until=until)
    summary = {
        "events": data.events.height,
        "visitors": data.events.get_column("visitor_id").n_unique(),
        "purchasers": data.events.filter(pl.col("event_name") == "purchase")
        .get_column("visitor_id")
        .n_unique(),
        "files": {name: str(path) for name, path in files.items()},
    }
    if as_json:
        _emit_json(summary)
    else:
        out_console_summary(summary)


@app.command()
def features(
    as_of: Annotated[datetime, typer.Option(help="features use events strictly before this")],
    engine: Annotated[
        Literal["polars", "spark"], typer.Option(help="polars (embedded) or spark")
    ] = "polars",
    out: Annotated[Path | None, typer.Option(help="Parquet output path")] = None,
    as_json: JsonOption = False,
) -> None:
    """Build one row of features per visitor as of a moment, from the event lake."""
    from features.batch import build_features, write_features
    from features.sharding import write_features_sharded
    from propensity import jobs

    settings = _settings()
    # The window the next model is trained with (SNAPSHOTS__LOOKBACK and the rest).
    config = settings.snapshots.feature_config()
    moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    target = out or settings.outputs_dir / "features" / f"as_of={moment:%Y%m%dT%H%M%S}.parquet"
    with err.status(f"building features as of {moment.isoformat()} on {engine}"):
        try:
            if engine == "polars":  # a folder of visitor shards, in bounded memory
                write_features_sharded(
                    settings.lake_dir,
                    moment,
                    target,
                    config=config,
                    events_per_shard=settings.features.events_per_shard,
                    scratch_dir=settings.scratch_dir,
                )
            else:
                spark = jobs.spark_session(settings)
                frame = build_features(
                    settings.lake_dir, moment, engine="spark", config=config, spark=spark
                )
                write_features(frame, target)
        except (FileNotFoundError, ValueError) as problem:
            raise _fail(problem) from None
    rows = pl.scan_parquet(target if target.is_file() else target / "*.parquet").select(pl.len())
    summary = {"as_of": moment.isoformat(), "engine": engine, "visitors": rows.collect().item(),
               "output": str(target)}  # fmt: skip
    if as_json:
        _emit_json(summary)
    else:
        out_console_summary(summary)


@app.command()
def train(
    table: Annotated[
        Path | None, typer.Option(help="ready feature table (Parquet/CSV) instead of the lake")
    ] = None,
    label: Annotated[str, typer.Option(help="label column of --table")] = "label",
    time: Annotated[str, typer.Option(help="time column of --table")] = "as_of",
    truth: Annotated[
        Path | None, typer.Option(help="simulator truth.parquet: report the best achievable AUC")
    ] = None,
    test_as_of: TestCutOption = None,
    validation_as_of: ValidationCutOption = None,
    train_as_of: TrainCutsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train baselines and LightGBM on time-split snapshots; register the best as challenger.

    The cuts are stated (--test-as-of, --validation-as-of, --train-as-of) or follow the
    start/slide rule: the latest snapshots, one SNAPSHOTS__SLIDE apart, that fit the lake."""
    from propensity import jobs
    from training.train import train_from_table

    settings = _with_cuts(_settings(), test_as_of, validation_as_of, train_as_of)
    if table is not None and settings.snapshots.stated_cuts():
        raise _fail(
            "cuts are stated for the lake's snapshots; a --table's cutoffs are its time column",
            "drop --table, or filter the table's rows to the cutoffs wanted",
        )
    with err.status("training: snapshots, baselines, LightGBM, calibration, report"):
        try:
            if table is not None:
                result = train_from_table(
                    table, label, time, settings.training, data_dir=settings.data_dir
                )
            else:
                result = jobs.train(settings, truth=truth)
        except (FileNotFoundError, ValueError) as problem:
            raise _fail(problem) from None
    if as_json:
        _emit_json(result.to_dict())
    else:
        out.print(metrics_table(result.metrics, result.chosen))
        out.print(f"chosen: [bold]{result.chosen}[/], registered version {result.model_version}")
        out.print(f"report: {result.report_path}")


@app.command()
def promote(
    force: Annotated[
        bool, typer.Option(help="promote even if the challenger does not win")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Make the challenger champion if it beats the champion on the same out-of-time test."""
    from training.train import promote_challenger

    settings = _settings()
    result = promote_challenger(
        settings.data_dir,
        datetime.now(UTC),
        force=force,
        min_auc_gain=settings.training.promotion_min_auc_gain,
    )
    if as_json:
        _emit_json(result.to_dict())
    else:
        verdict = "promoted" if result.promoted else "not promoted"
        out.print(f"[bold]{verdict}[/]: {result.reason}")


@app.command()
def score(
    as_of: Annotated[
        datetime | None, typer.Option(help="score as of this time [default: latest event]")
    ] = None,
    engine: Annotated[
        Literal["polars", "spark"], typer.Option(help="engine for the features")
    ] = "polars",
    export_to: Annotated[
        str | None,
        typer.Option(
            "--export", help="then export the run, e.g. customer-match,ga4 (see propensity export)"
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Score and route every visitor with the champion; write outputs and the score store."""
    from propensity import jobs
    from propensity.activation_jobs import export_scoring_run, parse_destinations
    from propensity.activation_views import export_table
    from serving.activation.export import ExportRefused
    from serving.batch.job import score_visitors
    from serving.model.registry import ModelUnavailable

    settings = _settings()
    moment = as_of.replace(tzinfo=as_of.tzinfo or UTC) if as_of else None
    try:  # a wrong destination fails before the scoring, not after it
        destinations = parse_destinations(export_to) if export_to else []
    except ValueError as problem:
        raise _fail(problem) from None
    try:
        with progress_bar(err, "scoring", disable=as_json) as advance:
            summary = score_visitors(
                settings.serving, jobs.serving_paths(settings), as_of=moment, engine=engine,
                on_progress=advance,
                spark=jobs.spark_session(settings) if engine == "spark" else None,
                lift=jobs.scoring_lift(settings),
            )  # fmt: skip
    except (FileNotFoundError, ValueError, LookupError, ModelUnavailable) as problem:
        raise _fail(problem) from None
    try:
        exports = export_scoring_run(settings, destinations, summary.run_id)
    except (FileNotFoundError, ValueError, ExportRefused) as problem:
        raise _fail(f"scored run {summary.run_id}, but its export failed: {problem}") from None
    if as_json:
        answer = summary.to_dict()
        if destinations:
            answer["exports"] = [e.to_dict() for e in exports]
        _emit_json(answer)
    else:
        out.print(scoring_table(summary))
        for exported in exports:
            out.print(export_table(exported))


@app.command()
def export(
    to: Annotated[
        str, typer.Option("--to", help="customer-match, meta, ga4, klaviyo, mailchimp or csv")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the upload files")],
    run: Annotated[str, typer.Option(help="run id, or latest")] = "latest",
    route: Annotated[
        str, typer.Option(help="email_remarketing or ad_retargeting")
    ] = "ad_retargeting",
    send: Annotated[
        bool, typer.Option("--send", help="ga4: also post the bodies to the collection URL")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a run's audience in a destination's upload format, consent re-checked now."""
    from propensity.activation_jobs import export_audience
    from propensity.activation_views import export_table
    from serving.activation.export import ExportRefused

    settings = _settings()
    try:
        summary = export_audience(
            settings,
            to,
            run=None if run == "latest" else run,
            route=route,
            out_dir=out_dir,
            send=send,
        )
    except (FileNotFoundError, ValueError, ExportRefused) as problem:
        raise _fail(problem) from None
    if as_json:
        _emit_json(summary.to_dict())
    else:
        out.print(export_table(summary))


@app.command()
def measure(
    run: Annotated[
        str | None, typer.Option(help="scoring run id to measure [default: the latest run]")
    ] = None,
    table: Annotated[
        Path | None, typer.Option(help="an experiment table (CSV/Parquet) instead of a run")
    ] = None,
    treatment: Annotated[str, typer.Option(help="arm column of --table")] = "treatment",
    control: Annotated[
        list[str] | None, typer.Option(help="control value(s) of the arm column [default: 0]")
    ] = None,
    outcome: Annotated[
        list[str] | None, typer.Option(help="0/1 outcome column(s) of --table")
    ] = None,
    revenue: Annotated[
        list[str] | None, typer.Option(help="numeric outcome column(s) of --table")
    ] = None,
    by: Annotated[list[str] | None, typer.Option(help="also compare within each value")] = None,
    horizon_days: Annotated[
        float | None,
        typer.Option(help="outcome window of a run [default: the scoring model's label window]"),
    ] = None,
    summary: Annotated[
        bool, typer.Option(help="overall and per route only (no score deciles)")
    ] = False,
    until: Annotated[
        datetime | None,
        typer.Option(
            help="the lake holds every event up to this time [default: its latest event] "
            "(propensity respond prints it for a simulated round)"
        ),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="a simulated round's effects.parquet (propensity respond): show the true mean "
            "effect among each channel's contacted beside the measured one"
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Treated vs holdout: conversion and revenue, incremental effect with intervals."""
    from propensity import jobs
    from serving.campaign.runs import measure_scoring_run, read_units
    from serving.campaign.statistics import measure_experiment, treatment_flag
    from serving.model.registry import ModelUnavailable

    settings = _settings()
    confidence = settings.measurement.confidence
    try:
        if table is not None:
            units = read_units(table)
            units = units.with_columns(treatment_flag(units[treatment], control or ["0"]))
            segments = measure_experiment(
                units, treated="treated", rates=outcome or [], means=revenue or [],
                by=by or [], confidence=confidence,
            )  # fmt: skip
            payload: dict[str, object] = {
                "table": str(table), "confidence": confidence,
                "segments": [s.to_dict() for s in segments],
            }  # fmt: skip
            title = f"{table.name}: treated ({treatment} not in {control or ['0']}) vs control"
        else:
            horizon = (
                timedelta(days=horizon_days)
                if horizon_days
                else settings.measurement.horizon or _run_outcome_window(settings, run)
            )
            result = measure_scoring_run(
                jobs.serving_paths(settings).scoring_dir, settings.lake_dir,
                settings.serving.routing, horizon=horizon, confidence=confidence, run_id=run,
                complete_until=until.replace(tzinfo=until.tzinfo or UTC) if until else None,
            )  # fmt: skip
            segments, payload = result.segments, result.to_dict()
            title = f"scoring run {result.run_id}: contacted vs holdout"
            if not result.outcomes_complete:
                err.print("[yellow]warning:[/] the outcome window has not fully passed yet")
    except (
        FileNotFoundError,
        ValueError,
        ModelUnavailable,
        pl.exceptions.ColumnNotFoundError,
    ) as problem:
        raise _fail(problem) from None
    if summary:
        segments = [s for s in segments if s.by in ("all", "route_group")]
        payload["segments"] = [s.to_dict() for s in segments]
    true_effects = _true_effects(truth) if truth is not None else {}
    if true_effects:
        payload["true_effects"] = true_effects
    if as_json:
        _emit_json(payload)
    else:
        out.print(measurement_table(segments, title, true_effects))


def _true_effects(effects_file: Path) -> dict[str, float]:
    """Route -> the simulator's mean true effect (Δp) among the visitors contacted by it."""
    from propensity.campaign_rounds import CONTACTING_ROUTES

    effects = pl.read_parquet(effects_file)
    return {
        route: float(
            effects.filter(pl.col("channel") == channel).get_column(f"delta_{channel}").mean()  # type: ignore[arg-type]
        )
        for route, channel in CONTACTING_ROUTES.items()
        if effects.filter(pl.col("channel") == channel).height
    }


def _run_outcome_window(settings: Settings, run: str | None) -> timedelta:
    """The label window of the model version that scored ``run`` (default: the latest)."""
    from propensity import jobs
    from serving.campaign.runs import run_dir_of

    folder = run_dir_of(jobs.serving_paths(settings).scoring_dir, run)
    summary = json.loads((folder / "summary.json").read_text())
    return jobs.outcome_window(settings, str(summary["model_version"]))


@app.command()
def lift(
    show: Annotated[
        bool, typer.Option(help="show the live fit instead of fitting a new one")
    ] = False,
    until: Annotated[
        datetime | None,
        typer.Option(
            help="the lake holds every event up to this time [default: its latest event]: "
            "runs whose outcome window ends by then are used"
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Learn each channel's lift (what a contact adds to the purchase probability, by score
    band) from the holdouts of every run whose outcomes are in; the next scoring run uses it."""
    from propensity import lift_fitting
    from serving.campaign.fits import latest_fit
    from serving.model.registry import ModelUnavailable

    settings = _settings()
    try:
        if show:
            model = latest_fit(settings.outputs_dir)
            if model is None:
                raise ValueError("no lift fitted yet: run propensity lift")
        else:
            with err.status("learning the lift from the runs' holdouts"):
                complete = until.replace(tzinfo=until.tzinfo or UTC) if until else None
                model = lift_fitting.fitted_lift(settings, complete)
    except (FileNotFoundError, ValueError, ModelUnavailable) as problem:
        raise _fail(problem) from None
    if as_json:
        _emit_json(model.to_dict())
        return
    out.print(lift_table(model))


@app.command()
def uplift(
    until: Annotated[
        datetime | None,
        typer.Option(help="the lake holds every event up to this time [default: its latest event]"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Would a per-visitor uplift model rank contacts better than the lift curve? Trained on
    the older runs' holdouts, judged by Qini on the newest run's."""
    from propensity.uplift_check import check_uplift
    from serving.model.registry import ModelUnavailable

    settings = _settings()
    try:
        with err.status("fitting uplift models on the runs' holdouts"):
            complete = until.replace(tzinfo=until.tzinfo or UTC) if until else None
            checks = check_uplift(settings, complete)
    except (FileNotFoundError, ValueError, ModelUnavailable) as problem:
        raise _fail(problem) from None
    if as_json:
        _emit_json({"channels": [check.to_dict() for check in checks]})
        return
    out.print(uplift_table(checks))


@app.command()
def respond(
    run: Annotated[
        str | None, typer.Option(help="scoring run to play [default: the latest run]")
    ] = None,
    simulation: Annotated[
        Path | None,
        typer.Option(help="folder of propensity simulate [default: DATA_DIR/simulated]"),
    ] = None,
    horizon_days: Annotated[
        float | None,
        typer.Option(help="outcome window [default: the scoring model's label window]"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Simulated shops only: contact the visitors a run routed to email or ads, and write
    what the shop does next (purchases caused and prevented) as events to ingest."""
    from propensity.campaign_rounds import respond as run_round
    from serving.model.registry import ModelUnavailable

    settings = _settings()
    folder = simulation or settings.data_dir / "simulated"
    window = timedelta(days=horizon_days) if horizon_days else None
    try:
        with err.status("campaign round: contacts, responses, the window's events"):
            summary = run_round(settings, folder, run_id=run, horizon=window)
    except (FileNotFoundError, ValueError, ModelUnavailable) as problem:
        raise _fail(problem) from None
    if as_json:
        _emit_json(summary.to_dict())
        return
    out.print(round_table(summary))
    out.print(f"next: propensity ingest {summary.files['events']}", soft_wrap=True)
    out.print(
        f"then: propensity measure, propensity lift --until {summary.window_end.isoformat()}",
        soft_wrap=True,
    )


@app.command()
def retrain(
    source: Annotated[
        list[Path] | None, typer.Option(help="new event file(s) to ingest first")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="format of --source (as for ingest)")
    ] = None,
    contacts: Annotated[
        list[Path] | None, typer.Option(help="new contact file(s) to ingest first")
    ] = None,
    test_as_of: TestCutOption = None,
    validation_as_of: ValidationCutOption = None,
    train_as_of: TrainCutsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest what is new, train, and promote the challenger only if it beats the champion.

    Also ingests the files waiting in RETRAIN__INBOX. Safe to re-run; exits 1 naming the
    step that failed, with the champion and the score store untouched.
    """
    from propensity.retrain import RetrainFailed
    from propensity.retrain import retrain as run_retrain

    settings = _with_cuts(_settings(), test_as_of, validation_as_of, train_as_of)
    sources = [(p, fmt) for p in source or []] + [(p, "contacts") for p in contacts or []]
    try:
        with err.status("retraining: ingest, snapshots, train, compare, promote"):
            summary = run_retrain(settings, sources, datetime.now(UTC))
    except RetrainFailed as failure:
        champion = failure.summary.champion_before
        kept = f"v{champion}" if champion else "none"
        # Under --json the run's summary travels inside the one error object.
        raise _fail(
            f"{failure}; champion {kept} unchanged", summary=failure.summary.to_dict()
        ) from None
    except RuntimeError as problem:
        raise _fail(problem) from None
    if as_json:
        _emit_json(summary.to_dict())
        return
    verdict = "promoted" if summary.promoted else "not promoted"
    out.print(f"[bold]{verdict}[/]: {escape(summary.reason)}")
    before, after = (
        f"v{v}" if v else "none" for v in (summary.champion_before, summary.champion_after)
    )
    out.print(f"champion: {before} -> {after}")
    for item in summary.ingested:
        out.print(f"ingested {item['file']}: {item.get('accepted', 0):,} new rows")


@app.command()
def monitor(
    run: Annotated[
        str | None, typer.Option(help="scoring run id to check [default: the latest run]")
    ] = None,
    fail_on_drift: Annotated[
        bool, typer.Option(help="exit 2 when a column moved beyond its limits")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Drift of the latest scoring population against the training reference, realised
    performance of the latest run with outcomes; HTML report, MLflow run, Prometheus file."""
    from propensity.monitor import monitor as run_monitor
    from serving.model.registry import ModelUnavailable

    settings = _settings()
    try:
        with err.status("monitoring: features of the scored population, drift, outcomes"):
            result = run_monitor(settings, run_id=run)
    except (FileNotFoundError, ValueError, LookupError, ModelUnavailable) as problem:
        raise _fail(problem) from None
    if as_json:
        _emit_json(result.to_dict())
    else:
        out.print(
            f"scoring run {result.run_id} (model v{result.model_version}): "
            f"{result.current_rows:,} visitors vs {result.reference_rows:,} reference rows"
        )
        for item in sorted(result.columns, key=lambda c: -c.psi)[:10]:
            flags = f"  [bold red]{', '.join(item.flags)}[/]" if item.flags else ""
            out.print(f"  {item.column:<32} PSI {item.psi:7.4f}{flags}")
        out.print(f"flagged: {', '.join(result.flagged) or 'nothing'}")
        if result.realised is not None:
            r = result.realised
            out.print(
                f"realised on {r.run_id}: ROC-AUC {r.roc_auc:.4f}, ECE {r.ece:.4f} "
                f"({r.positives:,} buyers of {r.visitors:,})"
            )
        out.print(f"report: {result.report}\nmetrics: {result.textfile}")
    if fail_on_drift and result.flagged:
        raise typer.Exit(code=2)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
) -> None:
    """Run the real-time API (OpenAPI docs at /docs)."""
    from propensity import jobs
    from serving.api.server import run_api

    settings = _settings()
    run_api(settings.serving, jobs.serving_paths(settings), host=host, port=port, workers=workers)


def out_console_summary(summary: dict[str, object]) -> None:
    for key, value in summary.items():
        out.print(f"[bold]{key}[/]: {value}")
