#!/usr/bin/env bash
# Mutation testing of the pure modules with mutmut (pinned in the test extra); not run in CI.
#
#   scripts/mutation.sh [metrics|tts|parse|engine ...]     (default: metrics tts)
#
# mutmut imports the mutated code from mutants/src (or mutants/.), never from lib/, so each
# run works in a staging copy: build/mutation/<module>/{src/ambiemo, tests, configs, data/demo}
# plus a setup.cfg naming the one file to mutate and the test files that exercise it.
# Results: build/mutation/<module>/mutants/ (`mutmut results`, `mutmut show <name>` there);
# a summary line per module is printed and written to build/mutation/<module>/score.txt.
# Record the score and the surviving mutants in docs/testing.md.
# MUTMUT_CHILDREN (default 2) is the number of mutants run in parallel.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
CHILDREN="${MUTMUT_CHILDREN:-2}"
modules=("$@")
[ ${#modules[@]} -eq 0 ] && modules=(metrics tts)

for m in "${modules[@]}"; do
  case "$m" in
    metrics) file="metrics/*.py"; tests="tests/test_metrics.py tests/test_metric_values.py" ;;
    tts)     file=tts/strategies.py;     tests="tests/test_tts.py tests/test_tts_batched.py" ;;
    parse)   file="parse/*.py"; tests="tests/test_parse.py tests/test_answer_corpus.py" ;;
    # The engine's logits processing (decode's step loop and the class-name trie): every
    # mutant reruns the tiny-model engine tests, ~1 min each on a CPU.
    engine)  file=alm/hf/engine/decode.py; tests="tests/test_engine.py tests/test_engine_paths.py" ;;
    *) echo "unknown module '$m' (metrics, tts, parse, engine)" >&2; exit 2 ;;
  esac
  stage="$ROOT/build/mutation/$m"
  rm -rf "$stage"
  mkdir -p "$stage/src" "$stage/data"
  cp -r "$ROOT/lib/ambiemo" "$stage/src/ambiemo"
  cp -r "$ROOT/tests" "$stage/tests"
  cp -r "$ROOT/configs" "$stage/configs"
  cp -r "$ROOT/data/demo" "$stage/data/demo"
  ln -s "$ROOT/.venv" "$stage/.venv"          # tests/cpu_extras.py reads .venv/cpu-extras
  find "$stage" -name __pycache__ -prune -exec rm -rf {} +
  {
    echo "[mutmut]"
    echo "source_paths = src/ambiemo"
    echo "only_mutate = src/ambiemo/$file"
    printf 'pytest_add_cli_args =\n    -q\n    -p\n    no:cacheprovider\n'
    echo "pytest_add_cli_args_test_selection ="
    for t in $tests; do echo "    $t"; done
    # torch is imported by the tests' conftest; forking from a process that ran torch is unsafe.
    echo "process_isolation = forkserver"
    echo "[tool:pytest]"
    echo "testpaths = tests"
  } > "$stage/setup.cfg"
  (
    cd "$stage"
    unset PYTHONPATH
    "$ROOT/.venv/bin/mutmut" run --max-children "$CHILDREN" || true
    "$ROOT/.venv/bin/mutmut" export-cicd-stats >/dev/null 2>&1 || true
    "$ROOT/.venv/bin/mutmut" results > results.txt 2>&1 || true
    "$PY" - "$m" <<'PY'
import json, sys
from pathlib import Path
stats = json.loads(Path("mutants/mutmut-cicd-stats.json").read_text())
killed = stats["killed"] + stats.get("timeout", 0) + stats.get("caught_by_type_check", 0)
total = stats["total"] - stats.get("skipped", 0) - stats.get("not_checked", 0)
line = (f"{sys.argv[1]}: {killed}/{total} killed ({100 * killed / max(total, 1):.1f} %), "
        f"survived {stats['survived']}, no tests {stats['no_tests']}, "
        f"suspicious {stats.get('suspicious', 0)}")
Path("score.txt").write_text(line + "\n")
print(line)
PY
  )
done
