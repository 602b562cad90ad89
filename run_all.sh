#!/usr/bin/env bash
# Regenerate every table, figure and the HTML report of a study config with papermill.
#   ./run_all.sh                                  # configs/smoke.yaml, the embedded demo study
#   ./run_all.sh configs/paper.yaml               # the study (needs corpora, checkpoints, keys)
#   ./run_all.sh CONFIG --stage score             # one stage (repeatable): prepare | generate |
#                                                 #   verify | score | analyse | report
#   ./run_all.sh CONFIG --model NAME --corpus NAME
# Everything the run needs is checked first; on any problem it lists them all and runs
# nothing (exit 2). It ends with a summary of what ran, came from the cache, was skipped or
# failed, and exits 1 if anything failed. Creates .venv and installs on first use.
# Outputs: runs/<config>/ (executed notebooks, report/index.html), tables/<config>/,
# figures/<config>/.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m ambiemo.pipeline "$@"
