#!/usr/bin/env bash
# Create .venv if it is missing and install ambiemo with its pinned dependencies.
# Usage: scripts/setup.sh [test]   ("test" adds pytest, nbval and hypothesis)
# Idempotent: reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}
py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($py --version)"
    "$py" -m venv .venv
fi
target="."
[ "$extras" = "test" ] && target=".[test]"
stamp=".venv/.ambiemo-installed${extras:+-$extras}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing ambiemo${extras:+[$extras]} and its pinned dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e "$target"
    echo "$want" > "$stamp"
fi
