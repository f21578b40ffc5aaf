"""A full small run with identifiers, through the CLI and the API: simulate -> retrain (ingest,
train) -> ``score --export customer-match,ga4``; then the PII scan: no raw email or phone of
the contacts appears in any file under the data directory but the identifiers store, nor in
the DEBUG logs, the CLI's output, the API's answers or its Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from features.ingest.identifiers import IDENTIFIERS_FILE
from features.simulation import SimulationConfig, simulate
from features.simulation.writer import write_simulation
from propensity import jobs
from propensity.cli import app
from propensity.settings import Settings
from serving.api.app import create_app
from tests.integration.serving.world import event

API_KEY = "pii-scan-key"


class Run:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.env = {
            "PROPENSITY_DATA_DIR": str(self.data_dir),
            "PROPENSITY_LOG_LEVEL": "DEBUG",
            "PROPENSITY_TRAINING__N_ESTIMATORS": "30",
            "PROPENSITY_TRAINING__NUM_THREADS": "1",
            "PROPENSITY_RETRAIN__INBOX": str(root / "inbox"),
            "PROPENSITY_SERVING__API_KEYS": json.dumps([API_KEY]),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        self.seen: list[str] = []  # everything the run said: CLI output, logs, API answers

    def cli(self, *args: str) -> dict[str, object]:
        result = CliRunner().invoke(app, [*args, "--json"], env=self.env)
        self.seen += [result.stdout, result.stderr]
        assert result.exit_code == 0, result.output
        payload: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
        return payload


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    shop_run = Run(tmp_path_factory.mktemp("activation"))
    shop = write_simulation(
        simulate(SimulationConfig(visitors=2_000, days=90, seed=5)), shop_run.root / "sim", "csv"
    )
    shop_run.contacts_file = shop["contacts"]  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for name, value in shop_run.env.items():
            patch.setenv(name, value)
        handler = _Capture()
        logging.getLogger().addHandler(handler)
        try:
            shop_run.cli(
                "retrain", "--source", str(shop["events"]), "--contacts", str(shop["contacts"])
            )
            shop_run.scored = shop_run.cli("score", "--export", "customer-match,ga4")  # type: ignore[attr-defined]
            settings = Settings()
            with TestClient(create_app(settings.serving, jobs.serving_paths(settings))) as api:
                _use_the_api(shop_run, api)
        finally:
            logging.getLogger().removeHandler(handler)
        shop_run.seen += handler.lines
        yield shop_run


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + repr(record.args))


def _use_the_api(run: Run, api: TestClient) -> None:
    contacts = pl.read_csv(run.contacts_file, infer_schema=False)  # type: ignore[attr-defined]
    key = {"X-API-Key": API_KEY}
    for visitor in contacts.get_column("visitor_id").head(5):
        run.seen.append(api.get(f"/v1/visitors/{visitor}", headers=key).text)
        posted = api.post("/v1/events", json=[event(visitor_id=visitor)], headers=key)
        run.seen.append(posted.text)
    run.seen.append(api.get("/metrics").text)


def test_score_export_writes_each_destination_of_the_run(run: Run) -> None:
    exports = run.scored["exports"]  # type: ignore[attr-defined]
    assert [(e["destination"], e["route"]) for e in exports] == [
        ("customer-match", "ad_retargeting"),
        ("ga4", "ad_retargeting"),
    ]
    for summary in exports:
        assert summary["run_id"] == run.scored["run_id"]  # type: ignore[attr-defined]
        assert summary["exported"] > 0
        assert summary["exported"] + sum(summary["left_out"].values()) == summary["audience"]
        assert all(Path(f).is_file() for f in summary["files"])
    match = pl.read_csv(exports[0]["files"][0], infer_schema=False)
    assert match.get_column("Email").drop_nulls().str.contains(r"^[0-9a-f]{64}$").all()


def test_unknown_destination_fails_before_scoring(run: Run) -> None:
    result = CliRunner().invoke(app, ["score", "--export", "customer-match,fax"], env=run.env)
    assert result.exit_code != 0 and "--export" in result.output


def _raw_forms(contacts_file: Path) -> set[str]:
    """Each contact's email and phone as written, and as normalised (lower case, E.164,
    digits only): any of these outside the identifiers store is a leak."""
    contacts = pl.read_csv(contacts_file, infer_schema=False)
    forms: set[str] = set()
    for email in contacts.get_column("email").drop_nulls():
        forms |= {email.strip(), email.strip().lower()}
    for phone in contacts.get_column("phone").drop_nulls():
        digits = re.sub(r"\D", "", phone)
        forms |= {phone.strip(), digits, "+" + digits}
    return {form for form in forms if len(form) >= 8}


def _text_of(path: Path) -> str:
    """The file as text; Parquet decoded first (its pages are compressed, so raw bytes
    could hide a value)."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".parquet":
        text += repr(pl.read_parquet(path).rows())
    return text


def test_no_raw_email_or_phone_outside_the_identifiers_store(run: Run) -> None:
    forms = _raw_forms(run.contacts_file)  # type: ignore[attr-defined]
    assert len(forms) > 100  # the simulation wrote identifiers
    store = (run.data_dir / "lake" / IDENTIFIERS_FILE).resolve()
    assert store.is_file()
    pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
    scanned, leaks = 0, []
    for path in sorted(run.data_dir.rglob("*")):
        if not path.is_file() or path.resolve() == store:
            continue
        scanned += 1
        text = _text_of(path)
        leaks += [f"{path}: {m.group()}" for m in pattern.finditer(text)][:3]
    for said in run.seen:
        leaks += [f"output: {m.group()}" for m in pattern.finditer(said)][:3]
    assert scanned > 20  # lake, outputs, exports, MLflow store, score store
    assert any("exports" in str(p) for p in run.data_dir.rglob("*.csv"))
    assert not leaks, leaks[:20]
