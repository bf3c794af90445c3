#!/usr/bin/env bash
# Everything we want to know about the CUDA path, from one run on one GPU (H100/H200), in under 8 minutes:
#   bash benchmarks/gpu_check.sh            on a machine where torch sees a CUDA device
#   bash benchmarks/gpu_check.sh --smoke    (or SMOKE=1) the same stages on the CPU at toy sizes, well under a minute
# Prints the hardware and software, then one `=== [k/5] ... ===` header per stage:
#   1. the CUDA tests (`pytest -m cuda`; on the CPU they skip, saying why)
#   2. G_P forward images/s (batch 1/16/64) and training-step images/s, 128 and 256 px, paper width 64,
#      fp32 and bf16, eager and channels_last (benchmarks/bench_generator.py)
#   3. a short LaFIn training run at 256 px, paper width: steps/s (it also makes the checkpoint of stage 4)
#   4. `generate` end to end against the raw forward of the same model, size, batch and precision, on the
#      shared wild crops, with a profile of where generate's time goes (benchmarks/bench_generate.py)
#   5. G_P forward images/s under torch.compile at 256 px (last, because its compilation time is the least known;
#      a `#` line gives each warm-up's time, compilation included, as soon as it is done)
# Every stage runs under `timeout`, capped by what is left of a 450 s budget; a failed or stopped stage does
# not stop the next ones, and the closing summary names it (exit status 1 then).
# Env: PYTHON (default .venv/bin/python, else python3); LAFIN_AUG_SHARED_DATA (default ../shared/data; the
# synthetic faces stand in when wild/train is absent there).
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=${SMOKE:-0}
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--smoke]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
WILD=${LAFIN_AUG_SHARED_DATA:-../shared/data}/wild/train

problem=$("$PY" - "$SMOKE" <<'EOF' 2>&1
import sys
try:
    import torch
    import lafin_aug.cli.main  # noqa: F401  (the package and its CLI are installed)
except ImportError as error:
    sys.exit(f"{sys.executable} cannot import {error.name} (install with: python -m pip install --no-deps -e .)")
if sys.argv[1] != "1" and not torch.cuda.is_available():
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
    sys.exit(f"no CUDA device visible to torch {torch.__version__} ({build}); "
             f"`bash benchmarks/gpu_check.sh --smoke` runs the same stages on the CPU")
EOF
) || { echo "gpu_check: ${problem##*$'\n'}" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [ "$SMOKE" = 1 ]; then
  DEVICE=cpu; SIZE=32; WIDTH=8; BLOCKS=1; BATCHES=(1 2); TRAIN_BATCH=2; TRAIN_STEPS=3
  GEN_BATCH=2; FACES=16; SYNTHETIC=16
  SIZES=(32); BENCH=(--threads "${OMP_NUM_THREADS:-1}" --warmup 1 --iters 1)
  COMPILE=(--sizes 32 --precisions fp32 --infer-batch 1 --compile-backend aot_eager)
  TRAIN_OPTIONS=(--model disc_width=8 --model vgg_weights=off --precision fp32)
  LIMITS=(60 60 60 60 60)
else
  DEVICE=cuda; SIZE=256; WIDTH=64; BLOCKS=7; BATCHES=(1 16 64); TRAIN_BATCH=16; TRAIN_STEPS=60
  GEN_BATCH=64; FACES=0; SYNTHETIC=256
  SIZES=(128 256); BENCH=(--warmup 3 --iters 10)
  COMPILE=(--sizes 256 --precisions bf16 fp32 --infer-batch "${BATCHES[@]}")
  TRAIN_OPTIONS=(--model vgg_weights=random --precision auto)
  LIMITS=(120 120 100 90 150)
fi
BENCH+=(--device "$DEVICE" --width "$WIDTH" --blocks "$BLOCKS")

BUDGET=${BUDGET:-$([ "$SMOKE" = 1 ] && echo 150 || echo 450)}
START=$SECONDS
SUMMARY=()
STAGE=0
run_stage() {  # title limit_s command...: the command under `timeout`, within what is left of the budget
  local title=$1 limit=$2; shift 2
  local left=$((BUDGET - (SECONDS - START))) began=$SECONDS rc=0
  STAGE=$((STAGE + 1))
  ((limit <= left)) || limit=$left
  echo "=== [$STAGE/5] $title (limit ${limit} s) ==="
  if ((limit < 10)); then
    SUMMARY+=("[$STAGE/5] $title: skipped, the time budget is spent"); return 0
  fi
  timeout --kill-after=10 "$limit" "$@" || rc=$?
  local took=$((SECONDS - began))
  case $rc in
    0) SUMMARY+=("[$STAGE/5] $title: ok, ${took} s") ;;
    124 | 137) SUMMARY+=("[$STAGE/5] $title: STOPPED at its ${limit} s limit") ;;
    *) SUMMARY+=("[$STAGE/5] $title: FAILED (exit status $rc) after ${took} s") ;;
  esac
  return 0
}

MODE="CUDA mode"
[ "$SMOKE" = 1 ] && MODE="smoke mode, every stage on the CPU at toy sizes"
echo "gpu_check: $MODE; $(date -u +%FT%TZ)"
"$PY" - <<'EOF'
import os
import platform

import torch

from lafin_aug.runtime import cpu_capability

if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print(f"GPU: {torch.cuda.get_device_name(0)} (compute capability {props.major}.{props.minor}, "
          f"{props.total_memory / 2**30:.0f} GiB, bf16: {'yes' if torch.cuda.is_bf16_supported() else 'no'}, "
          f"{torch.cuda.device_count()} visible)")
else:
    print("GPU: none")
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), "
      f"Python {platform.python_version()}")
print(f"CPU capability: {cpu_capability()}; {os.cpu_count()} cores")
EOF
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv,noheader || true
fi
if [ -d "$WILD" ]; then  # stage 4 takes the first FACES faces of wild/train (0: all of them)
  TRAIN_DATA=(--dataset pts --root "$WILD"); GEN_DATA=(--dataset pts --root "$WILD" --faces "$FACES")
else
  echo "note: $WILD is absent: synthetic faces stand in"
  TRAIN_DATA=(--dataset synthetic --count 64); GEN_DATA=(--dataset synthetic --faces "$SYNTHETIC")
fi

run_stage "CUDA tests: pytest -m cuda" "${LIMITS[0]}" \
  "$PY" -m pytest -q -m cuda --continue-on-collection-errors tests/  # a module needing a missing extra stops nothing

run_stage "G_P forward and training step, eager and channels_last (bench_generator.py)" "${LIMITS[1]}" \
  "$PY" benchmarks/bench_generator.py "${BENCH[@]}" --sizes "${SIZES[@]}" --infer-batch "${BATCHES[@]}" \
  --train-batch "$TRAIN_BATCH" --variants eager channels_last

RUN=$WORK/inpainter
TRAIN_START=$SECONDS
run_stage "LaFIn training at ${SIZE} px, width ${WIDTH}, batch ${TRAIN_BATCH}, ${TRAIN_STEPS} steps" "${LIMITS[2]}" \
  "$PY" -m lafin_aug.cli.main train inpainter --family lafin "${TRAIN_DATA[@]}" --size "$SIZE" \
  --steps "$TRAIN_STEPS" --batch "$TRAIN_BATCH" --model width="$WIDTH" --model blocks="$BLOCKS" "${TRAIN_OPTIONS[@]}" \
  --model log_every=1 --sample-every 0 --device "$DEVICE" --out "$RUN"
if [ -f "$RUN/log.csv" ]; then
  "$PY" - "$RUN/log.csv" "$TRAIN_BATCH" "$((SECONDS - TRAIN_START))" <<'EOF'
import csv
import statistics
import sys

with open(sys.argv[1], newline="") as handle:
    rates = [float(row["images_per_s"]) for row in csv.DictReader(handle)]
batch, wall = int(sys.argv[2]), int(sys.argv[3])
if rates:
    first = min(len(rates) - 1, max(1, len(rates) // 5))  # the first steps allocate and pick kernels
    median = statistics.median(rates[first:])
    print(f"training: {median / batch:.2f} steps/s ({median:.1f} images/s at batch {batch}), median of steps "
          f"{first + 1}-{len(rates)}; {len(rates)} steps in a {wall} s command (start-up and cropping included)")
else:
    print("training: no step was logged")
EOF
fi

if [ -f "$RUN/checkpoints/last.pt" ]; then
  MODEL=(--inpainter "$RUN")
else
  echo "note: stage 3 left no checkpoint: stage 4 uses an untrained one of the same width and size"
  MODEL=(--width "$WIDTH" --size "$SIZE")
fi
run_stage "generate end to end against the raw forward, with a profile (bench_generate.py)" "${LIMITS[3]}" \
  "$PY" benchmarks/bench_generate.py --device "$DEVICE" "${MODEL[@]}" "${GEN_DATA[@]}" --batch "$GEN_BATCH" \
  --epochs 2 --profile

run_stage "G_P forward under torch.compile (bench_generator.py)" "${LIMITS[4]}" \
  "$PY" benchmarks/bench_generator.py "${BENCH[@]}" "${COMPILE[@]}" --variants compile --no-train

echo "=== summary ($((SECONDS - START)) s) ==="
printf '%s\n' "${SUMMARY[@]}"
for line in "${SUMMARY[@]}"; do
  [[ $line == *": ok, "* ]] || exit 1
done
