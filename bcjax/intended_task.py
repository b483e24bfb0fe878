"""The intended-task job: train every version of each strategy, record it.

``run(config, workdir)`` loads the dataset, splits it into versions, trains
the embedding model of each version (Recall@50 selects the best epoch) and
writes ``workdir/results.json`` with, per strategy and version, the model
sizes, the best epoch, Recall@K and the timings, beside the most-popular
baseline of every split.
"""

from __future__ import annotations

import os
import time

import jax
import ml_collections
from absl import logging

from bcjax import atomic_files
from bcjax import config as config_lib
from bcjax.data.datasets import load_dataset
from bcjax.data.split import split_version
from bcjax.evaluation.recall import most_popular_recall
from bcjax.models.pinsage import PinSAGE
from bcjax.train import FitConfig, fit_version


def _recall_json(recall: dict[int, float]) -> dict[str, float]:
  return {str(k): float(v) for k, v in recall.items()}


def fit_config(config: ml_collections.ConfigDict) -> FitConfig:
  return FitConfig(
    epochs=config.epochs,
    eval_every=config.eval_every,
    batch_size=config.batch_size,
    learning_rate=config.learning_rate,
    weight_decay=config.weight_decay,
  )


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains every version of every strategy in ``config``.

  Args:
    config: an experiment config (see ``experiments/configs/default.py``).
    workdir: the output folder; ``results.json`` is written there.

  Returns:
    The results, as written to ``results.json``.
  """
  config_lib.validate(config)
  strategies = config_lib.strategy_names(config)
  os.makedirs(workdir, exist_ok=True)
  tick = time.perf_counter()
  graph = load_dataset(
    config.dataset,
    config.data_dir or None,
    config.synthetic.to_dict() if "synthetic" in config else None,
  )
  logging.info("%s (loaded in %.1fs)", graph.summary(), time.perf_counter() - tick)
  splits = [split_version(graph, k, config.taus) for k in range(config.num_versions)]
  results = {
    "dataset": {
      "name": config.dataset,
      "fingerprint": graph.fingerprint(),
      "num_users": graph.num_users,
      "num_items": graph.num_items,
      "num_interactions": graph.num_edges,
    },
    "config": config.to_dict(),
    "baselines": {
      "most-popular": [
        {"version": s.version, "recall": _recall_json(most_popular_recall(s))}
        for s in splits
      ]
    },
    "strategies": {},
  }
  key = jax.random.key(config.seed)
  for strategy in strategies:
    entries = results["strategies"][strategy] = []
    for split in splits:
      k = split.version
      model = PinSAGE(dim=config.dims[k], num_layers=config.layers[k])
      fit = fit_version(
        model,
        split,
        fit_config(config),
        jax.random.fold_in(key, k),
        label=f"{strategy} v{k}",
      )
      entries.append(
        {
          "version": k,
          "dim": config.dims[k],
          "layers": config.layers[k],
          "tau_train": split.tau_train,
          "tau_val": split.tau_val,
          "num_users": split.num_users,
          "num_items": split.num_items,
          "num_train": split.num_train,
          "num_val": split.num_val,
          "best_epoch": fit.best_epoch,
          "recall": _recall_json(fit.recall),
          "train_seconds": fit.train_seconds,
          "seconds_per_epoch": fit.seconds_per_epoch,
          "history": fit.history,
        }
      )
      logging.info(
        "%s v%d best epoch %d recall@50 %.4f (most popular %.4f), %.3fs per epoch",
        strategy,
        k,
        fit.best_epoch,
        fit.recall[50],
        results["baselines"]["most-popular"][k]["recall"]["50"],
        fit.seconds_per_epoch,
      )
      atomic_files.write_json(os.path.join(workdir, "results.json"), results)
  atomic_files.write_json(os.path.join(workdir, "results.json"), results)
  return results
