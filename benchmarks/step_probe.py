r"""Times one version's training epoch, evaluation and determinism.

A first probe towards the full benchmark: on a synthetic graph of a given
size it reports the median time of a training step (the jitted epoch under
``lax.scan`` divided by its steps), the Recall@K evaluation over all users,
and whether two runs from the same state and key give bit-identical losses.

Usage::

  python -m benchmarks.step_probe --users=27500 --items=10600 \
      --interactions=231000 --dim=512 --layers=3 --json=/tmp/probe.json
  python -m benchmarks.step_probe --dataset=ml-100k \
      --data_dir=../shared/data/ml-100k --dim=256 --layers=2

Run it once more with ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` on a
GPU to see what determinism costs there.
"""

import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from bcjax.data.bipartite import BipartiteGraph
from bcjax.data.datasets import load_dataset
from bcjax.data.split import split_version
from bcjax.evaluation.recall import RecallEvaluator
from bcjax.models.pinsage import PinSAGE, embed, init_variables
from bcjax.train import create_train_state, make_train_epoch, steps_per_epoch

flags.DEFINE_string("dataset", "synthetic", "Dataset name (see bcjax.data).")
flags.DEFINE_string("data_dir", "", "Folder of a real dataset's files.")
flags.DEFINE_integer("users", 27_500, "Users of the synthetic graph.")
flags.DEFINE_integer("items", 10_600, "Items of the synthetic graph.")
flags.DEFINE_integer("interactions", 231_000, "Interactions.")
flags.DEFINE_integer("version", 4, "Version whose split is trained.")
flags.DEFINE_integer("dim", 512, "Embedding dimension.")
flags.DEFINE_integer("layers", 3, "SAGE layers.")
flags.DEFINE_integer("batch_size", 2048, "Triples per step.")
flags.DEFINE_integer("epochs", 5, "Timed epochs after the warm-up epoch.")
flags.DEFINE_integer("determinism_epochs", 2, "Epochs of each determinism run.")
flags.DEFINE_string("json", "", "Write the numbers to this file too.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  tick = time.perf_counter()
  graph = load_dataset(
    FLAGS.dataset,
    FLAGS.data_dir or None,
    {
      "num_users": FLAGS.users,
      "num_items": FLAGS.items,
      "num_interactions": FLAGS.interactions,
    },
  )
  split = split_version(graph, FLAGS.version)
  bipartite = BipartiteGraph.from_split(split)
  setup = time.perf_counter() - tick
  model = PinSAGE(FLAGS.dim, FLAGS.layers)
  variables = init_variables(model, bipartite, jax.random.key(0))
  num_steps = steps_per_epoch(split.num_train, FLAGS.batch_size)
  train_epoch = make_train_epoch(model, num_steps, FLAGS.batch_size, 1e-2)

  def fresh_state():
    return create_train_state(
      model, jax.tree.map(jnp.array, variables), optax.adam(1e-3)
    )

  state = fresh_state()
  tick = time.perf_counter()
  state, metrics = train_epoch(state, bipartite, jax.random.key(1), None)
  jax.block_until_ready(metrics)
  compile_and_first = time.perf_counter() - tick
  times = []
  for epoch in range(FLAGS.epochs):
    tick = time.perf_counter()
    state, metrics = train_epoch(state, bipartite, jax.random.key(2 + epoch), None)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - tick)
  epoch_s = statistics.median(times)

  # Determinism: the same state and keys twice.
  losses = []
  for _ in range(2):
    s = fresh_state()
    run = []
    for epoch in range(FLAGS.determinism_epochs):
      s, m = train_epoch(s, bipartite, jax.random.key(100 + epoch), None)
      run.append(float(m["loss"]))
    losses.append(run)

  evaluator = RecallEvaluator(split, chunk_size=1024)
  current = {"params": state.params["model"], "batch_stats": state.batch_stats}
  user_emb, item_emb = embed(model, current, bipartite)
  evaluator(user_emb, item_emb)
  eval_times = []
  for _ in range(3):
    tick = time.perf_counter()
    evaluator(user_emb, item_emb)
    eval_times.append(time.perf_counter() - tick)

  result = {
    "device": str(jax.devices()[0]),
    "backend": jax.default_backend(),
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
    "users": split.num_users,
    "items": split.num_items,
    "train_interactions": split.num_train,
    "directed_edges": int(bipartite.senders.shape[0]),
    "dim": FLAGS.dim,
    "layers": FLAGS.layers,
    "steps_per_epoch": num_steps,
    "setup_s": round(setup, 3),
    "compile_and_first_epoch_s": round(compile_and_first, 3),
    "epoch_s_median": round(epoch_s, 4),
    "step_ms_median": round(1000 * epoch_s / num_steps, 3),
    "eval_users": evaluator.num_eval_users,
    "eval_s_median": round(statistics.median(eval_times), 4),
    "losses_run1": losses[0],
    "losses_run2": losses[1],
    "bit_identical": losses[0] == losses[1],
    "max_abs_loss_diff": float(np.max(np.abs(np.subtract(*losses)))),
  }
  print(json.dumps(result, indent=1))
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  app.run(main)
