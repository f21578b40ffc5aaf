#!/usr/bin/env bash
# The main job end to end on simulated data: simulate -> ingest -> features -> train ->
# promote -> batch score -> serve. Everything lives in $PROPENSITY_DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
data="${PROPENSITY_DATA_DIR:-.propensity}"
export PROPENSITY_DATA_DIR="$data" MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# The last 14 days (the model's label window) are held back: the campaign round reveals them.
step "simulate a shop (76 of its 90 days revealed)"
$bin/propensity simulate --visitors "${DEMO_VISITORS:-20000}" --days 90 --reveal-days 76 --seed 7 --out "$data/simulated"
step "ingest events and contact consent"
$bin/propensity ingest "$data/simulated/events.csv" --format canonical
$bin/propensity ingest "$data/simulated/contacts.csv" --format contacts
step "train baselines and LightGBM on weekly snapshots (time-split)"
$bin/propensity train --truth "$data/simulated/truth.parquet"
step "promote the challenger (first model: no champion to beat)"
$bin/propensity promote
step "score and route every visitor (email, ads, holdout, exploration)"
$bin/propensity score
step "one campaign round: the simulated shop responds to the contacts"
$bin/propensity respond --simulation "$data/simulated"
round_dir=$(ls -td "$data"/simulated/rounds/*/ | head -1)
$bin/propensity ingest "${round_dir}events.csv" --format canonical
step "measure the round: contacted vs held out, beside the simulator's true effect"
# The round revealed the shop up to the end of its outcome window (rounds.json says when).
until=$($bin/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["rounds"][-1]["window_end"])' "$data/simulated/rounds.json")
$bin/propensity measure --summary --truth "${round_dir}effects.parquet" --until "$until"
if [ "${DEMO_SERVE:-1}" = "1" ]; then
  step "serve the API"
  echo "docs: http://127.0.0.1:8000/docs"
  echo "try:  curl -s http://127.0.0.1:8000/v1/visitors/\$(head -2 $data/simulated/contacts.csv | tail -1 | cut -d, -f1)"
  exec $bin/propensity serve --port "${DEMO_PORT:-8000}"
fi
