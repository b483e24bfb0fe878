#!/usr/bin/env bash
# Every GPU measurement in one call (about 8 minutes), in priority order. Two
# files come back in $OUT, appended to as each section ends, so that a
# cut-off call still returns what it measured: results.jsonl (one benchmark
# JSON per line) and output.txt (everything printed; the tables are printed
# again at the end); at the end, logs.tgz holds every section's log. Logs
# stay in /tmp/bcjax_logs; a failed section prints the end of its log.
# `python -m benchmarks.report output.txt` summarises.
#   0. The aggregation probe (layouts, row-lookup gradients, Recall@K chunk
#      sizes, the step with each layout, a profiler trace).
#   1. Musical-Instruments size, dim 512, 3 layers, TF32: the deterministic
#      layouts (degree buckets, the Pallas kernel) beside PyTorch + PyG, with
#      the paper-protocol projection; the kernel's Mosaic GPU port (alone);
#      then the atomic scatter layout, its speed and determinism.
#   2. run_intended twice with the same seed (the Pallas kernel, its Mosaic
#      GPU port, then the degree buckets): results.json bit for bit.
#   3. The same size at full float32, both frameworks.
#   4. The scatter layout under XLA's deterministic-ops flag (a few steps).
#   5. Larger sizes without PyTorch; then run_intended twice with the
#      scatter layout (the control: atomics should make them differ).
#   6. The paper's config (experiments/configs/paper.py) on MovieLens-100K,
#      3 embedding seeds as one batch, in stages that each reuse the last
#      one's fits from one workdir: paper-a (nobc, fix-m0,
#      posthoc-linear-sloss, BC-Aligner), then section 7, then paper-b (the
#      paper's eight) and paper-c (with bcjax's own). Each finished stage's
#      results.json comes back as $OUT/<stage>.json; a stage (and section
#      7) gets what is left of BUDGET seconds (default 540) from the
#      script's start, at most its own limit. The
#      first stage alone outlasted a 15-minute lease (h200_6b6a1cb): the
#      whole run needs a device for about an hour.
#   7. Embedding seeds as a batch (benchmarks.seed_batch): 1 and 10 seeds of
#      M_0 and their consumers at Musical-Instruments size, one by one and
#      as one program (target: 10 batched in <= 2x one).
# The GPU machine lacks ml_collections and tensorboardX (the main job's
# needs, and protobuf, tensorboardX's): fetch their wheels into .whl/ here
# (pip download --no-deps ml_collections tensorboardX protobuf), carry it,
# and install them first, without touching the machine's JAX:
#   pip install -q --no-index --no-deps --target /tmp/site \
#     .whl/ml_collections*.whl .whl/tensorboardx*.whl
#   python3 -c "import google.protobuf" || pip install -q --no-index \
#     --no-deps --target /tmp/site .whl/protobuf*.whl
#   export PYTHONPATH=/tmp/site:$PWD
#   bash benchmarks/gpu.sh            # on the GPU machine
#   ONLY="probe mi-sorted-tf32" bash benchmarks/gpu.sh   # chosen sections
#   SMOKE=1 bash benchmarks/gpu.sh    # tiny sizes, to check the script on CPU
# The paper stages read MovieLens-100K from PAPER_DATA (default
# ../shared/data/ml-100k, which does not travel to the GPU machine: copy it
# into an ignored folder, carry it and point PAPER_DATA at it).
set -u
export PYTHONUNBUFFERED=1
out="${OUT:-/tmp/bcjax_bench}"
logs=/tmp/bcjax_logs
rm -rf "$logs"
mkdir -p "$out" "$logs"
exec > >(tee -a "$out/output.txt") 2>&1
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-/tmp/bcjax_jax_cache}"
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
end=$(( $(date +%s) + ${BUDGET:-540} ))
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', \
flax.__version__, 'optax', optax.__version__, jax.devices())"
python3 -c "import torch, torch_geometric as g; print('torch', torch.__version__, \
'pyg', g.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tail -1

wanted() {  # ONLY="name ..." runs just those sections
  [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]
}

bench() {  # name, seconds allowed, then flags of python -m benchmarks
  local name=$1 limit=$2
  shift 2
  wanted "$name" || return 0
  echo "== $name ($(date +%T))"
  timeout "$limit" python3 -m benchmarks --json="$logs/$name.json" "$@" \
    > "$logs/$name.txt" 2> "$logs/$name.log"
  echo "exit $?"
  cat "$logs/$name.txt"
  [ -s "$logs/$name.txt" ] || grep -v '^[IW][0-9]' "$logs/$name.log" | tail -5
  if [ -s "$logs/$name.json" ]; then
    python3 -c "import json, sys; print(json.dumps(dict(json.load(open(sys.argv[1])), \
section=sys.argv[2])))" "$logs/$name.json" "$name" >> "$out/results.jsonl"
  fi
}

same_seed() {  # name, seconds allowed per run, then config overrides
  local name=$1 limit=$2
  shift 2
  wanted "$name" || return 0
  echo "== $name ($(date +%T))"
  for run in a b; do
    rm -rf "/tmp/$name-$run"
    timeout "$limit" python3 -m experiments.run_intended \
      --workdir="/tmp/$name-$run" --config=experiments/configs/test.py "$@" \
      2> "$logs/$name-$run.log"
    local code=$?
    echo "run $run exit $code"
    [ $code = 0 ] || grep -v '^[IW][0-9]' "$logs/$name-$run.log" | tail -5
  done
  python3 -m benchmarks.same_results "/tmp/$name-a/results.json" \
    "/tmp/$name-b/results.json" | tee "$logs/$name.txt"
}

paper_stage() {  # name, longest seconds, strategies: see section 6
  local name=$1 cap=$2 limit
  wanted "$name" || return 0
  limit=$(( end - $(date +%s) - 5 ))
  (( limit > cap )) && limit=$cap
  echo "== $name ($(date +%T), ${limit} s allowed)"
  (( limit > 30 )) || { echo "skipped: no time left"; return 0; }
  timeout "$limit" python3 -m experiments.compare --workdir=/tmp/bcjax_paper \
    --config=experiments/configs/paper.py --config.dataset=ml-100k \
    --config.data_dir="${PAPER_DATA:-../shared/data/ml-100k}" \
    --config.num_seeds=3 --config.seed_batch=3 --config.strategy="$3" \
    "${paper[@]}" 2> "$logs/$name.log"
  local code=$?
  echo "exit $code"
  # Each fit's last epoch and the last line (where a stopped stage got to)
  # say where the time went.
  { grep -E 'epoch ([0-9]+)/\1 .*seed 1/|B_[0-9]: best' "$logs/$name.log"
    grep 'seed 1/' "$logs/$name.log" | tail -1; } \
    | sed 's/^[IW][0-9]* [0-9:.]* *[0-9]* //' | tail -60
  [ $code = 0 ] || grep -v '^[IW][0-9]' "$logs/$name.log" | tail -5
  [ -s /tmp/bcjax_paper/results.json ] && [ $code = 0 ] \
    && cp /tmp/bcjax_paper/results.json "$out/$name.json"
  rm -f /tmp/bcjax_paper/results.json
}

mi=(--size=musical-instruments --dim=512 --layers=3)
paper=()
if [ "${SMOKE:-0}" = 1 ]; then
  mi=(--users=300 --items=200 --interactions=6000 --dim=32 --layers=2
    --serve_rows=4096 --serve_host_rows=1024 --repeats=2 --timed_steps=2
    --consumer_examples=1024)
  big=("${mi[@]}")
  # The default candidates but the mosaic ones: Mosaic GPU's interpreter
  # reads rows one callback at a time, minutes at this size.
  candidates=scatter,sorted-g2,set-g2,pallas,pallas-w8-b512-p64-n4
  candidates+=,pallas-w4-b512-p32-n4,pallas-w2-b512-p32-n4
  candidates+=,pallas-w4-b512-p64-n2,pallas-w4-b256-p64-n2
  probe=(--users=300 --items=200 --interactions=6000 --dim=32 --layers=2
    --repeats=2 --timed_steps=2 --candidates=$candidates)
  seeds=(--synthetic=300,200,6000 --dim=32 --layers=2 --seeds=1,2 --epochs=2)
  paper=('--config.dims=(16,16,24,24,32)' --config.epochs=2 --config.eval_every=1
    --config.method.joint.keep_after=0
    --config.method.posthoc.epochs=2 --config.method.posthoc.keep_after=0
    --config.method.finetune_m0.epochs=2 --config.consumer.epochs=2
    --config.consumer.seeds=2 '--config.consumer.hidden_sizes=(8,)'
    '--config.consumer.dropouts=(0.0,)')
else
  probe=(--size=musical-instruments --dim=512 --layers=3 ${PROBE_FLAGS:-})
  big=()
  seeds=(--size=musical-instruments --dim=512 --layers=3 --seeds=1,10 --epochs=5)
fi
strategies=--config.strategy=nobc,bc-aligner

if wanted probe; then  # where the deterministic step's time goes
  echo "== probe ($(date +%T))"
  timeout "${PROBE_LIMIT:-180}" python3 -m benchmarks.aggregation_probe "${probe[@]}" \
    --trace_dir=/tmp/bcjax_trace --json="$out/probe.json" 2> "$logs/probe.log"
  echo "exit $?"
  grep -v '^[IW][0-9]' "$logs/probe.log" | tail -5
  find /tmp/bcjax_trace -name '*.trace.json.gz' -exec cp {} "$out/step.trace.json.gz" \;
fi
# PyG's edge_index step was the slower one in every call so far (H200 12.34
# against CSR 8.21 ms, H100 18.37 against 13.19): only CSR is timed.
bench mi-sorted-tf32 150 "${mi[@]}" --layout=sorted --precision=tf32 \
  --torch_layouts=csr
bench mi-pallas-tf32 150 "${mi[@]}" --layout=pallas --precision=tf32 \
  --torch_layouts=csr
[ "${SMOKE:-0}" = 1 ] || bench mi-mosaic-tf32 150 "${mi[@]}" --layout=mosaic \
  --precision=tf32 --notorch --noprojection
bench mi-scatter-tf32 60 "${mi[@]}" --layout=scatter --precision=tf32 \
  --notorch --noprojection
same_seed same-seed-pallas 120 "$strategies" --config.layout=pallas
[ "${SMOKE:-0}" = 1 ] || same_seed same-seed-mosaic 120 "$strategies" \
  --config.layout=mosaic
same_seed same-seed-sorted 120 "$strategies" --config.layout=sorted
bench mi-pallas-fp32 150 "${mi[@]}" --layout=pallas --precision=float32 \
  --noprojection --nodeterminism --torch_layouts=csr
XLA_FLAGS=--xla_gpu_deterministic_ops=true bench mi-scatter-xladet 50 \
  "${mi[@]}" --layout=scatter --precision=tf32 --notorch --noprojection \
  --nodeterminism --timed_steps=2 --repeats=2 --max_epoch_steps=0 \
  --serve_rows=65536
if [ "${SMOKE:-0}" = 1 ]; then
  bench smoke-big 60 "${big[@]}" --notorch --noprojection
else
  bench video-games 60 --size=video-games --dim=512 --layers=3 --notorch \
    --noprojection --nodeterminism
  bench 1m 150 --size=1m --dim=512 --layers=3 --notorch --noprojection \
    --nodeterminism --timed_steps=5 --repeats=3 --serve_rows=10000000 \
    --serve_host_rows=1000000
fi
same_seed same-seed-scatter 120 "$strategies" --config.layout=scatter
paper_stage paper-a 300 nobc,fix-m0,posthoc-linear-sloss,joint-linear-mloss

if wanted seed-batch; then  # S seeds one by one and as one program
  limit=$(( end - $(date +%s) - 5 ))
  (( limit > ${SEED_BATCH_LIMIT:-300} )) && limit=${SEED_BATCH_LIMIT:-300}
  echo "== seed-batch ($(date +%T), ${limit} s allowed)"
  timeout "$limit" python3 -m benchmarks.seed_batch "${seeds[@]}" \
    --json="$logs/seed-batch.json" > "$logs/seed-batch.txt" 2> "$logs/seed-batch.log"
  echo "exit $?"
  cat "$logs/seed-batch.txt"
  [ -s "$logs/seed-batch.json" ] || grep -v '^[IW][0-9]' "$logs/seed-batch.log" | tail -5
  if [ -s "$logs/seed-batch.json" ]; then
    python3 -c "import json, sys; print(json.dumps(dict(json.load(open(sys.argv[1])), \
section='seed-batch')))" "$logs/seed-batch.json" >> "$out/results.jsonl"
  fi
fi

paper_stage paper-b 600 paper
own=closedform-linear-sloss,closedform-orthogonal-sloss,posthoc-orthogonal-sloss
own+=,joint-orthogonal-mloss,posthoc-mlp-sloss
paper_stage paper-c 600 "paper,$own"

echo
echo "==================== all tables ===================="
for f in "$logs"/*.txt; do
  echo "-- $(basename "$f" .txt)"
  grep -v '^$' "$f" | grep -v '^PyTorch + PyG: not run' || true
done
tar czf "$out/logs.tgz" -C "$logs" . 2>/dev/null
