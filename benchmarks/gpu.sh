#!/usr/bin/env bash
# The GPU runs of benchmarks/README.md: Qwen2-Audio-7B-shaped random bf16 weights on one GPU.
#   benchmarks/gpu.sh            # on the GPU machine; results in benchmarks/results/
#   benchmarks/gpu.sh --dry-run  # the same three runs on the CPU with the tiny model, small sizes
# Exits non-zero if a target is missed (the targets apply to the GPU runs only).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT_DIR:-benchmarks/results}
if [[ "${1:-}" == "--dry-run" ]]; then
  COMMON=(--model tiny --device cpu)
  ONE=(--clips 4 --n 4 --new-tokens 8 --naive-clips 2)
  TWO=(--clips 4 --n 4 --new-tokens 8 --no-naive)
  T1=(); T2=(); T3=()
  OUT=${OUT_DIR:-$(mktemp -d)}
else
  COMMON=(--model 7b-shaped --device cuda --seconds-per-clip 5)
  # 1. N = 8, 16 new tokens, 16 clips of 5 s: engine vs naive, and class-name scoring (K = 6).
  #    The naive loop runs on 4 clips (about 12 s at 0.33 clips/s); clips/s is per clip.
  ONE=(--clips 16 --n 8 --new-tokens 16 --batch 16 --naive-clips 4)
  T1=(--min-ratio 150 --min-clips-per-s 60 --min-score-clips-per-s 100)
  # 2. 32 clips in one batch, N = 16, 48 new tokens: peak memory.
  TWO=(--clips 32 --n 16 --new-tokens 48 --batch 32 --no-naive)
  T2=(--max-peak-gib 50)
fi
mkdir -p "$OUT"
status=0
"$PY" benchmarks/bench_sampling.py "${COMMON[@]}" "${ONE[@]}" "${T1[@]}" --json "$OUT/n8_t16_c16.json" || status=1
"$PY" benchmarks/bench_sampling.py "${COMMON[@]}" "${TWO[@]}" "${T2[@]}" --json "$OUT/n16_t48_c32.json" || status=1
echo "results in $OUT"
exit $status
