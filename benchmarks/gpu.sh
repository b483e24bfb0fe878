#!/usr/bin/env bash
# The whole benchmark on a lent GPU in one call (about 8 minutes): the
# paper's Amazon sizes at dim 512 / 3 layers, then the accelerator-sized
# graph with 10M x 512 serving. Each run's JSON lands in $OUT; the tables
# are printed again at the end, last, so one call's tail holds every number.
#   bash benchmarks/gpu.sh            # on the GPU machine
#   SMOKE=1 bash benchmarks/gpu.sh    # tiny sizes, to check the script on CPU
set -u
export PYTHONUNBUFFERED=1
out="${OUT:-/tmp/bcjax_bench}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"

run() {  # name, seconds allowed, then flags of python -m benchmarks
  local name=$1 limit=$2
  shift 2
  echo "== $name"
  timeout "$limit" python3 -m benchmarks --json="$out/$name.json" "$@" \
    > "$out/$name.txt" 2> "$out/$name.log"
  echo "exit $?"
  cat "$out/$name.txt"
  [ -s "$out/$name.txt" ] || grep -v '^[IW][0-9]' "$out/$name.log" | tail -5
}

if [ "${SMOKE:-0}" = 1 ]; then
  run smoke 300 --users=300 --items=200 --interactions=6000 --dim=32 --layers=2 \
    --serve_rows=4096 --serve_host_rows=1024 --repeats=2 --timed_steps=2
else
  # Time limits add up to 460 s, so the summary below always prints.
  run musical-instruments 100 --size=musical-instruments --dim=512 --layers=3
  run video-games 100 --size=video-games --dim=512 --layers=3 --notorch --nodeterminism
  run grocery 110 --size=grocery --dim=512 --layers=3 --notorch --nodeterminism
  run 1m 150 --size=1m --dim=512 --layers=3 --notorch --nodeterminism \
    --timed_steps=5 --repeats=3 --serve_rows=10000000 --serve_host_rows=1000000
fi

echo
echo "==================== all tables ===================="
for f in "$out"/*.txt; do
  echo "-- $(basename "$f" .txt)"
  cat "$f"
done
