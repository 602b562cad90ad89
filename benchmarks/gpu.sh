#!/usr/bin/env bash
# The GPU runs of benchmarks/README.md: Qwen2-Audio-7B-shaped random bf16 weights on one GPU.
#   benchmarks/gpu.sh            # on the GPU machine; results in benchmarks/results/
#   benchmarks/gpu.sh --dry-run  # the same runs on the CPU with the tiny model, small sizes
# Three targets: (1) engine >= 150x naive and >= 60 clips/s, (2) class-name scoring >= 100
# clips/s (both from run 1), (3) peak memory <= 50 GiB at 32 clips, N = 16, 48 tokens (run 2).
# Each run is capped by TIMEOUT_S (default 900 s). Exits non-zero if a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT_DIR:-benchmarks/results}
LIMIT=${TIMEOUT_S:-900}
if [[ "${1:-}" == "--dry-run" ]]; then
  COMMON=(--model tiny --device cpu)
  ONE=(--clips 4 --n 4 --new-tokens 8 --naive-clips 2)
  TWO=(--clips 4 --n 4 --new-tokens 8 --no-naive --beams 0)
  T1=(); T2=()
  OUT=${OUT_DIR:-$(mktemp -d)}
else
  COMMON=(--model 7b-shaped --device cuda --seconds-per-clip 5)
  # 1. N = 8, 16 new tokens, 16 clips of 5 s: engine vs naive, class-name scoring (K = 6),
  #    beam search (4 beams) and the compiled step. The naive loop runs on 4 clips.
  ONE=(--clips 16 --n 8 --new-tokens 16 --batch 16 --naive-clips 4 --compile)
  T1=(--min-ratio 150 --min-clips-per-s 60 --min-score-clips-per-s 100)
  # 2. 32 clips in one batch, N = 16, 48 new tokens: peak memory, shared vs repeated prompt.
  TWO=(--clips 32 --n 16 --new-tokens 48 --batch 32 --no-naive --beams 0)
  T2=(--max-peak-gib 50)
fi
"$PY" - <<'PY'
import torch, transformers
card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (CPU run)"
print(f"device: {card}; torch {torch.__version__}; transformers {transformers.__version__}")
PY
mkdir -p "$OUT"
status=0
timeout "$LIMIT" "$PY" benchmarks/bench_sampling.py "${COMMON[@]}" "${ONE[@]}" "${T1[@]}" --json "$OUT/n8_t16_c16.json" || status=1
timeout "$LIMIT" "$PY" benchmarks/bench_sampling.py "${COMMON[@]}" "${TWO[@]}" "${T2[@]}" --json "$OUT/n16_t48_c32.json" || status=1
echo "results in $OUT"
exit $status
