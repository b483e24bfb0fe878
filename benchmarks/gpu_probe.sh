#!/usr/bin/env bash
# One call on a lent GPU: step, evaluation and determinism probes at the
# paper's Amazon sizes (dim 512, 3 layers), the deterministic-ops run last
# because it is the slow one. Numbers land in $OUT/*.json.
set -u
export PYTHONUNBUFFERED=1
out="${OUT:-/tmp/bcjax_probe}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
quiet() { grep -v '^[IW][0-9]'; }
echo "== Musical-Instruments size"
python3 -m benchmarks.step_probe --dim=512 --layers=3 --json="$out/mi_512.json" 2>&1 | quiet
echo "== Video-Games size"
python3 -m benchmarks.step_probe --users=55000 --items=17000 --interactions=497000 \
  --dim=512 --layers=3 --json="$out/vg_512.json" 2>&1 | quiet
echo "== Musical-Instruments size, --xla_gpu_deterministic_ops=true"
XLA_FLAGS=--xla_gpu_deterministic_ops=true python3 -m benchmarks.step_probe \
  --dim=512 --layers=3 --epochs=1 --determinism_epochs=1 \
  --json="$out/mi_512_deterministic.json" 2>&1 | quiet
