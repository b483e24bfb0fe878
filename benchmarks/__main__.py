r"""Benchmarks bcjax against the hardware floor and against PyTorch + PyG.

For one graph (a real dataset, or a synthetic one of a named size), it
measures the device's matmul rate and memory bandwidth, then times the
intended-task training step and epoch, Recall@K evaluation, and serving of
version K embeddings as version 0 through the registry, and prints one table
row each with the floor those peaks set and the ratio measured / floor. With
PyTorch and PyG installed (``pip install -e .[bench]``) it also times the same
step in PyTorch and prints the speed-up. Numbers also go to ``--json``.

Usage::

  python -m benchmarks --dataset=ml-100k --data_dir=../shared/data/ml-100k \
      --dim=256 --layers=2 --json=/tmp/ml100k.json
  python -m benchmarks --size=musical-instruments --dim=512 --layers=3

Sizes (synthetic, the paper's Amazon sets and one for accelerators):
musical-instruments, video-games, grocery, 1m (1M users, 100k items, 10M
interactions).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
from absl import app, flags

from bcjax.data.datasets import load_dataset
from bcjax.data.split import split_version
from bcjax.models.aggregation import LAYOUTS
from bcjax.models.device_graph import BipartiteGraph
from benchmarks import hardware, protocol, torch_step, workloads
from benchmarks.workloads import SIZES

flags.DEFINE_string("dataset", "synthetic", "Dataset name (see bcjax.data).")
flags.DEFINE_string("data_dir", "", "Folder of a real dataset's files.")
flags.DEFINE_enum("size", None, list(SIZES), "Synthetic graph of a named size.")
flags.DEFINE_integer("users", 27_500, "Users of a synthetic graph.")
flags.DEFINE_integer("items", 10_600, "Items of a synthetic graph.")
flags.DEFINE_integer("interactions", 231_000, "Interactions of a synthetic graph.")
flags.DEFINE_integer("version", 4, "Version whose training graph is used.")
flags.DEFINE_integer("dim", 256, "Embedding dimension.")
flags.DEFINE_integer("layers", 2, "SAGE layers.")
flags.DEFINE_integer("batch_size", 2048, "BPR triples per step.")
flags.DEFINE_integer("edge_chunk", -1, "Edges aggregated at once (-1: default).")
flags.DEFINE_enum(
  "layout",
  None,
  list(LAYOUTS),
  "Sums of rows: scatter-add, or sorted, pallas or mosaic (deterministic); default "
  "per backend.",
)
flags.DEFINE_enum(
  "precision",
  "default",
  ["default", "float32", "tf32"],
  "float32 matmuls of both frameworks: JAX's default (TF32 on NVIDIA GPUs, "
  "PyTorch then at full float32), full float32, or TF32.",
)
flags.DEFINE_bool("projection", True, "Project the paper's whole protocol.")
flags.DEFINE_integer("consumer_examples", 1 << 16, "Examples of the timed consumer.")
flags.DEFINE_integer("timed_steps", 10, "Steps per timed call.")
flags.DEFINE_integer("repeats", 5, "Timed calls of each workload.")
flags.DEFINE_integer("max_epoch_steps", 200, "Time whole epochs up to this size.")
flags.DEFINE_bool("determinism", True, "Check that two runs are bit-identical.")
flags.DEFINE_integer("serve_rows", 1 << 20, "Rows served on the device.")
flags.DEFINE_integer("serve_host_rows", 1 << 16, "Rows served from the host.")
flags.DEFINE_integer("serve_dim", 0, "Width of served versions (0: --dim).")
flags.DEFINE_integer("serve_versions", 5, "Versions in the served chain.")
flags.DEFINE_bool("torch", True, "Time the PyTorch + PyG step if installed.")
flags.DEFINE_list("torch_layouts", ["csr", "edge_index"], "PyG layouts to time.")
flags.DEFINE_string("json", "", "Also write the numbers to this file.")
FLAGS = flags.FLAGS
NAME_WIDTH = 42


def _load():
  if FLAGS.size:
    users, items, interactions = SIZES[FLAGS.size]
  else:
    users, items, interactions = FLAGS.users, FLAGS.items, FLAGS.interactions
  graph = load_dataset(
    FLAGS.dataset,
    FLAGS.data_dir or None,
    {"num_users": users, "num_items": items, "num_interactions": interactions},
  )
  split = split_version(graph, FLAGS.version)
  chunk = None if FLAGS.edge_chunk < 0 else FLAGS.edge_chunk
  name = FLAGS.size or FLAGS.dataset
  first = split_version(graph, 0)
  # The five core tasks' training examples at version 0: the edges, the
  # users twice (two activity tasks), the items at most twice.
  consumer_examples = first.num_train + 2 * first.num_users + 2 * first.num_items
  device_graph = BipartiteGraph.from_split(split, FLAGS.layout, chunk)
  return name, split, device_graph, consumer_examples


def _row(name, seconds, floor_s, torch_s=None, unit="time", rows=None):
  """One table row: measured, floor, ratio, and the PyTorch comparison."""
  if unit == "rate":
    shown = f"{rows / seconds / 1e6:9.2f} M rows/s"
    floor = f"{rows / floor_s / 1e6:9.2f} M rows/s"
  else:
    shown, floor = _duration(seconds), _duration(floor_s)
  versus = ""
  if torch_s is not None:
    versus = f"{_duration(torch_s)}  {torch_s / seconds:6.2f}x"
  return (
    f"{name:<{NAME_WIDTH}}{shown:>18}{floor:>18}{seconds / floor_s:>11.2f}x"
    f"{100 * floor_s / seconds:>9.0f}%  {versus}"
  ).rstrip()


def _duration(seconds):
  if seconds >= 1:
    return f"{seconds:9.3f} s"
  return f"{1e3 * seconds:9.2f} ms"


def _time_torch(graph, split, backend):
  """PyTorch + PyG steps per layout, and a line saying what ran."""
  if not FLAGS.torch:
    return {}, "not run (--notorch)"
  if not torch_step.available():
    return (
      {},
      "skipped: torch / torch_geometric not installed (pip install -e .[bench])",
    )
  results = {
    layout: torch_step.time_step(
      graph,
      split,
      FLAGS.dim,
      FLAGS.layers,
      batch_size=FLAGS.batch_size,
      steps=FLAGS.timed_steps * FLAGS.repeats,
      layout=layout,
      device="cuda" if backend == "gpu" else "cpu",
      tf32=FLAGS.precision == "tf32",
    )
    for layout in FLAGS.torch_layouts
  }
  note = "; ".join(
    f"{k}: {1e3 * v['step_s']:.2f} ms, {v['threads']} threads, float32 matmul "
    f"precision {v['matmul_precision']}"
    for k, v in results.items()
  )
  return results, note


def main(argv):
  del argv
  if FLAGS.precision != "default":
    jax.config.update(
      "jax_default_matmul_precision",
      "highest" if FLAGS.precision == "float32" else "tensorfloat32",
    )
  tick = time.perf_counter()
  name, split, graph, consumer_examples = _load()
  setup_s = time.perf_counter() - tick
  train = workloads.time_training(
    graph,
    split,
    FLAGS.dim,
    FLAGS.layers,
    batch_size=FLAGS.batch_size,
    timed_steps=FLAGS.timed_steps,
    repeats=FLAGS.repeats,
    max_epoch_steps=FLAGS.max_epoch_steps,
    check_determinism=FLAGS.determinism,
  )
  # Before serving and the peak probes allocate their own large arrays.
  memory = {
    "host_peak_rss_bytes": hardware.host_peak_rss_bytes(),
    "device_peak_bytes": hardware.device_peak_bytes(),
  }
  evaluation = workloads.time_evaluation(
    graph, split, FLAGS.dim, FLAGS.layers, repeats=FLAGS.repeats
  )
  serve_dim = FLAGS.serve_dim or FLAGS.dim
  serve = workloads.time_serving(
    FLAGS.serve_rows,
    serve_dim,
    FLAGS.serve_versions,
    repeats=FLAGS.repeats,
    host_rows=FLAGS.serve_host_rows,
  )
  projection = None
  if FLAGS.projection:
    projection = protocol.project(
      epoch_s=train.epoch_s,
      eval_s=evaluation.seconds,
      consumer_epoch_s_per_example=protocol.consumer_epoch_seconds(
        FLAGS.consumer_examples, FLAGS.dim
      )
      / FLAGS.consumer_examples,
      consumer_examples=consumer_examples,
    )
  peaks = hardware.measure_peaks()
  torch_results, torch_note = _time_torch(graph, split, peaks.backend)
  best_torch = min((r["step_s"] for r in torch_results.values()), default=None)

  def floor(cost, scale=1.0):
    return peaks.floor_seconds(cost.flops * scale, cost.bytes * scale)

  floors = {
    "step": floor(train.cost),
    "eval": floor(evaluation.cost),
    "collapsed": floor(serve.collapsed_cost),
    "stepwise": floor(serve.stepwise_cost),
    "host": floor(serve.collapsed_cost, serve.host_rows / serve.rows),
  }
  latest = FLAGS.serve_versions - 1
  device_peak = memory["device_peak_bytes"]
  lines = [
    f"bcjax benchmark: {name} v{FLAGS.version} ({split.num_users} users, "
    f"{split.num_items} items, {split.num_train} train interactions), dim "
    f"{FLAGS.dim}, {FLAGS.layers} layers, batch {FLAGS.batch_size}, layout "
    f"{graph.layout}",
    f"device: {peaks.device} ({peaks.backend}, one of {jax.device_count()}); "
    f"measured peaks {peaks.flops_per_s / 1e9:.1f} GFLOP/s ({peaks.matmul_size}^3 "
    f"f32 matmul, {peaks.matmul_precision}), {peaks.bytes_per_s / 1e9:.1f} GB/s "
    f"(scaling a {peaks.copy_bytes / 2**21:.0f} MiB array in place)",
    f"PyTorch + PyG: {torch_note}",
    "",
    f"{'workload':<{NAME_WIDTH}}{'measured':>18}{'floor':>18}{'meas/floor':>12}"
    f"{'of floor':>10}  PyTorch, speed-up",
    _row("train step", train.step_s, floors["step"], best_torch),
    _row(
      f"train epoch ({train.steps_per_epoch} steps"
      + (")" if train.epoch_measured else ", projected)"),
      train.epoch_s,
      floors["step"] * train.steps_per_epoch,
    ),
    _row(
      f"Recall@K eval ({evaluation.users} users)", evaluation.seconds, floors["eval"]
    ),
    *(
      _row(f"serve v{latest}->v0 {how}", seconds, floors[key], unit="rate", rows=rows)
      for how, key, seconds, rows in (
        ("collapsed, device", "collapsed", serve.collapsed_s, serve.rows),
        ("step by step, device", "stepwise", serve.stepwise_s, serve.rows),
        ("registry.transform, host", "host", serve.host_s, serve.host_rows),
      )
    ),
    f"{'peak host RSS (load + training)':<{NAME_WIDTH}}"
    f"{memory['host_peak_rss_bytes'] / 2**20:>14.0f} MiB",
    f"{'peak device memory (training)':<{NAME_WIDTH}}"
    + (
      f"{device_peak / 2**20:>14.0f} MiB"
      if device_peak is not None
      else f"{'not reported by ' + peaks.backend:>18}"
    ),
    "",
    f"train step: {train.cost.flops / 1e9:.2f} GFLOP and at least "
    f"{train.cost.bytes / 2**20:.0f} MiB; compile + first call "
    f"{train.compile_s:.1f} s; evaluation compiled {evaluation.compilations} "
    f"time(s); determinism: "
    + (
      "not checked"
      if train.bit_identical is None
      else ("bit-identical" if train.bit_identical else "NOT bit-identical")
    )
    + f"; collapsed vs step-by-step serving max |diff| {serve.max_abs_diff:.2e}",
  ]
  if projection is not None:
    lines += [
      f"paper protocol, projected: {projection.total_s / 3600:.2f} h "
      f"(model epochs {projection.model_s / 3600:.2f} h, evaluations "
      f"{projection.eval_s / 3600:.2f} h, consumers {projection.consumer_s / 3600:.2f}"
      f" h for {consumer_examples} core-task examples)",
    ]
  print("\n".join(lines))

  if FLAGS.json:
    result = {
      "graph": {
        "name": name,
        "version": FLAGS.version,
        "users": split.num_users,
        "items": split.num_items,
        "train_interactions": split.num_train,
        "layout": graph.layout,
        "edge_chunk": FLAGS.edge_chunk,
        "setup_s": setup_s,
      },
      "model": {"dim": FLAGS.dim, "layers": FLAGS.layers, "batch": FLAGS.batch_size},
      "device": {
        "kind": peaks.device,
        "backend": peaks.backend,
        "devices_visible": jax.device_count(),  # every workload runs on one
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "peak_flops_per_s": peaks.flops_per_s,
        "peak_bytes_per_s": peaks.bytes_per_s,
        "matmul_precision": peaks.matmul_precision,
        "precision_flag": FLAGS.precision,
      },
      "train": {
        "step_s": train.step_s,
        "step_floor_s": floors["step"],
        "step_flops": train.cost.flops,
        "step_min_bytes": train.cost.bytes,
        "epoch_s": train.epoch_s,
        "epoch_measured": train.epoch_measured,
        "steps_per_epoch": train.steps_per_epoch,
        "compile_and_first_call_s": train.compile_s,
        "bit_identical": train.bit_identical,
      },
      "eval": {
        "seconds": evaluation.seconds,
        "floor_s": floors["eval"],
        "users": evaluation.users,
        "compilations": evaluation.compilations,
      },
      "serve": {
        "rows": serve.rows,
        "dim": serve_dim,
        "versions": FLAGS.serve_versions,
        "collapsed_s": serve.collapsed_s,
        "collapsed_floor_s": floors["collapsed"],
        "stepwise_s": serve.stepwise_s,
        "stepwise_floor_s": floors["stepwise"],
        "host_rows": serve.host_rows,
        "host_s": serve.host_s,
        "host_floor_s": floors["host"],
        "max_abs_diff": serve.max_abs_diff,
      },
      "memory": memory,
      "torch": {
        layout: {k: v for k, v in r.items() if k != "losses"}
        for layout, r in torch_results.items()
      },
      "torch_note": torch_note,
      "projection": None
      if projection is None
      else dict(
        dataclasses.asdict(projection),
        total_s=projection.total_s,
        consumer_examples=consumer_examples,
      ),
    }
    with open(FLAGS.json, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  app.run(main)
