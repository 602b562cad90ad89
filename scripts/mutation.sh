#!/usr/bin/env bash
# Mutation testing of the pure modules with mutmut (pinned in the test extra); not run in CI.
#
#   scripts/mutation.sh [metrics|tts|parse|analysis|engine|<file under lib/ambiemo> ...]
#                                         (default: metrics tts parse analysis engine)
#
# A target is a package (every module of it is mutated, with the test files that exercise
# it) or one file, e.g. `metrics/distribution.py` (mutated with its package's tests; a
# quick check that the script works). MUTMUT_TIME_LIMIT=<seconds> stops mutmut after that
# long: the mutants it did not reach are reported as not run, never as killed.
#
# mutmut imports the mutated code from mutants/src (or mutants/.), never from lib/, so each
# run works in a staging copy: build/mutation/<module>/{src/ambiemo, tests, configs, data/demo}
# plus a setup.cfg naming the one file to mutate and the test files that exercise it.
# Results: build/mutation/<module>/mutants/ (`mutmut results`, `mutmut show <name>` there);
# a summary line per module is printed and written to build/mutation/<module>/score.txt.
# The summary counts killed, timeout, survived, no tests and not run separately; a timeout
# counts as a kill only once a re-run on an idle machine confirms it (`mutmut run <name>`).
# Mutants in code that runs only at import (the registries' decorators: register_strategy,
# register_metric, Metric.__post_init__, module __getattr__) cannot be switched on by
# mutmut's trampoline: they are listed apart as unmeasured (tests pin what they decide).
# Record the score and the surviving mutants in docs/testing.md.
# MUTMUT_CHILDREN (default 2) is the number of mutants run in parallel; run it on a machine
# that is not loaded, or timeouts stand for slowness rather than detection.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
CHILDREN="${MUTMUT_CHILDREN:-2}"
LIMIT="${MUTMUT_TIME_LIMIT:-}"
modules=("$@")
[ ${#modules[@]} -eq 0 ] && modules=(metrics tts parse analysis engine)

for m in "${modules[@]}"; do
  target="$m"
  [[ "$m" == */*.py ]] && m="${m%%/*}"      # one file: its package's tests
  case "$m" in
    metrics)  file="metrics/*.py"
              tests="tests/test_metrics.py tests/test_metric_values.py tests/test_metric_crosschecks.py" ;;
    tts)      file="tts/*.py"
              tests="tests/test_tts.py tests/test_tts_batched.py tests/test_soft_reference.py tests/test_controls.py" ;;
    parse)    file="parse/*.py"
              tests="tests/test_parse.py tests/test_parse_failures.py tests/test_answer_corpus.py" ;;
    analysis) file="analysis/*.py"
              tests="tests/test_analysis.py tests/test_capacity.py tests/test_metric_values.py" ;;
    # The engine's logits processing (decode's step loop, beam search, the class-name
    # trie): every mutant reruns the tiny-model engine tests, ~1 min each on a CPU.
    engine|alm) m=engine
              file="alm/hf/engine/decode.py alm/hf/engine/beam.py alm/hf/constrained.py"
              tests="tests/test_engine.py tests/test_engine_paths.py" ;;
    *) echo "unknown target '$target' (metrics, tts, parse, analysis, engine, or a file of one)" >&2; exit 2 ;;
  esac
  if [[ "$target" == */*.py ]]; then
    [ -f "$ROOT/lib/ambiemo/$target" ] || { echo "no file lib/ambiemo/$target" >&2; exit 2; }
    file="$target"; m="${target//\//_}"; m="${m%.py}"
  fi
  for t in $tests; do
    [ -f "$ROOT/$t" ] || { echo "$target: test file $t is missing (update this script)" >&2; exit 2; }
  done
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
    echo "only_mutate ="
    set -f; for f in $file; do echo "    src/ambiemo/$f"; done; set +f
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
    if [ -n "$LIMIT" ]; then
      timeout --signal=INT --kill-after=30 "$LIMIT" \
        "$ROOT/.venv/bin/mutmut" run --max-children "$CHILDREN" || true
    else
      "$ROOT/.venv/bin/mutmut" run --max-children "$CHILDREN" || true
    fi
    "$ROOT/.venv/bin/mutmut" results --all true > results.txt 2>&1 || true
    "$PY" - "$target" <<'PY'
import collections, re, sys
from pathlib import Path

# Functions that run only at import (the registries), whose mutants the trampoline never
# switches on: reported apart, as unmeasured.
IMPORT_TIME = re.compile(r"(register_strategy|register_metric|register_model|register_adapter"
                         r"|__post_init__|x___getattr__)__mutmut_")
status, unmeasured = {}, []
for line in Path("results.txt").read_text().splitlines():
    name, sep, state = line.strip().rpartition(": ")
    if sep and "__mutmut_" in name:
        status[name] = state.strip()
for name, state in status.items():
    if IMPORT_TIME.search(name) and state in ("survived", "no tests"):
        unmeasured.append(name)
counts = collections.Counter(s for n, s in status.items() if n not in unmeasured)
measured = counts["killed"] + counts["timeout"] + counts["survived"]
line = (f"{sys.argv[1]}: {len(status)} mutants: killed {counts['killed']}, "
        f"timeout {counts['timeout']}, survived {counts['survived']}, "
        f"no tests {counts['no tests']}, not run {counts['not checked']}, "
        f"unmeasured at import {len(unmeasured)}, other "
        f"{sum(v for k, v in counts.items() if k not in ('killed', 'timeout', 'survived', 'no tests', 'not checked'))}"
        f"; killed / measured = {counts['killed']}/{measured}"
        f" ({100 * counts['killed'] / max(measured, 1):.1f} %, timeouts not counted)")
Path("score.txt").write_text(line + "\n" + "".join(f"unmeasured: {n}\n" for n in unmeasured))
print(line)
PY
  )
done
