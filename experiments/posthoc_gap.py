r"""How far the post-hoc SGD fit of B_k lands from the least-squares optimum.

For each version k >= 1 of ``posthoc-linear-sloss``, compares the fitted
``W_k`` with the exact minimiser ``W*`` of the post-hoc selection criterion
(the mean of the user and the item MSE between ``z_k W`` and ``z_{k-1}`` over
every node of version k's graph; the minimum-norm one, as the embeddings are
rank-deficient), and writes per version: both criterion values, their ratio
and relative gap ``(loss_sgd - loss_opt) / loss_opt``, ``||W_k - W*||_F``
(also relative to ``||W*||_F``) and the chain's MSE to version 0.
``--strategy=posthoc-linear-mloss`` measures the multi-step fit, whose
minimiser is the same ``W*``.

The run is the default config on ml-100k except ``config.epochs``, the
embedding models' epochs, set by ``--epochs`` (default 10, not 40) so the
whole check takes minutes on a CPU; the post-hoc fit itself runs with the
config's own settings (``--transform_init`` overrides the linear start,
``config.transform.linear.init``). M_k (nobc) does not depend on the
post-hoc code, so
runs of two versions of bcjax compare fits on the same embeddings.
``--base=converged`` takes the post-hoc settings of
``experiments/configs/converged.py`` instead of the default's; the
embedding models are the same, so two runs on one workdir compare the two
fits of B_k on the same M_k.

Usage::

  python -m experiments.posthoc_gap --workdir=/tmp/posthoc_gap \
      --data_dir=/work/shared/data/ml-100k --output=gap.json
  python -m experiments.posthoc_gap --workdir=/tmp/posthoc_gap_converged \
      --data_dir=/work/shared/data/ml-100k --output=gap_converged.json \
      --base=converged
  # The committed converged_start_*.json and converged_init_mloss.json:
  python -m experiments.posthoc_gap --workdir=/tmp/gap --epochs=40 \
      --data_dir=/work/shared/data/ml-100k --base=converged \
      --strategy=posthoc-linear-mloss --output=converged_start_mloss.json
  python -m experiments.posthoc_gap --workdir=/tmp/gap_init --epochs=40 \
      --data_dir=/work/shared/data/ml-100k --base=converged --start=init \
      --learning_rate=1e-2 --strategy=posthoc-linear-mloss \
      --output=converged_init_mloss.json
"""

import json
import os
import time

import numpy as np
from absl import app, flags, logging

from bcjax import environment
from bcjax.evaluation.alignment import alignment_error
from bcjax.jobs import experiment as experiment_lib
from bcjax.jobs import runner
from bcjax.jobs.run_data import RunData
from bcjax.methods.base import M0_METHOD
from bcjax.methods.strategies import parse_strategy
from bcjax.models.pinsage import embed
from experiments.configs import converged, default

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for the run's checkpoints.")
flags.DEFINE_string("data_dir", "/work/shared/data/ml-100k", "ml-100k's files.")
flags.DEFINE_string("output", None, "Where the JSON report goes.")
flags.DEFINE_integer("epochs", 10, "Epochs of each embedding model M_k.")
flags.DEFINE_string(
  "transform_init",
  None,
  "config.transform.linear.init (unset: the config's own).",
)
flags.DEFINE_enum(
  "base",
  "default",
  ["default", "converged"],
  "The config whose post-hoc settings (config.method.posthoc) fit B_k.",
)
flags.DEFINE_enum(
  "strategy",
  "posthoc-linear-sloss",
  ["posthoc-linear-sloss", "posthoc-linear-mloss"],
  "The post-hoc strategy whose B_k is measured (both have the least-squares "
  "B_k as their minimiser).",
)
flags.DEFINE_enum(
  "start",
  None,
  ["init", "closed_form"],
  "config.method.posthoc.start (unset: the base config's own).",
)
flags.DEFINE_float(
  "learning_rate", None, "config.method.posthoc.learning_rate (unset: the base's)."
)
flags.mark_flags_as_required(["workdir", "output"])


def min_norm_least_squares(current, previous) -> np.ndarray:
  """The minimum-norm minimiser of the post-hoc criterion, in float64.

  The embeddings are rank-deficient (dead units): the normal equations are
  singular, so the pseudo-inverse gives the optimum's least-norm ``W``.
  """
  gram = sum(
    np.asarray(z, np.float64).T @ np.asarray(z, np.float64) / len(z) for z in current
  )
  cross = sum(
    np.asarray(z, np.float64).T @ np.asarray(y, np.float64) / len(z)
    for z, y in zip(current, previous)
  )
  return (np.linalg.pinv(gram, rcond=1e-12, hermitian=True) @ cross).astype(np.float32)


def main(argv):
  del argv
  environment.set_up_process()
  config = default.get_config()
  if FLAGS.base == "converged":
    config.method.posthoc = converged.get_config().method.posthoc
  config.dataset = "ml-100k"
  config.data_dir = FLAGS.data_dir
  config.epochs = FLAGS.epochs
  config.strategy = f"{M0_METHOD},{FLAGS.strategy}"
  if FLAGS.start is not None:
    config.method.posthoc.start = FLAGS.start
  if FLAGS.learning_rate is not None:
    config.method.posthoc.learning_rate = FLAGS.learning_rate
  if FLAGS.transform_init is not None:
    config.transform.linear.init = FLAGS.transform_init
  experiment = experiment_lib.resolve(config)
  config = experiment.config
  os.makedirs(FLAGS.workdir, exist_ok=True)
  data = RunData.load(experiment, FLAGS.workdir)
  run = runner.Runner(data)
  strategy = {s.name: s for s in experiment.strategies}[
    parse_strategy(FLAGS.strategy).name
  ]
  family = strategy.transform
  versions = []
  tick = time.perf_counter()
  for k in range(1, config.num_versions):
    fitted = run.version(strategy, k)
    graph = data.bipartite(k)
    current = embed(fitted.model, fitted.variables, graph)
    old = run.version(run.strategy(M0_METHOD), k - 1)
    previous = embed(old.model, old.variables, graph)
    w_sgd = np.asarray(family.as_matrix(fitted.transform_params), np.float64)
    w_opt = min_norm_least_squares(current, previous)
    loss_sgd = alignment_error(family, fitted.transform_params, current, previous)
    loss_opt = alignment_error(family, {"kernel": w_opt}, current, previous)
    distance = float(np.linalg.norm(w_sgd - w_opt))
    versions.append(
      {
        "version": k,
        "d_in": int(w_sgd.shape[0]),
        "d_out": int(w_sgd.shape[1]),
        "num_train": data.splits[k].num_train,
        "best_epoch": fitted.result.transform_best_epoch,
        "loss_posthoc": loss_sgd,
        "loss_least_squares": loss_opt,
        "relative_gap": (loss_sgd - loss_opt) / loss_opt,
        "ratio": loss_sgd / loss_opt,
        "frobenius_distance": distance,
        "relative_frobenius_distance": distance / float(np.linalg.norm(w_opt)),
        "recall50_nobc": fitted.result.recall[50],
        "alignment_mse_v0": fitted.result.alignment_mse_v0,
      }
    )
    logging.info("%s", versions[-1])
  report = {
    "dataset": config.dataset,
    "strategy": FLAGS.strategy,
    "embedding_epochs": config.epochs,
    "base": FLAGS.base,
    "posthoc_config": {
      **config.method.posthoc.to_dict(),
      # The run's cadence and batch; B_k's rate is the section's own.
      **{f: config.get(f) for f in ("eval_every", "batch_size")},
      "transform_init": config.transform.linear.init,
    },
    "seconds": time.perf_counter() - tick,
    "versions": versions,
  }
  with open(FLAGS.output, "w") as f:
    json.dump(report, f, indent=2)


if __name__ == "__main__":
  app.run(main)
