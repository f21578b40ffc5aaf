"""Audience export speed: N visitors to Google Ads Customer Match (consent re-check, identifier
join, vectorised SHA-256, CSV), against a per-row ``hashlib`` loop that only hashes the same
four columns, measured in the same run.

``python -m benchmarks.export [--quick]``. Last line: ``RESULT visitors=… export_s=…
ratio_vs_hashlib_loop=…``.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from features.events.schema import CONTACT_SCHEMA
from features.ingest.identifiers import normalise_identifiers
from features.simulation.identifiers import synthetic_identifiers
from serving.activation.export import DESTINATIONS, plan_export, write_export
from serving.activation.settings import ActivationSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100k visitors instead of 1M")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    ids = pl.Series("visitor_id", [f"v{i:07d}" for i in range(n)])
    identifiers = normalise_identifiers(synthetic_identifiers(ids))
    audience = pl.DataFrame(
        {"visitor_id": ids, "score": 0.5, "decile": 1, "expected_value": 1.0}
    ).with_columns(pl.lit("ad_retargeting").alias("route"))
    contacts = pl.DataFrame(
        {"visitor_id": ids, "email_status": "subscribed", "ads_consent": "granted"}
    ).with_columns(pl.lit(datetime(2025, 1, 1, tzinfo=UTC)).alias("updated_at"))
    contacts = contacts.cast(CONTACT_SCHEMA)  # type: ignore[arg-type]
    settings = ActivationSettings()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        plan = plan_export(
            DESTINATIONS["customer-match"], audience, contacts=contacts,
            identifiers=identifiers, run_id="bench", route="ad_retargeting", settings=settings,
        )  # fmt: skip
        write_export(plan, Path(tmp), settings)
        export_s = time.perf_counter() - started
    started = time.perf_counter()
    for column in ("email", "phone", "first_name", "last_name"):
        for value in identifiers.get_column(column).to_list():
            if value is not None:
                hashlib.sha256(value.encode()).hexdigest()
    loop_s = time.perf_counter() - started
    print(f"exported {plan.summary.exported:,} of {n:,} in {export_s:.2f} s")
    print(
        f"RESULT visitors={n} export_s={export_s:.2f} ratio_vs_hashlib_loop={loop_s / export_s:.2f}"
    )


if __name__ == "__main__":
    main()
