"""The whole analysis of a run's saved versions (its jobs, of a running
comparison or of a finished workdir, are :mod:`bcjax.jobs.analytics`)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging

from bcjax import registry
from bcjax.compatibility.backfill_consumers import (
  consumer_backfilling,
  newest_consumers,
  newest_tasks,
)
from bcjax.compatibility.measures import (
  chain_drift,
  consumer_row,
  retrieval,
  start_consumer,
  summarize_consumers,
)
from bcjax.compatibility.report import format_value
from bcjax.compatibility.serving import backfilling, blending
from bcjax.compatibility.stores import (
  FrozenModels,
  check_start_versions,
  check_strategy_folder,
  saved_tables,
)
from bcjax.data.split import VersionSplit
from bcjax.errors import InputError
from bcjax.fitting.consumers import (
  Consumer,
  ConsumerConfig,
)
from bcjax.fitting.tasks import CORE_TASKS, build_task

# -- the whole analysis ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AnalyticsConfig:
  """What to analyse.

  Attributes:
    start_versions: consumer start versions (empty: every ``0..K-2``).
    consumers: run the consumers that start at any version.
    retrieval: run retrieval against old indexes.
    drift: run drift along the chain.
    blending: run blending toward the newest version.
    backfilling: run partial backfilling to the newest version (read by
      the newest version's consumers too when ``consumers`` is on).
    chunk_size: users scored at once in retrieval.
    report_split: the run's ``config.report_split``: under ``"held_out"``
      the consumers are scored on the report half of each version's examples
      (embedding seed 0's halves, the seed the analytics run on), as the
      table's unintended column is.
  """

  start_versions: Sequence[int] = ()
  consumers: bool = True
  retrieval: bool = True
  drift: bool = True
  blending: bool = True
  backfilling: bool = True
  chunk_size: int = 512
  report_split: str = "validation"


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
  """Runs the analytics on a workdir's saved strategies.

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
    -> list of pairs), ``drift`` (strategy -> list of pairs), ``blending``
    and ``backfilling`` (strategy -> one entry per index version ``j``, the
    query version the newest; :mod:`bcjax.compatibility.serving`; with
    consumers, each backfilling entry has ``consumers``:
    :mod:`bcjax.compatibility.backfill_consumers`).

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
    "blending": {},
    "backfilling": {},
  }
  cache_dir = os.path.join(workdir, "compatibility", "consumers")
  consumers = dict(consumers or {})
  built = {}
  if settings.consumers:
    for name in tasks:
      for j in starts:
        built[(name, j)] = build_task(name, graph, splits, seed=seed, start=j)
  newest = num_versions - 1
  backfill_consumers = settings.backfilling and settings.consumers
  if backfill_consumers:
    at_newest = newest_tasks(tasks, graph, splits, seed)
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
      for name, measure in (("blending", blending), ("backfilling", backfilling)):
        if getattr(settings, name):
          out[name][strategy] = [
            dict(
              measure(reg, splits, j, newest, settings.chunk_size, seed),
              index_version=j,
              query_version=newest,
            )
            for j in range(newest)
          ]
      if backfill_consumers:
        fitted = newest_consumers(reg, at_newest, consumer_config, seed, cache_dir)
        for row in out["backfilling"][strategy]:
          row["consumers"] = consumer_backfilling(
            reg, fitted, at_newest, row["index_version"], newest, seed
          )
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
              settings.report_split,
            )
        summary = summarize_consumers(rows)
        summary["per_task"] = rows
        out["consumers"][strategy] = summary
        logging.info(
          "compatibility %s: consumers from each start vs frozen M_j %s",
          strategy,
          ", ".join(
            f"j={j} {format_value(r['relative'], 2)}%"
            for j, r in summary["per_start"].items()
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


def settings_from_config(config) -> AnalyticsConfig:
  """``config.compatibility``'s settings (everything on when absent)."""
  c = config.get("compatibility") or {}
  return AnalyticsConfig(
    start_versions=tuple(c.get("start_versions", ())),
    consumers=bool(c.get("consumers", True)),
    retrieval=bool(c.get("retrieval", True)),
    drift=bool(c.get("drift", True)),
    blending=bool(c.get("blending", True)),
    backfilling=bool(c.get("backfilling", True)),
    chunk_size=int(config.get("eval_chunk_size", 512)),
    report_split=config.get("report_split", "validation"),
  )


def enabled(config) -> bool:
  """Whether ``config`` asks the main job for the analytics."""
  c = config.get("compatibility")
  return bool(c and c.get("enabled", False))
