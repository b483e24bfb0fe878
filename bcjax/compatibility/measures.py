"""The three measures: drift along the chain, retrieval against an old
index, and consumers that start at any version (see the package docstring)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np

from bcjax import keys, registry
from bcjax.compatibility.stores import KINDS, RETRIEVAL_K, Tables, digest, saved_tables
from bcjax.data.split import VersionSplit
from bcjax.evaluation.recall import RecallEvaluator
from bcjax.evaluation.unintended import mean_over_seeds
from bcjax.fitting.consumer_checkpoints import load_consumer, save_consumer
from bcjax.fitting.consumers import (
  Consumer,
  ConsumerConfig,
  fit_consumer,
)

# -- 3. drift along the chain ---------------------------------------------------


def relative_drift(mapped: np.ndarray, saved: np.ndarray) -> float:
  """Mean row distance of ``mapped`` to ``saved`` over ``saved``'s mean row norm.

  Args:
    mapped: ``(n, d)`` rows read through a chain.
    saved: ``(n, d)`` the rows they should match.
  """
  distance = np.linalg.norm(mapped - saved, axis=1).mean()
  norm = np.linalg.norm(saved, axis=1).mean()
  return float(distance / norm) if norm > 0 else float("nan")


def chain_drift(reg: registry.EmbeddingRegistry) -> dict[tuple[int, int], float]:
  """Relative drift of every pair ``j < k`` of a strategy's versions.

  The nodes of version ``j`` (ids by first appearance, so version ``k``'s
  first rows) are read through ``B_{j+1..k}`` from ``z_k`` and compared with
  the saved ``z_j``, users and items stacked into one ``(n, d_j)`` matrix.

  Returns:
    ``(j, k) -> drift``.
  """
  out = {}
  for j in range(reg.latest_version):
    saved = saved_tables(reg, j, j)
    for k in range(j + 1, reg.latest_version + 1):
      mapped = [
        reg.compatible_embeddings(k, j, ids=np.arange(len(s)), kind=kind)
        for s, kind in zip(saved, KINDS, strict=True)
      ]
      out[(j, k)] = relative_drift(np.concatenate(mapped), np.concatenate(saved))
  return out


# -- 2. retrieval against an old index --------------------------------------------


def index_split(split: VersionSplit, num_index_items: int) -> VersionSplit:
  """Version ``k``'s split restricted to the first ``num_index_items`` items.

  Items are numbered by first appearance, so these are the items of an older
  version's index; validation items outside it are no targets, and the
  training items inside it stay excluded from the ranking.
  """
  keep_train = split.train_item < num_index_items
  keep_val = split.val_item < num_index_items
  return dataclasses.replace(
    split,
    num_items=int(num_index_items),
    train_user=split.train_user[keep_train],
    train_item=split.train_item[keep_train],
    train_rating=split.train_rating[keep_train],
    val_user=split.val_user[keep_val],
    val_item=split.val_item[keep_val],
    val_rating=split.val_rating[keep_val],
    item_attrs={},
  )


def retrieval_recalls(
  split: VersionSplit,
  new_query: np.ndarray,
  new_query_native: np.ndarray,
  old_query: np.ndarray,
  old_index: np.ndarray,
  new_index: np.ndarray,
  top: int = RETRIEVAL_K,
  chunk_size: int = 512,
) -> dict:
  """Recall@``top`` of three query/index pairs on the same users and targets.

  Args:
    split: version ``k``'s split restricted to the index (:func:`index_split`).
    new_query: ``(num_users_k, d_j)`` users of ``M_k`` read through the chain.
    new_query_native: ``(num_users_k, d_k)`` users of ``M_k`` (saved ``z_k``).
    old_query: ``(num_users_k, d_j)`` users of ``M_j`` run on ``G_k``.
    old_index: ``(num_index_items, d_j)`` the saved item ``z_j``.
    new_index: ``(num_index_items, d_k)`` ``M_k``'s embeddings of those items.
    top: the cut-off K.
    chunk_size: users scored at once.

  Returns:
    ``new_old``, ``old_old`` and ``new_new`` Recall@K (None without any
    target), ``num_users``, ``num_targets`` and ``compatible``: BCT's
    criterion ``new_old > old_old`` (None without targets).
  """
  users = np.unique(split.val_user)
  out = {"num_users": int(len(users)), "num_targets": int(len(split.val_user))}
  if len(users) == 0:
    return dict(out, new_old=None, old_old=None, new_new=None, compatible=None)
  evaluator = RecallEvaluator(split, ks=(top,), chunk_size=chunk_size)
  out["new_old"] = evaluator(new_query, old_index)[top]
  out["old_old"] = evaluator(old_query, old_index)[top]
  out["new_new"] = evaluator(new_query_native, new_index)[top]
  out["compatible"] = bool(out["new_old"] > out["old_old"])
  return out


def retrieval(
  reg: registry.EmbeddingRegistry,
  frozen: Callable[[int, int], Tables],
  splits: Sequence[VersionSplit],
  j: int,
  k: int,
  chunk_size: int = 512,
) -> dict:
  """:func:`retrieval_recalls` of one strategy's pair ``j < k``.

  Args:
    reg: the strategy's registry.
    frozen: ``(j, k) -> (user, item)`` of the strategy's ``M_j`` on ``G_k``.
    splits: the version splits.
    j: the index version.
    k: the query version.
    chunk_size: users scored at once.
  """
  old_index = reg.compatible_embeddings(j, j, kind="item")
  ids = np.arange(len(old_index))
  return retrieval_recalls(
    index_split(splits[k], len(old_index)),
    new_query=reg.compatible_embeddings(k, j, kind="user"),
    new_query_native=reg.compatible_embeddings(k, k, kind="user"),
    old_query=frozen(j, k)[0],
    old_index=old_index,
    new_index=reg.compatible_embeddings(k, k, ids=ids, kind="item"),
    chunk_size=chunk_size,
  )


# -- 1. consumers that start at any version ---------------------------------------


def consumer_key(seed: int, task: str, start: int) -> jax.Array:
  """The PRNG key of a task's consumers starting at ``start``.

  At ``start == 0`` it is the main job's key, so a version-0 consumer fitted
  here is the main job's consumer.
  """
  return keys.start_version_key(keys.consumer_key(seed, task), start)


def start_consumer(
  task,
  train_tables: Tables,
  selection_tables: Tables,
  config: ConsumerConfig,
  seed: int,
  cache_dir: str,
  fitted: Consumer | None = None,
) -> Consumer:
  """The consumers of ``task`` (built with ``start``), fitted once and saved.

  Saved under ``cache_dir/<task>/v<start>-<fingerprint>``, the fingerprint
  covering the settings and the bytes of the embeddings read: strategies with
  the same ``z_j`` (nobc and the post-hoc ones) share one fit, and a rerun
  reuses it.

  Args:
    task: the task, built for the consumer's start version.
    train_tables: ``(user, item)`` embeddings the training examples read.
    selection_tables: those the selection examples read.
    config: the consumers' settings.
    seed: the run's seed (:func:`consumer_key`).
    cache_dir: where consumers are saved.
    fitted: consumers already fitted on these inputs with this key (the main
      job's version-0 ones): saved instead of fitted, so that an analysis of
      the workdir finds them.
  """
  start = task.train.version
  blob = json.dumps(
    {
      "consumer": dataclasses.asdict(config),
      "seed": seed,
      "task": task.name,
      "start": start,
      "train": digest(train_tables),
      "selection": digest(selection_tables),
    },
    sort_keys=True,
    default=list,
  )
  fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:16]
  path = os.path.join(cache_dir, task.name, f"v{start}-{fingerprint}")
  consumer = load_consumer(path, task, fingerprint)
  if consumer is None:
    consumer = fitted
    if consumer is None:
      key = consumer_key(seed, task.name, start)
      consumer = fit_consumer(task, train_tables, selection_tables, config, key)
    save_consumer(path, consumer, fingerprint)
  return consumer


def consumer_row(
  consumer: Consumer,
  task,
  tables: Callable[[int], Tables],
  frozen: Callable[[int], Tables],
  report_split: str = "validation",
) -> dict:
  """A consumer's metric at every version after its start, and on frozen M_j.

  Args:
    consumer: the consumers of ``task`` (started at ``task.train.version``).
    task: the task built for that start.
    tables: ``k -> B_{j+1..k}(z_k)`` of the strategy.
    frozen: ``k -> M_j`` on ``G_k``.
    report_split: which examples are scored: their report half (embedding
      seed 0's, :meth:`~bcjax.fitting.tasks.Task.halves`).

  Returns:
    ``{"selection_version", "values": {k: metric}, "frozen": {k: metric}}``
    for every ``k > j``; the summary averages ``k > selection_version``.
  """
  j = task.train.version
  values, reference = {}, {}
  for k in sorted(task.evaluation):
    if k > j:
      examples = task.evaluation[k]
      rows = {"report": task.halves(examples, report_split, 0)["report"]}
      for out, read in ((values, tables), (reference, frozen)):
        out[k] = mean_over_seeds(
          consumer.scores_of_rows(read(k), examples, rows)["report"]
        )
  return {
    "selection_version": task.selection_version,
    "values": values,
    "frozen": reference,
  }


def mean_of_defined(values) -> float | None:
  kept = [v for v in values if v is not None and math.isfinite(v)]
  return math.fsum(kept) / len(kept) if kept else None


def _relative(value, reference) -> float | None:
  if value is None or reference is None or reference == 0:
    return None
  return 100.0 * (value / reference - 1.0)


def summarize_consumers(rows: Mapping[str, Mapping[int, dict]]) -> dict:
  """A strategy's triangular matrix and its means relative to frozen M_j.

  Args:
    rows: task -> start ``j`` -> :func:`consumer_row`.

  Returns:
    ``matrix`` and ``frozen_matrix``: ``j -> k ->`` mean over the tasks
    evaluated there (``k`` after the task's selection version);
    ``relative_matrix`` per cell in %; ``per_start``: ``j -> {"mean",
    "frozen", "relative"}`` where each mean runs over the tasks defined for
    both sides (as the comparison table does); ``relative``: the mean of the
    row means against the mean of the frozen ones, in %.
  """
  starts = sorted({j for per_start in rows.values() for j in per_start})
  matrix, frozen_matrix, relative_matrix, per_start = {}, {}, {}, {}
  for j in starts:
    tasks = {t: per_start[j] for t, per_start in rows.items() if j in per_start}
    ks = sorted({k for row in tasks.values() for k in row["values"]})
    matrix[j], frozen_matrix[j], relative_matrix[j] = {}, {}, {}
    for k in ks:
      later = [r for r in tasks.values() if k > r["selection_version"]]
      both = [
        r
        for r in later
        if r["values"].get(k) is not None and r["frozen"].get(k) is not None
      ]
      matrix[j][k] = mean_of_defined(r["values"].get(k) for r in later)
      frozen_matrix[j][k] = mean_of_defined(r["frozen"].get(k) for r in later)
      relative_matrix[j][k] = _relative(
        mean_of_defined(r["values"][k] for r in both),
        mean_of_defined(r["frozen"][k] for r in both),
      )
    task_means = {
      t: (
        mean_of_defined(
          v for k, v in r["values"].items() if k > r["selection_version"]
        ),
        mean_of_defined(
          v for k, v in r["frozen"].items() if k > r["selection_version"]
        ),
      )
      for t, r in tasks.items()
    }
    common = [m for m in task_means.values() if None not in m]
    mean = mean_of_defined(m[0] for m in common)
    reference = mean_of_defined(m[1] for m in common)
    per_start[j] = {
      "mean": mean,
      "frozen": reference,
      "relative": _relative(mean, reference),
      "tasks": sorted(t for t, m in task_means.items() if None not in m),
    }
  defined = [r for r in per_start.values() if r["relative"] is not None]
  return {
    "matrix": matrix,
    "frozen_matrix": frozen_matrix,
    "relative_matrix": relative_matrix,
    "per_start": per_start,
    "relative": _relative(
      mean_of_defined(r["mean"] for r in defined),
      mean_of_defined(r["frozen"] for r in defined),
    ),
  }
