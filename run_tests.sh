#!/usr/bin/env bash
# The test command: set up .venv (with test tools), then run pytest over tests/ -- which
# includes executing ./run_all.sh on the smoke config -- and nbval over the notebooks.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh test
exec .venv/bin/python -m pytest tests notebooks --nbval-lax \
    --nbval-sanitize-with tests/nbval_sanitize.cfg "$@"
