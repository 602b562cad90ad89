#!/usr/bin/env bash
# Re-introduce each bug of docs/testing.md's tables, one at a time, in a copy of lib/
# (build/known_bugs/lib) and run the test the table names against that copy: every line
# "=== <bug>" must be followed by FAILED lines (the length-penalty case also shows the
# [True-0.0-free] test passing: it cannot see that bug). lib/ itself is never changed.
#
#   scripts/known_bugs.sh [pattern]     (only the bugs whose label contains pattern)
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
COPY="$ROOT/build/known_bugs/lib"
L="$COPY/ambiemo"
ONLY="${1:-}"
run() {  # label, file (under lib/ambiemo), old, new, test ids...
  label=$1 f=$L/$2 old=$3 new=$4; shift 4
  [[ -n "$ONLY" && "$label" != *"$ONLY"* ]] && return
  rm -rf "$COPY" && mkdir -p "$(dirname "$COPY")" && cp -r lib "$COPY"
  python3 - "$f" "$old" "$new" <<'PY'
import sys
p, old, new = sys.argv[1:]
s = open(p).read()
if old not in s:
    sys.exit(f"{p}: the code to break is gone ({old!r}): update scripts/known_bugs.sh")
open(p, "w").write(s.replace(old, new))
PY
  echo "=== $label"
  PYTHONPATH="$COPY" timeout 900 .venv/bin/python -m pytest "$@" -q -p no:cacheprovider 2>&1 | grep -E "^FAILED|^[0-9]+ (passed|failed)" | sed 's/ - .*//'
}
E=alm/hf/engine/decode.py; B=alm/hf/engine/beam.py; P=tests/test_engine_paths.py
run "no top-p" $E "    if top_p < 1.0:" "    if False:" "$P::test_samples_equal_generate_on_the_same_seed[t0.7-p0.9-k0]"
run "temperature 0.6 for 0.5" $E "TemperatureLogitsWarper(temperature)" "TemperatureLogitsWarper(0.6 if temperature == 0.5 else temperature)" "$P::test_samples_equal_generate_on_the_same_seed[t0.5-p0.95-k0]"
run "min_new_tokens ignored" $E "if step < min_new_tokens:" "if False:" "$P::test_samples_with_min_new_tokens_equal_generate"
run "early_stopping forced True" $B "early_stopping is True" "True" "$P::test_beam_search_equals_generate[False-1.0-constrained]"
run "length penalty ignored" $B "** length_penalty" "** 0.0" "$P::test_beam_search_equals_generate[True-0.0-free]" "$P::test_beam_search_equals_generate[True-1.0-free]"
run "finished rows not padded" $E "nxt = torch.where(unfinished, nxt, pad_id)" "nxt = nxt" "$P::test_samples_equal_generate_on_the_same_seed[t0.7-p0.9-k0]"
run "no top-k" $E "    if top_k:" "    if False:" "$P::test_samples_equal_generate_on_the_same_seed[t1.0-p1.0-k5]"
run "n_failed off by one" tts/predictions.py '"n_failed": (n - n_usable).astype(int)' '"n_failed": (n - n_usable + 1).astype(int)' tests/test_runner.py::test_parse_failures_are_stored_not_answered
V=tests/test_metric_values.py
run "one pair as 1-element array" metrics/distribution.py "return values[0] if single else values" "return values[:1] if single else values" "$V::test_metric_shapes_one_pair_is_a_scalar_rows_broadcast"
run "or in the single-pair test" metrics/distribution.py "single = p.ndim == 1 and q.ndim == 1" "single = p.ndim == 1 or q.ndim == 1" "$V::test_metric_shapes_one_pair_is_a_scalar_rows_broadcast"
run "BC = 1 - TV" metrics/distribution.py "return _out(np.clip(np.sqrt(p * q).sum(-1), 0.0, 1.0), single)" "return _out(1 - 0.5 * np.abs(p - q).sum(-1), single)" "$V::test_bc_hand_values"
run "90% for 95% bootstrap" analysis/inference.py "a = (1 - confidence) / 2" "a = (1 - (0.90 if confidence == 0.95 else confidence)) / 2" "$V::test_bootstrap_ci_equals_scipy_at_the_same_confidence[0.95]"
run "one-sided permutation p" analysis/inference.py "np.sum(np.abs(null) >= abs(observed) - 1e-12)" "np.sum(null >= observed - 1e-12)" "$V::test_permutation_p_value_equals_exact_enumeration"
run "p = hits / n_perm" analysis/inference.py "p = (1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + n_perm)" "p = np.sum(np.abs(null) >= abs(observed) - 1e-12) / n_perm" "$V::test_permutation_p_value_small_cases_by_hand"
run "best over the whole batch" tts/strategies.py "    top = s.max(axis=1, keepdims=True)
    with np.errstate" "    top = s.max()
    with np.errstate" "tests/test_tts_batched.py::test_batch_equals_each_utterance_alone[alm_v]"
run "softmax shift over the whole batch" tts/strategies.py "    top = s.max(axis=1, keepdims=True)
    # Tied" "    top = s.max()
    # Tied" "tests/test_tts_batched.py::test_batch_equals_each_utterance_alone[w_bon]"
G=sampling/generate.py
K=(tests/test_run_key.py tests/test_runner.py tests/test_store.py -m "not slow")
run "run key without the seed" $G '"seed": settings.seed,' '' "${K[@]}"
run "run key without the prompt version" $G 'return {"id": prompt.id, "version": prompt.version,' 'return {"id": prompt.id,' "${K[@]}"
run "run key without the prompt text" $G ', "text_sha256": text}' '}' "${K[@]}"
run "batch seed without the first clip" $G 'f"{seed}:{kind}:{first_utt}"' 'f"{seed}:{kind}"' "${K[@]}"
rm -rf "$(dirname "$COPY")"
