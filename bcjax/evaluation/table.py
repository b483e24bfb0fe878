"""The comparison table (the paper's Table 3) from the main job's results.

Per strategy ``s`` (DESIGN §5), as the reference's ``get_df``
(``embevolve/analyze_all_results.ipynb``) computes the paper's Table 3:

- intended (%) = ``100 * (R_s / R_nobc - 1)``, where ``R_s`` is the mean
  Recall@50 of ``s`` over every version ``0..K-1``. Version 0 is M_0 for
  every strategy, so it pulls every ratio towards 0 %; the reference counts
  it all the same. ``intended_after_v0`` is the same ratio over versions
  ``1..K-1`` alone, an extra.
- unintended (%) = ``100 * (U_s / U_fix - 1)``, where ``U_s`` is the mean over
  the core tasks ``t`` of the mean metric of ``s`` over the versions
  ``k > selection_version(t)``, and ``U_fix`` the same for ``fix-m0``; both
  means run over the core tasks defined for both ``s`` and ``fix-m0``.
- total = intended + unintended.
- alignment error = the mean of ``distance_to_fix_m0`` (the mean L2
  distance of the version-0-compatible embeddings to fix-m0's, over users and
  items pooled) over every version ``0..K-1``; version 0 is M_0 itself, at
  distance 0 (a results dict without that number reads it so).
  ``alignment_error_after_v0`` is the mean over versions ``1..K-1`` alone.

Undefined values (None, or NaN read back from JSON) are skipped in every mean,
and whatever was skipped or could not be computed is explained in the
table's notes. Every number in the table is a finite float or None, so the
table is valid JSON as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from bcjax.errors import InputError, unknown_name
from bcjax.evaluation.table_records import (
  ComparisonTable,
  TableRow,
  finite_or_none,
  require_field,
)
from bcjax.evaluation.unintended import UnintendedResults

INTENDED_REFERENCE = "nobc"
# A table's half -> the per-version field its Recall@50 comes from.
HALVES = {"report": "recall", "selection": "selection_recall"}
UNINTENDED_REFERENCE = "fix-m0"
RECALL_KEY = "recall@50"


def mean_of_defined(values: Iterable[float | None]) -> float | None:
  """The mean of the values that are not None.

  Args:
    values: finite floats or None (undefined).

  Returns:
    The mean of the defined values, or None when there are none.
  """
  kept = [v for v in values if v is not None]
  if not kept:
    return None
  return finite_or_none(math.fsum(kept) / len(kept))


def _reference_mean(means, reference, strategies, column, measure, notes):
  """The reference strategy's mean, noting why its relative column is empty.

  Returns:
    ``means[reference]`` (None or 0 leave the column empty), or None when
    the reference strategy did not run.
  """
  if reference not in strategies:
    notes.append(f"{reference} missing: {column} column empty")
    return None
  value = means[reference]
  if value is None or value == 0:
    notes.append(f"{reference} has no nonzero {measure}: {column} column empty")
  return value


def relative_percent(value: float | None, reference: float | None) -> float | None:
  """How much ``value`` differs from ``reference``, in percent.

  Args:
    value: the value, or None.
    reference: the 0 % value, or None.

  Returns:
    ``100 * (value / reference - 1)``, or None when either is None or the
    reference is zero.
  """
  if value is None or reference is None or reference == 0:
    return None
  return finite_or_none(100.0 * (value / reference - 1.0))


def _lookup(mapping: Mapping, key: int | str) -> Any:
  """``mapping[str(key)]``, falling back to ``mapping[int(key)]``.

  results.json has string keys; a results dict that never went through JSON
  may still have integer ones.
  """
  if str(key) in mapping:
    return mapping[str(key)]
  return mapping.get(int(key))


def _read_strategies(
  results: Mapping, recall_key: str = "recall"
) -> dict[str, dict[str, dict[int, Any]]]:
  """Per strategy, the per-version Recall@50 (``entry[recall_key]``) and
  distance to fix-m0."""
  strategies = require_field(results, "strategies", "the results dict")
  if not isinstance(strategies, Mapping):
    raise InputError("results: 'strategies' must map strategy names to lists")
  out = {}
  for name, entries in strategies.items():
    if not isinstance(entries, list):
      raise InputError(
        f"results: strategies[{name!r}] must be a list of per-version entries"
      )
    recall, distance = {}, {}
    for i, entry in enumerate(entries):
      where = f"strategies[{name!r}][{i}]"
      version = int(require_field(entry, "version", where))
      recall_at = require_field(entry, recall_key, where)
      if not isinstance(recall_at, Mapping) or (
        "50" not in recall_at and 50 not in recall_at
      ):
        raise InputError(f"results: {where}[{recall_key!r}] has no Recall@50 ('50')")
      recall[version] = finite_or_none(_lookup(recall_at, 50))
      distance[version] = finite_or_none(entry.get("distance_to_fix_m0"))
      if version == 0 and "distance_to_fix_m0" not in entry:
        # Version 0 is M_0 for every strategy: fix-m0's embeddings exactly.
        distance[version] = 0.0
    out[name] = {"recall": recall, "distance": distance}
  return out


def _task_notes(
  task: str,
  values: Mapping[str, Mapping[int, float | None]],
  selection: int,
  strategies: list[str],
  skipped: set[str],
) -> list[str]:
  """Notes on the undefined values of one task at its evaluated versions.

  Args:
    task: the task name.
    values: per strategy, the task's value per version.
    selection: the task's selection version; later versions are evaluated.
    strategies: every strategy of the table.
    skipped: strategies without any defined value for the task; they have a
      note of their own, so they are not listed again per version.
  """
  notes = []
  versions = sorted({k for v in values.values() for k in v if k > selection})
  for k in versions:
    missing = [s for s in strategies if values.get(s, {}).get(k) is None]
    if missing and len(missing) == len(strategies):
      notes.append(
        f"task {task}: labels all one class at version {k} for every strategy"
      )
    elif missing := [s for s in missing if s not in skipped]:
      notes.append(f"task {task}: undefined at version {k} for {', '.join(missing)}")
  return notes


def comparison_table(
  results: Mapping[str, Any],
  unintended: UnintendedResults | None = None,
  half: str = "report",
) -> ComparisonTable:
  """The comparison table of every strategy in ``results``.

  Args:
    results: the main job's results dict (as in results.json), with
      ``results["strategies"][s]`` a list of per-version entries (``version``,
      ``recall["50"]``, ``distance_to_fix_m0``) and
      ``results["unintended"][t]`` a task's ``metric``, ``core``,
      ``selection_version`` and ``per_strategy[s]["per_version"]``.
    unintended: the unintended tasks' records; None reads them from
      ``results["unintended"]``.
    half: ``"report"`` (the reported numbers: ``recall`` and the report
      halves of the tasks) or ``"selection"`` (a held-out run's other half:
      ``selection_recall`` and the tasks' selection halves, which weights
      are chosen on and nothing reports).

  Returns:
    The table: a :class:`TableRow` per strategy, in the order of
    ``results["strategies"]``, the per-task means, the per-version series
    (lists indexed by version from 0, None where there is no value), the
    tasks and the notes (see :class:`ComparisonTable`).

  Raises:
    InputError: a results dict that lacks a field the table needs.
  """
  if half not in HALVES:
    raise unknown_name("table half", half, HALVES)
  strategies = _read_strategies(results, HALVES[half])
  if unintended is None:
    unintended = UnintendedResults.from_json(results.get("unintended"))
  if half != "report":
    unintended = unintended.on_half(half)
  tasks = {task.name: task for task in unintended.tasks}
  values = {
    t: {s: unintended.per_version(t, s) for s in unintended.strategies(t)}
    for t in tasks
  }
  names = list(strategies)
  core = [t for t, task in tasks.items() if task.core]
  notes = []

  mean_recall = {s: mean_of_defined(strategies[s]["recall"].values()) for s in names}
  recall_after_v0 = {
    s: mean_of_defined(r for k, r in strategies[s]["recall"].items() if k >= 1)
    for s in names
  }
  alignment = {s: mean_of_defined(strategies[s]["distance"].values()) for s in names}
  alignment_after_v0 = {
    s: mean_of_defined(d for k, d in strategies[s]["distance"].items() if k >= 1)
    for s in names
  }
  versions = {s: sorted(strategies[s]["recall"]) for s in names}
  if len({tuple(v) for v in versions.values()}) > 1:
    counts = ", ".join(f"{s}: {len(versions[s])}" for s in names)
    notes.append(
      f"strategies have different numbers of versions ({counts}); each mean "
      f"is over the strategy's own versions"
    )
  for s in names:
    if mean_recall[s] is None:
      notes.append(f"{s} has no Recall@50")

  per_task = {s: {} for s in names}
  for task, spec in tasks.items():
    skipped = set()
    for s in names:
      per_task[s][task] = mean_of_defined(
        v for k, v in values[task].get(s, {}).items() if k > spec.selection_version
      )
      if per_task[s][task] is None:
        skipped.add(s)
    everywhere = len(skipped) == len(names)
    if spec.core and skipped and not everywhere:
      notes.append(
        f"task {task} skipped for {', '.join(s for s in names if s in skipped)}: "
        f"no defined value after version {spec.selection_version}"
      )
    elif spec.core and everywhere and names:
      notes.append(
        f"task {task} skipped for every strategy: no defined value after "
        f"version {spec.selection_version}"
      )
    notes.extend(
      _task_notes(
        task,
        values[task],
        spec.selection_version,
        names,
        skipped if not everywhere else set(),
      )
    )
  mean_unintended = {s: mean_of_defined(per_task[s][t] for t in core) for s in names}

  reference_recall = _reference_mean(
    mean_recall,
    INTENDED_REFERENCE,
    strategies,
    "intended",
    "Recall@50",
    notes,
  )
  reference_after_v0 = recall_after_v0.get(INTENDED_REFERENCE)
  if not core:
    notes.append("no core unintended task: unintended column empty")
    reference_unintended = None
  else:
    reference_unintended = _reference_mean(
      mean_unintended,
      UNINTENDED_REFERENCE,
      strategies,
      "unintended",
      "core-task metric",
      notes,
    )

  rows = []
  for s in names:
    intended = relative_percent(mean_recall[s], reference_recall)
    unintended = None
    if reference_unintended is not None:
      # Compare over the tasks defined for both, so that a task skipped for
      # one side does not move the ratio.
      common = [
        t
        for t in core
        if per_task[s][t] is not None and per_task[UNINTENDED_REFERENCE][t] is not None
      ]
      unintended = relative_percent(
        mean_of_defined(per_task[s][t] for t in common),
        mean_of_defined(per_task[UNINTENDED_REFERENCE][t] for t in common),
      )
    total = None if intended is None or unintended is None else intended + unintended
    rows.append(
      TableRow(
        strategy=s,
        intended=intended,
        unintended=unintended,
        total=total,
        alignment_error=alignment[s],
        intended_after_v0=relative_percent(recall_after_v0[s], reference_after_v0),
        alignment_error_after_v0=alignment_after_v0[s],
        mean_recall50=mean_recall[s],
        mean_recall50_after_v0=recall_after_v0[s],
        mean_unintended=mean_unintended[s],
      )
    )

  per_version = {}
  for s in names:
    series = {RECALL_KEY: strategies[s]["recall"]}
    series.update({t: values[t].get(s, {}) for t in tasks})
    length = 1 + max((k for v in series.values() for k in v), default=-1)
    per_version[s] = {
      key: [values.get(k) for k in range(length)] for key, values in series.items()
    }

  return ComparisonTable(
    rows=tuple(rows),
    per_task=per_task,
    per_version=per_version,
    tasks={
      t: {
        "metric": spec.metric,
        "core": spec.core,
        "selection_version": spec.selection_version,
      }
      for t, spec in tasks.items()
    },
    notes=tuple(notes),
  )
