"""The comparison tables as typed records, JSON only at the edge.

:func:`bcjax.evaluation.table.comparison_table` builds a
:class:`ComparisonTable` of :class:`TableRow` per strategy;
:func:`bcjax.evaluation.seed_table.seed_table` builds a :class:`SeedTable`
of :class:`SeedRow` and a :class:`PairedComparison` from them. Each record
writes its JSON form (as in ``results.json``) with ``to_json`` and reads it
back with ``from_json``; :func:`read_table` reads either table's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bcjax.errors import InputError

# The table's columns, as the reference's get_df names them.
COLUMNS = ("strategy", "intended", "unintended", "total", "alignment_error")
# Extras of every row: the versions-1..K-1 figures, beside the reference's.
AFTER_V0_COLUMNS = ("intended_after_v0", "alignment_error_after_v0")
# The cells averaged over seeds: the table's columns and the extras.
CELL_COLUMNS = COLUMNS[1:] + AFTER_V0_COLUMNS


def _from_fields(cls, data: Mapping[str, Any], where: str, **parsed):
  """``cls(**data)`` with ``parsed`` fields replaced; one error if malformed."""
  if not isinstance(data, Mapping):
    raise InputError(f"{where} must be a JSON object, got {type(data).__name__}")
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(data) - names - set(parsed))
  missing = sorted(names - set(data) - set(parsed))
  if unknown or missing:
    raise InputError(f"{where}: unknown fields {unknown}, missing fields {missing}")
  kwargs = {k: v for k, v in data.items() if k in names}
  kwargs.update(parsed)
  return cls(**kwargs)


@dataclasses.dataclass(frozen=True)
class TableRow:
  """One strategy's row of a one-seed comparison table.

  Attributes:
    strategy: the strategy's name.
    intended: ``100 * (R_s / R_nobc - 1)``, Recall@50 over versions 0..K-1.
    unintended: ``100 * (U_s / U_fix - 1)`` over the core tasks.
    total: ``intended + unintended``.
    alignment_error: mean distance to fix-m0 over versions 0..K-1.
    intended_after_v0: ``intended`` over versions 1..K-1.
    alignment_error_after_v0: ``alignment_error`` over versions 1..K-1.
    mean_recall50: ``R_s``.
    mean_recall50_after_v0: ``R_s`` over versions 1..K-1.
    mean_unintended: ``U_s``.
  """

  strategy: str
  intended: float | None
  unintended: float | None
  total: float | None
  alignment_error: float | None
  intended_after_v0: float | None
  alignment_error_after_v0: float | None
  mean_recall50: float | None
  mean_recall50_after_v0: float | None
  mean_unintended: float | None

  def cell(self, column: str) -> float | None:
    """The value of ``column`` (one of :data:`CELL_COLUMNS`)."""
    return getattr(self, column)

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> TableRow:
    return _from_fields(cls, data, "table row")


@dataclasses.dataclass(frozen=True)
class ComparisonTable:
  """The comparison table of one embedding seed.

  Attributes:
    rows: one per strategy, in the order of the results.
    per_task: strategy -> task -> mean metric over the task's evaluated
      versions (None when undefined).
    per_version: strategy -> ``{"recall@50": [...], task: [...]}``, lists
      indexed by version.
    tasks: task -> ``{"metric", "core", "selection_version"}``.
    notes: what was skipped or could not be computed, and why.
  """

  rows: tuple[TableRow, ...]
  per_task: Mapping[str, Mapping[str, float | None]]
  per_version: Mapping[str, Mapping[str, list]]
  tasks: Mapping[str, Mapping[str, Any]]
  notes: tuple[str, ...]

  @property
  def strategies(self) -> list[str]:
    return [row.strategy for row in self.rows]

  def row(self, strategy: str) -> TableRow | None:
    """The row of ``strategy``; None when it did not run."""
    return next((r for r in self.rows if r.strategy == strategy), None)

  def to_json(self) -> dict[str, Any]:
    return {
      "rows": [row.to_json() for row in self.rows],
      "per_task": self.per_task,
      "per_version": self.per_version,
      "tasks": self.tasks,
      "notes": list(self.notes),
    }

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> ComparisonTable:
    return _from_fields(
      cls,
      data,
      "comparison table",
      rows=tuple(TableRow.from_json(r) for r in data.get("rows", ())),
      notes=tuple(data.get("notes", ())),
    )


@dataclasses.dataclass(frozen=True)
class SeedRow:
  """One strategy's row of the table over embedding seeds.

  Attributes:
    strategy: the strategy's name.
    means: column of :data:`CELL_COLUMNS` -> the mean over the seeds that
      have it (None for none).
    intervals: column -> the cell's mean and t-interval as
      :meth:`bcjax.evaluation.intervals.Interval.to_dict` (None for none).
    per_seed: column -> the value of each seed.
  """

  strategy: str
  means: Mapping[str, float | None]
  intervals: Mapping[str, Mapping[str, Any] | None]
  per_seed: Mapping[str, list]

  def cell(self, column: str) -> float | None:
    """The mean over seeds of ``column`` (one of :data:`CELL_COLUMNS`)."""
    return self.means[column]

  def to_json(self) -> dict[str, Any]:
    return {
      "strategy": self.strategy,
      **self.means,
      "intervals": self.intervals,
      "per_seed": self.per_seed,
    }

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> SeedRow:
    rest = {k: v for k, v in data.items() if k not in CELL_COLUMNS}
    means = {c: data.get(c) for c in CELL_COLUMNS}
    return _from_fields(cls, rest, "seed-table row", means=means)


@dataclasses.dataclass(frozen=True)
class PairedRow:
  """The reference's cell minus one strategy's, per seed, with its interval."""

  strategy: str
  differences: list
  interval: Mapping[str, Any] | None

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> PairedRow:
    return _from_fields(cls, data, "paired row")


@dataclasses.dataclass(frozen=True)
class PairedComparison:
  """Paired differences of one column against a reference strategy."""

  reference: str
  column: str
  level: float
  rows: tuple[PairedRow, ...]

  def to_json(self) -> dict[str, Any]:
    return {
      "reference": self.reference,
      "column": self.column,
      "level": self.level,
      "rows": [row.to_json() for row in self.rows],
    }

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> PairedComparison:
    rows = tuple(PairedRow.from_json(r) for r in data.get("rows", ()))
    return _from_fields(cls, data, "paired comparison", rows=rows)


@dataclasses.dataclass(frozen=True)
class SeedTable:
  """The comparison table over two or more embedding seeds.

  Attributes:
    num_seeds: the seeds averaged.
    level: the intervals' confidence level.
    rows: one per strategy, in seed 0's order.
    paired: the paired differences; None when the reference did not run.
    per_task: strategy -> task -> mean over seeds.
    tasks: seed 0's tasks.
    notes: every seed's notes once, with the seeds they hold for.
  """

  num_seeds: int
  level: float
  rows: tuple[SeedRow, ...]
  paired: PairedComparison | None
  per_task: Mapping[str, Mapping[str, float | None]]
  tasks: Mapping[str, Mapping[str, Any]]
  notes: tuple[str, ...]

  @property
  def strategies(self) -> list[str]:
    return [row.strategy for row in self.rows]

  def to_json(self) -> dict[str, Any]:
    out = {
      "num_seeds": self.num_seeds,
      "level": self.level,
      "rows": [row.to_json() for row in self.rows],
    }
    if self.paired is not None:
      out["paired"] = self.paired.to_json()
    out.update(per_task=self.per_task, tasks=self.tasks, notes=list(self.notes))
    return out

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> SeedTable:
    paired = data.get("paired")
    return _from_fields(
      cls,
      data,
      "seed table",
      rows=tuple(SeedRow.from_json(r) for r in data.get("rows", ())),
      paired=None if paired is None else PairedComparison.from_json(paired),
      notes=tuple(data.get("notes", ())),
    )


def read_table(data: Mapping[str, Any]) -> ComparisonTable | SeedTable:
  """Either table from its JSON form (``results.json``'s ``table``).

  Raises:
    InputError: for a table that is neither.
  """
  if not isinstance(data, Mapping):
    raise InputError(f"a table must be a JSON object, got {type(data).__name__}")
  if "num_seeds" in data:
    return SeedTable.from_json(data)
  return ComparisonTable.from_json(data)
