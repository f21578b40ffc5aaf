#!/usr/bin/env bash
# The main job end to end on simulated data: simulate, ingest events and contacts.
# Later stages (features, train, score, serve) are added here as they land.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
data="${PROPENSITY_DATA_DIR:-.propensity}"

$bin/propensity simulate --visitors "${DEMO_VISITORS:-20000}" --days 90 --seed 7 --out "$data/simulated"
$bin/propensity ingest "$data/simulated/events.csv" --format canonical
$bin/propensity ingest "$data/simulated/contacts.csv" --format contacts
