r"""Embedding seeds per hour: S seeds of one version sequentially vs batched.

Trains version ``--version`` of nobc for S embedding seeds (the keys the
runner draws for seeds 0..S-1) on the default config's sizes (its dims,
layers, batch size, learning rate, taus; ``--epochs`` instead of its 40, a
measurement, not a run), once as today's runner does (one
:func:`~bcjax.fitting.version_fit.fit_version` per seed, each compiling its
epoch) and once as :func:`~bcjax.fitting.version_fit.fit_version_seeds`
(one program, vmapped over the seeds), and reports wall seconds, seeds per
hour and their ratio, with the mean epoch time (compilation and evaluations
left out) to show where the time goes. ``--size`` (or ``--synthetic``) trains
on a synthetic graph of that size instead of ``--dataset``, and ``--dim`` /
``--layers`` replace the config's model (``benchmarks/gpu.sh`` runs it at
Musical-Instruments size, 512 by 3).

Then the consumers of the same S seeds (each seed's M_0 embeddings from the
batched fits): every task of the dataset with the default config's consumer
grid, once per seed with :func:`~bcjax.fitting.consumers.fit_consumer` and
once for all seeds with :func:`~bcjax.fitting.consumers.fit_consumers`, as
the comparison job trains them with ``config.seed_batch`` 1 and S. Each row
also gives the seeds per hour of model and consumers together.

The first row (S=1) runs both paths' code alike (one seed takes the plain
path): its ratio is the order's warm-up advantage to the batched run, the
noise floor of the other rows.

Usage::

  nice -n 10 python -m benchmarks.seed_batch \
      --data_dir=../shared/data/ml-100k --seeds=1,4,10 --epochs=10 \
      --json=benchmarks/results/cpu2_seed_batch_ml100k.json
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time

import jax
from absl import app, flags

from bcjax import keys
from bcjax.data.datasets import load_dataset
from bcjax.data.split import split_version
from bcjax.fitting.consumers import fit_consumer, fit_consumers
from bcjax.fitting.tasks import available_tasks, build_task
from bcjax.fitting.train import FitConfig
from bcjax.fitting.version_fit import fit_version, fit_version_seeds
from bcjax.jobs import run_settings
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.pinsage import PinSAGE, embed
from benchmarks.workloads import SIZES
from experiments.configs import default

flags.DEFINE_string("dataset", "ml-100k", "Dataset name (see bcjax.data).")
flags.DEFINE_string(
  "data_dir",
  os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ml-100k"),
  "Folder of the dataset's files.",
)
flags.DEFINE_enum(
  "size", None, list(SIZES), "A synthetic graph of this named size instead."
)
flags.DEFINE_list(
  "synthetic", [], "users,items,interactions of a synthetic graph instead."
)
flags.DEFINE_integer("version", 0, "The version trained (its dims and layers).")
flags.DEFINE_integer("dim", 0, "Embedding width (0: the default config's).")
flags.DEFINE_integer("layers", 0, "Layers (0: the default config's).")
flags.DEFINE_list("seeds", ["1", "4", "10"], "Seed counts S to time.")
flags.DEFINE_integer("epochs", 10, "Epochs of every fit (default config: 40).")
flags.DEFINE_bool("consumers", True, "Also time the seeds' consumers.")
flags.DEFINE_string("json", "", "Also write the numbers to this file.")
FLAGS = flags.FLAGS


def _time(fn):
  start = time.perf_counter()
  fits = fn()
  jax.block_until_ready([f.variables for f in fits])
  return time.perf_counter() - start, fits


def _time_consumers(config, graph, model, fits):
  """Seconds of every task's consumers of the seeds: one by one, and batched.

  Args:
    config: the default config (taus, seed, consumer grid).
    graph: the dataset.
    model: the version-0 model of ``fits``.
    fits: one :class:`~bcjax.fitting.train.FitResult` of M_0 per seed.
  """
  splits = [split_version(graph, j, config.taus) for j in range(len(config.taus) - 1)]
  tasks = [
    build_task(name, graph, splits, seed=config.seed) for name in available_tasks(graph)
  ]
  consumer = run_settings.read(config).consumer
  tables = {}
  for j in {0} | {t.selection_version for t in tasks}:
    device_graph = BipartiteGraph.from_split(splits[j])
    tables[j] = [jax.device_get(embed(model, f.variables, device_graph)) for f in fits]
  sequential = batched = 0.0
  for task in tasks:
    key = keys.consumer_key(config.seed, task.name)
    train, selection = tables[0], tables[task.selection_version]
    start = time.perf_counter()
    for t, s in zip(train, selection, strict=True):
      jax.block_until_ready(fit_consumer(task, t, s, consumer, key).variables)
    sequential += time.perf_counter() - start
    start = time.perf_counter()
    out = fit_consumers(task, train, selection, consumer, key)
    jax.block_until_ready([c.variables for c in out])
    batched += time.perf_counter() - start
  return [t.name for t in tasks], sequential, batched


def main(argv):
  del argv
  config = default.get_config()
  sizes = SIZES[FLAGS.size] if FLAGS.size else [int(v) for v in FLAGS.synthetic]
  if sizes:
    spec = dict(zip(("num_users", "num_items", "num_interactions"), sizes, strict=True))
    graph = load_dataset("synthetic", None, spec)
  else:
    graph = load_dataset(FLAGS.dataset, FLAGS.data_dir)
  name = FLAGS.size or ("synthetic" if sizes else FLAGS.dataset)
  k = FLAGS.version
  split = split_version(graph, k, config.taus)
  model = PinSAGE(
    dim=FLAGS.dim or config.dims[k], num_layers=FLAGS.layers or config.layers[k]
  )
  fit_config = FitConfig(
    epochs=FLAGS.epochs,
    eval_every=config.eval_every,
    batch_size=config.batch_size,
    learning_rate=config.learning_rate,
    weight_decay=config.weight_decay,
    eval_chunk_size=config.eval_chunk_size,
  )
  # As the runner builds it once per version and passes it to every fit.
  device_graph = BipartiteGraph.from_split(split)
  print(
    f"{name} v{k}: {split.num_users} users, {split.num_items} items, "
    f"{split.num_train} training interactions; d={model.dim}, "
    f"{model.num_layers} layers, {FLAGS.epochs} epochs, eval every "
    f"{fit_config.eval_every}"
  )
  rows = []
  for s in [int(v) for v in FLAGS.seeds]:
    seed_keys = [keys.version_key(config.seed, "nobc", k, i) for i in range(s)]
    seq_s, seq = _time(
      lambda seed_keys=seed_keys: [
        fit_version(model, split, fit_config, key, graph=device_graph)
        for key in seed_keys
      ]
    )
    bat_s, bat = _time(
      lambda seed_keys=seed_keys: fit_version_seeds(
        model, split, fit_config, seed_keys, graph=device_graph
      )
    )
    row = {
      "seeds": s,
      "sequential_seconds": seq_s,
      "batched_seconds": bat_s,
      "sequential_seeds_per_hour": s * 3600 / seq_s,
      "batched_seeds_per_hour": s * 3600 / bat_s,
      "ratio": seq_s / bat_s,
      # Mean epoch without compilation and evaluations: one seed's, and the
      # whole batch's (all S seeds).
      "sequential_epoch_seconds": sum(f.seconds_per_epoch for f in seq) / s,
      "batched_epoch_seconds": bat[0].seconds_per_epoch,
      "recall50_sequential": [f.recall[50] for f in seq],
      "recall50_batched": [f.recall[50] for f in bat],
    }
    print(
      f"S={s:3d}  sequential {seq_s:8.1f} s ({row['sequential_seeds_per_hour']:7.1f}"
      f" seeds/h, epoch {row['sequential_epoch_seconds']:.3f} s/seed)  batched "
      f"{bat_s:8.1f} s ({row['batched_seeds_per_hour']:7.1f} seeds/h, epoch "
      f"{row['batched_epoch_seconds']:.3f} s for all)  ratio {row['ratio']:.2f}x",
      flush=True,
    )
    if FLAGS.consumers:
      tasks, c_seq, c_bat = _time_consumers(config, graph, model, bat)
      row.update(
        consumer_tasks=tasks,
        consumer_sequential_seconds=c_seq,
        consumer_batched_seconds=c_bat,
        consumer_ratio=c_seq / c_bat,
        total_ratio=(seq_s + c_seq) / (bat_s + c_bat),
        total_sequential_seeds_per_hour=s * 3600 / (seq_s + c_seq),
        total_batched_seeds_per_hour=s * 3600 / (bat_s + c_bat),
      )
      print(
        f"       consumers of {len(tasks)} tasks: sequential {c_seq:8.1f} s  "
        f"batched {c_bat:8.1f} s  ratio {row['consumer_ratio']:.2f}x; model and "
        f"consumers {row['total_ratio']:.2f}x",
        flush=True,
      )
    rows.append(row)
  if FLAGS.json:
    commit = subprocess.run(
      ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    record = {
      "dataset": name,
      "version": k,
      "num_users": split.num_users,
      "num_items": split.num_items,
      "num_train": split.num_train,
      "dim": model.dim,
      "layers": model.num_layers,
      "epochs": FLAGS.epochs,
      "eval_every": fit_config.eval_every,
      "batch_size": fit_config.batch_size,
      "backend": jax.default_backend(),
      "cpu_count": os.cpu_count(),
      "machine": platform.machine(),
      "jax": jax.__version__,
      "commit": commit,
      "rows": rows,
    }
    with open(FLAGS.json, "w") as f:
      json.dump(record, f, indent=2)


if __name__ == "__main__":
  app.run(main)
