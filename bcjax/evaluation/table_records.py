"""The comparison tables as typed records, JSON only at the edge.

:func:`bcjax.evaluation.table.comparison_table` builds a
:class:`ComparisonTable` of :class:`TableRow` per strategy;
:func:`bcjax.evaluation.seed_table.seed_table` builds a :class:`SeedTable`
of :class:`SeedRow` and a :class:`PairedComparison` from them. Each record
writes its JSON form (as in ``results.json``) with ``to_json`` and reads it
back with ``from_json``; :func:`read_table` reads either table's. Reading is
strict: a field missing or unknown is an :class:`~bcjax.errors.InputError`
naming it (so tables of results older than schema 3, without the
``*_after_v0`` columns, are refused, as their workdirs are).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from bcjax.errors import InputError

# The table's columns, as the reference's get_df names them.
COLUMNS = ("strategy", "intended", "unintended", "total", "alignment_error")
# Extras of every row: the versions-1..K-1 figures, beside the reference's.
AFTER_V0_COLUMNS = ("intended_after_v0", "alignment_error_after_v0")
# The cells averaged over seeds: the table's columns and the extras.
CELL_COLUMNS = COLUMNS[1:] + AFTER_V0_COLUMNS


def finite_or_none(value: Any) -> float | None:
  """``value`` as a float when it is a finite number, else None.

  Args:
    value: anything read from results (a number, None, NaN from JSON, ...).

  Returns:
    A finite float, or None.
  """
  if value is None or isinstance(value, bool):
    return None
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return value if math.isfinite(value) else None


def require_field(mapping: Any, key: str, where: str) -> Any:
  """``mapping[key]``, or an InputError that names the missing field."""
  if not isinstance(mapping, Mapping) or key not in mapping:
    raise InputError(f"results: {where} has no field {key!r}")
  return mapping[key]


def _object(data: Any, where: str) -> Mapping[str, Any]:
  """``data`` if it is a JSON object; else one error naming ``where``."""
  if not isinstance(data, Mapping):
    raise InputError(f"{where} must be a JSON object, got {type(data).__name__}")
  return data


def _from_fields(cls, data: Any, where: str, optional=(), **parse):
  """``cls`` from the JSON object ``data``, fields through ``parse``.

  Args:
    cls: a dataclass.
    data: its JSON form, one key per field.
    where: what it is, for the error.
    optional: fields that may be absent (None then).
    **parse: field -> a function of its JSON value (else taken as it is).

  Raises:
    InputError: ``data`` is not an object, or lacks or adds a field.
  """
  data = _object(data, where)
  names = [f.name for f in dataclasses.fields(cls)]
  unknown = sorted(set(data) - set(names))
  missing = sorted(set(names) - set(data) - set(optional))
  if unknown or missing:
    raise InputError(f"{where}: unknown fields {unknown}, missing fields {missing}")
  kwargs = {}
  for name in names:
    value = data.get(name)
    kwargs[name] = parse[name](value) if name in parse and value is not None else value
  return cls(**kwargs)


def _records(cls, where: str):
  """Parses a JSON list of ``cls`` records into a tuple."""

  def parse(values):
    if not isinstance(values, list):
      raise InputError(f"{where} must be a list, got {type(values).__name__}")
    return tuple(cls.from_json(v) for v in values)

  return parse


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
      rows=_records(TableRow, "a comparison table's rows"),
      notes=tuple,
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
    data = _object(data, "seed-table row")
    missing = sorted(set(CELL_COLUMNS) - set(data))
    if missing:
      raise InputError(f"seed-table row: missing fields {missing}")
    rest = {k: v for k, v in data.items() if k not in CELL_COLUMNS}
    rest["means"] = {c: data[c] for c in CELL_COLUMNS}
    return _from_fields(cls, rest, "seed-table row")


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
    return _from_fields(
      cls, data, "paired comparison", rows=_records(PairedRow, "paired rows")
    )


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
    return _from_fields(
      cls,
      data,
      "seed table",
      optional=("paired",),  # absent when the paired reference did not run
      rows=_records(SeedRow, "a seed table's rows"),
      paired=PairedComparison.from_json,
      notes=tuple,
    )


def read_table(data: Mapping[str, Any]) -> ComparisonTable | SeedTable:
  """Either table from its JSON form (``results.json``'s ``table``).

  Raises:
    InputError: for a table that is neither.
  """
  if "num_seeds" in _object(data, "a table"):
    return SeedTable.from_json(data)
  return ComparisonTable.from_json(data)
