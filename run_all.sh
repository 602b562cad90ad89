#!/usr/bin/env bash
# Regenerate every table and figure of a study config with papermill.
#   ./run_all.sh                                  # configs/smoke.yaml, the embedded demo study
#   ./run_all.sh configs/smoke.yaml --stage score # one stage (prepare | generate | score)
#   ./run_all.sh CONFIG --model NAME --corpus NAME
# Creates .venv and installs on first use. Executed notebooks: runs/<config>/executed/;
# tables: tables/<config>/; figures: figures/<config>/.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m ambiemo.pipeline "$@"
