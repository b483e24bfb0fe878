"""Compatibility analytics beyond the paper (DESIGN §5).

The paper measures compatibility one way: consumers trained on version 0 and
read through the chain at later versions. This module asks three more
questions of the saved versions of every strategy, read through the public
registry (:func:`bcjax.registry.open`) and the strategies' checkpoint folders:

1. **Consumers that start at any version** ``j`` (0..K-2): each core task's
   consumer trained on the strategy's saved ``z_j`` with version ``j``'s
   labels (selection shifted by ``j`` as for version-0 consumers), evaluated
   at every ``k > j`` on ``B_{j+1..k}(z_k)``, beside the same consumer on the
   frozen ``M_j`` run on ``G_k`` (the fix-m0 analogue of a consumer that
   started at ``j``). The ``j = 0`` row is the paper's unintended column.
2. **Retrieval against an old index** (BCT, Shen et al., CVPR 2020): for
   ``j < k``, Recall@50 of version ``k``'s validation users against the items
   of version ``j``: new query (``M_k`` read through the chain) against the old
   index (saved item ``z_j``), old query (``M_j`` on ``G_k``) against it, and
   new query against the new index (``M_k``'s embeddings of the same items).
   The update is compatible when new/old beats old/old.
3. **Drift along the chain**: for ``j < k``, the mean L2 distance (users and
   items pooled) between ``B_{j+1..k}(z_k)`` and the saved ``z_j``, over the
   mean norm of ``z_j``'s rows.

Everything runs on a workdir's saved versions and consumers; consumers that
start after version 0 are saved under ``workdir/compatibility/consumers`` and
reused by a rerun. :func:`analyze` writes ``compatibility.json``,
``compatibility.md`` and the plots (:mod:`bcjax.evaluation.compatibility_plots`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np
from absl import logging

from bcjax import atomic_files, keys, registry
from bcjax.checkpoints import VersionStore
from bcjax.consumers import (
  Consumer,
  ConsumerConfig,
  fit_consumer,
  load_consumer,
  save_consumer,
)
from bcjax.data.bipartite import BipartiteGraph
from bcjax.data.split import VersionSplit
from bcjax.errors import InputError
from bcjax.evaluation.recall import RecallEvaluator
from bcjax.models.pinsage import PinSAGE, embed
from bcjax.tasks import CORE_TASKS, build_task
from bcjax.transforms import from_spec

KINDS = ("user", "item")
RETRIEVAL_K = 50
Tables = tuple[np.ndarray, np.ndarray]


# -- opening and checking a run's strategies ----------------------------------


def check_strategy_folder(path: str) -> int:
  """Checks that ``path`` holds a bcjax chain; returns its latest version.

  Raises:
    InputError: a folder with fewer than two versions, or one whose versions
      lack a backward transform (a checkpoint not written by bcjax).
  """
  if not os.path.isdir(path):
    raise InputError(f"no strategy folder at {path}")
  with VersionStore(path, create=False) as store:
    versions = store.versions()
    if len(versions) < 2:
      raise InputError(
        f"{path} holds {len(versions)} version(s); compatibility analytics "
        "need at least two (versions 0 and 1)"
      )
    for k in versions[1:]:
      spec = store.metadata(k).get("transform")
      if not isinstance(spec, Mapping) or "name" not in spec:
        raise InputError(
          f"{path}: version {k} has no backward transform in its metadata "
          "(not a bcjax strategy folder?)"
        )
      family = from_spec(spec)
      learned = jax.tree.leaves(
        family.init(jax.random.key(0), spec["d_in"], spec["d_out"])
      )
      if learned and not os.path.isdir(os.path.join(path, str(k), "transform")):
        raise InputError(
          f"{path}: version {k} has no saved B_{k} parameters (a foreign "
          "checkpoint?); compatibility analytics need B_1..B_K"
        )
  return versions[-1]


def check_start_versions(starts: Sequence[int], num_versions: int) -> list[int]:
  """The start versions to analyse: all of ``0..K-2`` when ``starts`` is empty.

  Raises:
    InputError: a start version outside ``0..K-2``.
  """
  if num_versions < 2:
    raise InputError(
      f"compatibility analytics need at least two versions, got {num_versions}"
    )
  starts = list(starts) or list(range(num_versions - 1))
  for j in starts:
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)):
      raise InputError(f"start versions must be integers, got {j!r}")
    if not 0 <= j <= num_versions - 2:
      raise InputError(
        f"start version {j} is outside 0..{num_versions - 2}: a consumer "
        f"needs a later version to read among versions 0..{num_versions - 1}"
      )
  return sorted(set(int(j) for j in starts))


def digest(*arrays) -> str:
  """A short hash of arrays' shapes and bytes: equal only for equal arrays."""
  h = hashlib.sha256()
  for a in jax.tree.leaves(arrays):
    a = np.ascontiguousarray(np.asarray(a))
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


def saved_tables(reg: registry.EmbeddingRegistry, k: int, j: int) -> Tables:
  """``B_{j+1..k}(z_k)`` of users and items (the saved ``z_j`` when k == j)."""
  return tuple(reg.compatible_embeddings(k, j, kind=kind) for kind in KINDS)


class FrozenModels:
  """A strategy's saved ``M_j`` run on version ``k``'s graph, cached.

  Models are keyed by a hash of their variables, so strategies that share a
  model (fix-m0's M_0, nobc's M_k behind the post-hoc strategies) are run
  once per graph.
  """

  def __init__(self, splits: Sequence[VersionSplit], layout: str | None = None):
    self._splits = splits
    self._layout = layout
    self._graphs: dict[int, BipartiteGraph] = {}
    self._models: dict[tuple[str, int], tuple[PinSAGE, dict, str]] = {}
    self._tables: dict[tuple[str, int], Tables] = {}

  def _model(self, path: str, j: int):
    if (path, j) not in self._models:
      with VersionStore(path, create=False) as store:
        metadata = store.metadata(j)
        variables = store.restore(j, "model")
      model = PinSAGE(dim=int(metadata["dim"]), num_layers=int(metadata["layers"]))
      self._models[(path, j)] = (model, variables, digest(variables))
    return self._models[(path, j)]

  def __call__(self, path: str, j: int, k: int) -> Tables:
    """``(user, item)`` embeddings of ``path``'s ``M_j`` on ``G_k``."""
    model, variables, key = self._model(path, j)
    if (key, k) not in self._tables:
      if k not in self._graphs:
        self._graphs[k] = BipartiteGraph.from_split(self._splits[k], self._layout)
      out = embed(model, variables, self._graphs[k])
      self._tables[(key, k)] = tuple(np.asarray(t) for t in out)
    return self._tables[(key, k)]


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
  key = keys.consumer_key(seed, task)
  return key if start == 0 else jax.random.fold_in(key, start)


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
) -> dict:
  """A consumer's metric at every version after its start, and on frozen M_j.

  Args:
    consumer: the consumers of ``task`` (started at ``task.train.version``).
    task: the task built for that start.
    tables: ``k -> B_{j+1..k}(z_k)`` of the strategy.
    frozen: ``k -> M_j`` on ``G_k``.

  Returns:
    ``{"selection_version", "values": {k: metric}, "frozen": {k: metric}}``
    for every ``k > j``; the summary averages ``k > selection_version``.
  """
  j = task.train.version
  values, reference = {}, {}
  for k in sorted(task.evaluation):
    if k > j:
      values[k] = consumer.evaluate(tables(k), task.evaluation[k])
      reference[k] = consumer.evaluate(frozen(k), task.evaluation[k])
  return {
    "selection_version": task.selection_version,
    "values": values,
    "frozen": reference,
  }


def _mean(values) -> float | None:
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
      matrix[j][k] = _mean(r["values"].get(k) for r in later)
      frozen_matrix[j][k] = _mean(r["frozen"].get(k) for r in later)
      relative_matrix[j][k] = _relative(
        _mean(r["values"][k] for r in both), _mean(r["frozen"][k] for r in both)
      )
    task_means = {
      t: (
        _mean(v for k, v in r["values"].items() if k > r["selection_version"]),
        _mean(v for k, v in r["frozen"].items() if k > r["selection_version"]),
      )
      for t, r in tasks.items()
    }
    common = [m for m in task_means.values() if None not in m]
    mean = _mean(m[0] for m in common)
    reference = _mean(m[1] for m in common)
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
      _mean(r["mean"] for r in defined), _mean(r["frozen"] for r in defined)
    ),
  }


# -- the whole analysis ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AnalyticsConfig:
  """What to analyse.

  Attributes:
    start_versions: consumer start versions (empty: every ``0..K-2``).
    consumers: run the consumers that start at any version.
    retrieval: run retrieval against old indexes.
    drift: run drift along the chain.
    chunk_size: users scored at once in retrieval.
  """

  start_versions: Sequence[int] = ()
  consumers: bool = True
  retrieval: bool = True
  drift: bool = True
  chunk_size: int = 512


def analyze(
  workdir: str,
  strategies: Sequence[str],
  graph,
  splits: Sequence[VersionSplit],
  consumer_config: ConsumerConfig,
  seed: int,
  settings: AnalyticsConfig = AnalyticsConfig(),
  tasks: Sequence[str] = CORE_TASKS,
  consumers: Mapping[str, Consumer] | None = None,
  layout: str | None = None,
) -> dict:
  """Runs the three analytics on a workdir's saved strategies.

  Args:
    workdir: the run's folder (``checkpoints/<strategy>/`` inside).
    strategies: canonical strategy names (their checkpoint folders).
    graph: the run's ``DynamicGraph``.
    splits: its version splits ``0..K-1``.
    consumer_config: the consumers' grid and optimiser settings.
    seed: the run's seed (consumer keys, attribute-task node splits).
    settings: what to run.
    tasks: the core tasks of the consumers.
    consumers: the main job's version-0 consumers by task (reused for the
      ``j = 0`` row; fitted here when absent).
    layout: the aggregation layout for running frozen models.

  Returns:
    A JSON-ready dict: ``start_versions``, ``consumers`` (strategy ->
    :func:`summarize_consumers` plus ``per_task``), ``retrieval`` (strategy
    -> list of pairs), ``drift`` (strategy -> list of pairs).

  Raises:
    InputError: fewer than two versions, a strategy folder without
      transforms, or a start version outside ``0..K-2``.
  """
  paths = {s: os.path.join(workdir, "checkpoints", s) for s in strategies}
  for path in paths.values():
    latest = check_strategy_folder(path)
    if latest + 1 < len(splits):
      raise InputError(
        f"{path} holds versions 0..{latest}; the run has {len(splits)} versions"
      )
  num_versions = len(splits)
  starts = check_start_versions(settings.start_versions, num_versions)
  frozen_models = FrozenModels(splits, layout)
  out = {
    "start_versions": starts,
    "consumers": {},
    "retrieval": {},
    "drift": {},
  }
  cache_dir = os.path.join(workdir, "compatibility", "consumers")
  consumers = dict(consumers or {})
  built = {}
  if settings.consumers:
    for name in tasks:
      for j in starts:
        built[(name, j)] = build_task(name, graph, splits, seed=seed, start=j)
  for strategy, path in paths.items():
    reg = registry.open(path)
    try:

      def frozen(j, k, path=path):
        return frozen_models(path, j, k)

      if settings.drift:
        drift = chain_drift(reg)
        out["drift"][strategy] = [
          {"from_version": k, "to_version": j, "length": k - j, "drift": d}
          for (j, k), d in sorted(drift.items())
        ]
      if settings.retrieval:
        out["retrieval"][strategy] = [
          dict(
            retrieval(reg, frozen, splits, j, k, settings.chunk_size),
            index_version=j,
            query_version=k,
          )
          for j in range(num_versions - 1)
          for k in range(j + 1, num_versions)
        ]
      if settings.consumers:
        rows = {}
        for name in tasks:
          for j in starts:
            task = built[(name, j)]
            train = saved_tables(reg, j, j)
            selection = (
              train
              if task.selection_version == j
              else frozen(j, task.selection_version)
            )
            consumer = start_consumer(
              task,
              train,
              selection,
              consumer_config,
              seed,
              cache_dir,
              fitted=consumers.get(name) if j == 0 else None,
            )
            rows.setdefault(name, {})[j] = consumer_row(
              consumer,
              task,
              lambda k, j=j, reg=reg: saved_tables(reg, k, j),
              lambda k, j=j: frozen(j, k),
            )
        summary = summarize_consumers(rows)
        summary["per_task"] = rows
        out["consumers"][strategy] = summary
        logging.info(
          "compatibility %s: consumers from each start vs frozen M_j %s",
          strategy,
          ", ".join(
            f"j={j} {_fmt(r['relative'], 2)}%" for j, r in summary["per_start"].items()
          ),
        )
    finally:
      reg.close()
  return json.loads(json.dumps(out, default=_json_default))


def _json_default(value):
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (np.floating,)):
    return float(value)
  if isinstance(value, np.bool_):
    return bool(value)
  raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _fmt(value, decimals: int = 4) -> str:
  if value is None or not math.isfinite(value):
    return "n/a"
  text = f"{value:.{decimals}f}"
  return text[1:] if text.startswith("-") and float(text) == 0 else text


# -- reports ---------------------------------------------------------------------------


def mean_drift_by_length(pairs: Sequence[Mapping]) -> dict[int, float]:
  """Chain length ``k - j`` -> mean drift over the pairs of that length."""
  lengths = sorted({p["length"] for p in pairs})
  return {n: _mean(p["drift"] for p in pairs if p["length"] == n) for n in lengths}


def to_markdown(result: Mapping) -> str:
  """The three analytics as Markdown tables.

  Args:
    result: the output of :func:`analyze` (JSON keys are strings).
  """
  lines = []

  def table(header, body):
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in body)

  consumers = result.get("consumers") or {}
  if consumers:
    starts = [str(j) for j in result["start_versions"]]
    lines += [
      "## Compatibility: consumers that start at version j",
      "",
      "Mean core-task metric over the versions after each task's selection "
      "version, relative to the same consumers on the frozen M_j (%); the "
      "j = 0 column is the comparison table's unintended column.",
      "",
    ]
    table(
      ["strategy", *(f"j = {j} (%)" for j in starts), "mean (%)"],
      [
        [
          s,
          *(_fmt(c["per_start"].get(j, {}).get("relative"), 2) for j in starts),
          _fmt(c["relative"], 2),
        ]
        for s, c in consumers.items()
      ],
    )
    lines += ["", "Mean core-task metric at (start j, version k):", ""]
    for s, c in consumers.items():
      ks = sorted({int(k) for row in c["matrix"].values() for k in row})
      lines += [f"{s}:", ""]
      table(
        ["j \\ k", *map(str, ks)],
        [
          [j, *(_fmt(row.get(str(k))) for k in ks)]
          for j, row in sorted(c["matrix"].items(), key=lambda x: int(x[0]))
        ],
      )
      lines.append("")
  retrieval = result.get("retrieval") or {}
  if retrieval:
    pairs = [
      (p["index_version"], p["query_version"]) for p in next(iter(retrieval.values()))
    ]
    lines += [
      "## Compatibility: retrieval against an old index",
      "",
      f"Recall@{RETRIEVAL_K} of version k's validation users against version "
      "j's item index: new query / old index minus old query / old index "
      "(BCT's criterion holds when positive: yes), and new query / new index "
      "for the same users and targets.",
      "",
    ]
    table(
      ["strategy", *(f"{j} <- {k}" for j, k in pairs)],
      [
        [
          s,
          *(
            "n/a"
            if p["compatible"] is None
            else f"{'yes' if p['compatible'] else 'no'} "
            f"({p['new_old'] - p['old_old']:+.4f}; new/new {p['new_new']:.4f})"
            for p in ps
          ),
        ]
        for s, ps in retrieval.items()
      ],
    )
    lines.append("")
  drift = result.get("drift") or {}
  if drift:
    lengths = sorted({p["length"] for ps in drift.values() for p in ps})
    lines += [
      "## Compatibility: drift along the chain",
      "",
      "Mean L2 distance between B_{j+1..k}(z_k) and the saved z_j (users and "
      "items pooled) over the mean norm of z_j, averaged over the pairs of "
      "each chain length k - j.",
      "",
    ]
    table(
      ["strategy", *(f"length {n}" for n in lengths)],
      [
        [s, *(_fmt(mean_drift_by_length(ps).get(n)) for n in lengths)]
        for s, ps in drift.items()
      ],
    )
    lines.append("")
  return "\n".join(lines) + ("\n" if lines else "")


def write_outputs(result: dict, outdir: str) -> dict:
  """Writes ``compatibility.json``, ``compatibility.md`` and the plots.

  Returns:
    ``result`` with ``plots`` (file names) added.
  """
  from bcjax.evaluation.compatibility_plots import write_plots

  result = dict(
    result, plots=[os.path.basename(p) for p in write_plots(result, outdir)]
  )
  atomic_files.write_json(os.path.join(outdir, "compatibility.json"), result)
  with atomic_files.atomic_open(os.path.join(outdir, "compatibility.md")) as f:
    f.write(to_markdown(result))
  return result


def settings_from_config(config) -> AnalyticsConfig:
  """``config.compatibility``'s settings (everything on when absent)."""
  c = config.get("compatibility") or {}
  return AnalyticsConfig(
    start_versions=tuple(c.get("start_versions", ())),
    consumers=bool(c.get("consumers", True)),
    retrieval=bool(c.get("retrieval", True)),
    drift=bool(c.get("drift", True)),
    chunk_size=int(config.get("eval_chunk_size", 512)),
  )


def enabled(config) -> bool:
  """Whether ``config`` asks the main job for the analytics."""
  c = config.get("compatibility")
  return bool(c and c.get("enabled", False))


def run_in_workdir(
  config,
  workdir: str,
  strategies: Sequence[str],
  graph,
  splits: Sequence[VersionSplit],
  consumers: Mapping[str, Consumer] | None = None,
) -> dict:
  """:func:`analyze` with a run's config, then :func:`write_outputs`.

  Args:
    config: the run's experiment config (``consumer``, ``seed``, ``tasks``,
      ``layout``, ``compatibility``).
    workdir: the run's folder; outputs are written there.
    strategies: canonical strategy names.
    graph: the run's graph.
    splits: its version splits.
    consumers: the main job's version-0 consumers by task name.

  Returns:
    The result as written to ``compatibility.json`` (with ``plots``).
  """
  c = config.consumer
  consumer_config = ConsumerConfig(
    hidden_sizes=tuple(c.hidden_sizes),
    dropouts=tuple(c.dropouts),
    seeds=c.seeds,
    epochs=c.epochs,
    batch_size=c.batch_size,
    learning_rate=c.learning_rate,
  )
  chosen = [t.strip() for t in str(config.get("tasks", "")).split(",") if t.strip()]
  tasks = [t for t in CORE_TASKS if not chosen or t in chosen]
  tick = time.perf_counter()
  result = analyze(
    workdir,
    strategies,
    graph,
    splits,
    consumer_config,
    config.seed,
    settings_from_config(config),
    tasks=tasks,
    consumers=consumers,
    layout=config.get("layout", "") or None,
  )
  # The cost of the analytics, for deciding whether a config runs them.
  result["seconds"] = time.perf_counter() - tick
  logging.info("compatibility analytics: %.1fs", result["seconds"])
  return write_outputs(result, workdir)


def analyze_workdir(workdir: str, start_versions: Sequence[int] | None = None) -> dict:
  """The analytics of a finished run's workdir, retraining no version.

  Reads the run's config and strategies from ``workdir/results.json``, the
  versions from ``workdir/checkpoints/``, and reuses the consumers saved by
  an earlier analysis; writes ``compatibility.json``, ``compatibility.md``
  and the plots into ``workdir``.

  Args:
    workdir: a workdir written by ``experiments.compare`` or
      ``experiments.run_intended``.
    start_versions: consumer start versions (None: the config's, or all).

  Raises:
    InputError: no results in ``workdir``, or any bad input of :func:`analyze`.
  """
  import ml_collections

  from bcjax.data.datasets import load_dataset
  from bcjax.data.split import split_version
  from bcjax.workdir import WorkdirLock

  path = os.path.join(workdir, "results.json")
  try:
    with open(path) as f:
      results = json.load(f)
    config = ml_collections.ConfigDict(results["config"])
    strategies = list(results["strategies"])
  except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
    raise InputError(
      f"{path} is missing or unreadable ({type(e).__name__}: {e}); run "
      "experiments.compare or experiments.run_intended on this workdir first"
    ) from e
  if "compatibility" not in config:
    config.compatibility = ml_collections.ConfigDict()
  if start_versions is not None:
    config.compatibility.start_versions = tuple(start_versions)
  check_start_versions(
    tuple(config.compatibility.get("start_versions", ())), config.num_versions
  )
  with WorkdirLock(workdir):
    graph = load_dataset(
      config.dataset,
      config.get("data_dir", "") or None,
      config.synthetic.to_dict() if "synthetic" in config else None,
    )
    splits = [
      split_version(graph, k, tuple(config.taus)) for k in range(config.num_versions)
    ]
    return run_in_workdir(config, workdir, strategies, graph, splits)
