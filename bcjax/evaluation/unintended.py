"""Unintended-task results as records, from the consumers to the table.

A consumer scores a strategy's version-0-compatible embeddings of a version
once per consumer seed: an :class:`UnintendedScore` (task, strategy, version,
consumer seed, value). The tasks themselves and the consumers chosen for them
are :class:`UnintendedTask` records. :class:`UnintendedResults` holds both and
answers what the table asks: a task's value per strategy and version, the
mean over consumer seeds (None when any seed's metric is undefined).

JSON appears only where results are written and read (``results.json``'s
``"unintended"`` field, :meth:`UnintendedResults.to_json` and
:meth:`UnintendedResults.from_json`). The file keeps the mean over consumer
seeds per version, so scores read back from it carry ``consumer_seed=None``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from bcjax.errors import InputError
from bcjax.evaluation.table_records import finite_or_none, require_field


@dataclasses.dataclass(frozen=True)
class ConsumerChoice:
  """The grid point chosen for a task's consumers, and how it was chosen.

  Attributes:
    hidden: the chosen hidden width.
    dropout: the chosen dropout rate.
    selection: per consumer seed, the best selection metric.
    best_epochs: per consumer seed, the epoch kept.
    grid: per ``"hidden/dropout"``, the mean selection metric over seeds.
  """

  hidden: int
  dropout: float
  selection: tuple[float, ...]
  best_epochs: tuple[int, ...]
  grid: Mapping[str, float]

  def to_json(self) -> dict:
    return {
      "hidden": self.hidden,
      "dropout": self.dropout,
      "selection": list(self.selection),
      "best_epochs": list(self.best_epochs),
      "grid": dict(self.grid),
    }


@dataclasses.dataclass(frozen=True)
class UnintendedTask:
  """One unintended task as the table and the report read it.

  Attributes:
    name: the task name.
    metric: the task metric (e.g. ``"auc"``).
    core: whether the task counts in the unintended column.
    selection_version: consumers are selected at this version; the table
      averages the versions after it.
    input: what the consumer reads (``"user"``, ``"item"`` or ``"edge"``);
      None when read back from results that lack it.
    num_train: training examples of the consumers; None when unrecorded.
    consumer: the consumers' chosen grid point; None when unrecorded.
  """

  name: str
  metric: str
  core: bool
  selection_version: int
  input: str | None = None
  num_train: int | None = None
  consumer: ConsumerChoice | None = None


@dataclasses.dataclass(frozen=True)
class UnintendedScore:
  """A task's metric for one strategy, version and consumer seed.

  Attributes:
    task: the task name.
    strategy: the strategy name.
    version: the embedding version the consumers read (through the chain).
    consumer_seed: which consumer; None for the mean over consumer seeds
      (what results.json keeps).
    value: the metric; None where it is undefined (labels of one class).
    half: which examples: ``"report"`` (what the table reports) or
      ``"selection"`` (what weights are chosen on; held-out runs only).
  """

  task: str
  strategy: str
  version: int
  consumer_seed: int | None
  value: float | None
  half: str = "report"


# The halves of a held-out run's examples, and their keys in results.json
# (a run under report_split=validation has the report half alone).
_HALVES = ("report", "selection")
_JSON_KEYS = {"report": "per_version", "selection": "selection_per_version"}


def mean_over_seeds(values: Iterable[float | None]) -> float | None:
  """The consumers' mean; None when any seed's value is undefined."""
  values = list(values)
  if not values or any(v is None for v in values):
    return None
  return float(np.mean(values))


@dataclasses.dataclass(frozen=True)
class UnintendedResults:
  """Every unintended task and every score of a run (one embedding seed).

  Attributes:
    tasks: the tasks, in the order of the run.
    scores: the scores, in the order they were measured.
  """

  tasks: tuple[UnintendedTask, ...] = ()
  scores: tuple[UnintendedScore, ...] = ()

  def strategies(self, task: str) -> list[str]:
    """The strategies scored on ``task``, in order of first score."""
    return list(dict.fromkeys(s.strategy for s in self.scores if s.task == task))

  def per_version(
    self, task: str, strategy: str, half: str = "report"
  ) -> dict[int, float | None]:
    """``{version: mean over consumer seeds}`` on ``half``, versions ascending."""
    by_version = {}
    for score in self.scores:
      if score.task == task and score.strategy == strategy and score.half == half:
        by_version.setdefault(score.version, []).append(score.value)
    return {k: mean_over_seeds(by_version[k]) for k in sorted(by_version)}

  @property
  def halves(self) -> tuple[str, ...]:
    """The halves scored: ``("report",)``, or with ``"selection"`` too."""
    return tuple(sorted({s.half for s in self.scores}, key=_HALVES.index))

  def on_half(self, half: str) -> UnintendedResults:
    """These results with ``half``'s scores as the reported ones (what a
    table of the selection half reads)."""
    if half not in self.halves:
      raise InputError(
        f"unintended results have no {half!r} scores; they have {self.halves}"
      )
    scores = tuple(
      dataclasses.replace(s, half="report") for s in self.scores if s.half == half
    )
    return UnintendedResults(self.tasks, scores)

  def to_json(self) -> dict:
    """The ``"unintended"`` field of results.json."""
    out = {}
    halves = self.halves
    for task in self.tasks:
      record = {
        "metric": task.metric,
        "core": task.core,
        "input": task.input,
        "selection_version": task.selection_version,
        "num_train": task.num_train,
        "consumer": task.consumer.to_json() if task.consumer else None,
      }
      record["per_strategy"] = {
        strategy: {
          _JSON_KEYS[half]: {
            str(k): v for k, v in self.per_version(task.name, strategy, half).items()
          }
          for half in halves
        }
        for strategy in self.strategies(task.name)
      }
      out[task.name] = record
    return out

  @classmethod
  def from_json(cls, unintended: Mapping[str, Any] | None) -> UnintendedResults:
    """Reads results.json's ``"unintended"`` field (absent: no task).

    Raises:
      InputError: a task without ``core``, ``selection_version`` or
        ``per_strategy``, or per-version keys that are not version numbers.
    """
    tasks, scores = [], []
    for name, spec in (unintended or {}).items():
      where = f"unintended[{name!r}]"
      consumer = spec.get("consumer") if isinstance(spec, Mapping) else None
      tasks.append(
        UnintendedTask(
          name=name,
          metric=str(spec.get("metric", "")) if isinstance(spec, Mapping) else "",
          core=bool(require_field(spec, "core", where)),
          selection_version=int(require_field(spec, "selection_version", where)),
          input=spec.get("input"),
          num_train=spec.get("num_train"),
          consumer=_consumer_from_json(consumer) if consumer else None,
        )
      )
      for strategy, record in require_field(spec, "per_strategy", where).items():
        require_field(record, "per_version", f"{where}['per_strategy'][{strategy!r}]")
        for half, key in _JSON_KEYS.items():
          per_version = record.get(key) or {}
          for k in _version_numbers(per_version):
            value = per_version[str(k)] if str(k) in per_version else per_version[k]
            scores.append(
              UnintendedScore(name, strategy, k, None, finite_or_none(value), half)
            )
    return cls(tuple(tasks), tuple(scores))


def _consumer_from_json(record: Mapping[str, Any]) -> ConsumerChoice:
  return ConsumerChoice(
    hidden=record["hidden"],
    dropout=record["dropout"],
    selection=tuple(record["selection"]),
    best_epochs=tuple(record["best_epochs"]),
    grid=dict(record["grid"]),
  )


def _version_numbers(per_version: Mapping) -> list[int]:
  try:
    return sorted(int(k) for k in per_version)
  except (TypeError, ValueError) as e:
    raise InputError(
      f"results: per_version keys must be version numbers, got "
      f"{sorted(map(str, per_version))}"
    ) from e
