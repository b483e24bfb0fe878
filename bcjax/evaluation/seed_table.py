"""The comparison table over embedding seeds: means with paired t-intervals.

With ``config.num_seeds = n > 1`` the main job runs once per embedding seed
(each with its own M_0). A cell of the table over seeds is computed paired
by seed:

1. within each seed, exactly as in a one-seed run
   (:func:`bcjax.evaluation.table.comparison_table` on that seed's results:
   relative to the same seed's nobc or fix-m0, the consumer seeds averaged
   inside it);
2. over seeds, the mean of the per-seed values and a two-sided Student-t
   95% interval with ``n - 1`` degrees of freedom
   (:func:`bcjax.evaluation.intervals.mean_interval`).

The paired comparison takes, per seed, BC-Aligner's (``joint-linear-mloss``)
total minus each other strategy's, and reports the mean and t-interval of
those differences (:func:`bcjax.evaluation.intervals.paired_difference`):
what the seeds share cancels. One seed is a one-seed run's table, unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from bcjax.evaluation.intervals import Interval, mean_interval
from bcjax.evaluation.table import mean_of_defined
from bcjax.evaluation.table_records import (
  CELL_COLUMNS,
  COLUMNS,
  ComparisonTable,
  PairedComparison,
  PairedRow,
  SeedRow,
  SeedTable,
  TableRow,
)
from bcjax.evaluation.table_text import format_number, markdown_table, tasks_and_notes

LEVEL = 0.95
PAIRED_REFERENCE = "joint-linear-mloss"
PAIRED_COLUMN = "total"


def interval_cell(values: Sequence[float | None], level: float = LEVEL) -> dict | None:
  """The mean and t-interval of the defined per-seed values of one cell.

  Args:
    values: one value per seed, None where the seed has none.
    level: the confidence level.

  Returns:
    :meth:`Interval.to_dict` (``mean``, ``low``, ``high``, ``n``, ``level``;
    ``low``/``high`` None for one defined value), or None for none.
  """
  defined = [v for v in values if v is not None]
  return mean_interval(defined, level).to_dict() if defined else None


def seed_table(tables: Sequence[ComparisonTable]) -> ComparisonTable | SeedTable:
  """The comparison table over seeds from each seed's own table.

  Args:
    tables: ``comparison_table(results of seed i)`` for ``i = 0..n-1``.

  Returns:
    For one seed, ``tables[0]`` itself. For more, a :class:`SeedTable`:
    per strategy (seed 0's order) the mean over seeds of every column of
    :data:`CELL_COLUMNS` with its :func:`interval_cell` and per-seed values;
    the paired differences (absent when the reference strategy did not
    run); per task the mean over seeds; seed 0's tasks; and every seed's
    notes, once each, prefixed with the seeds they hold for unless they
    hold for all.
  """
  if len(tables) == 1:
    return tables[0]
  n = len(tables)
  names = tables[0].strategies
  rows, notes = [], []
  for s in names:
    values = {c: [_cell(t.row(s), c) for t in tables] for c in CELL_COLUMNS}
    intervals = {c: interval_cell(v) for c, v in values.items()}
    means = {c: None if i is None else i["mean"] for c, i in intervals.items()}
    rows.append(SeedRow(s, means, intervals, values))
    for c in COLUMNS[1:]:
      defined = sum(v is not None for v in values[c])
      if 0 < defined < n:
        notes.append(
          f"{s} {c}: defined for {defined} of {n} seeds, averaged over those"
        )
  seen: dict[str, list[int]] = {}
  for i, t in enumerate(tables):
    for note in t.notes:
      seen.setdefault(note, []).append(i)
  for note, seeds in seen.items():
    if len(seeds) == n:
      notes.append(note)
    else:
      notes.append(
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}: {note}"
      )
  return SeedTable(
    num_seeds=n,
    level=LEVEL,
    rows=tuple(rows),
    paired=paired_rows(tables, names) if PAIRED_REFERENCE in names else None,
    per_task={
      s: {
        task: mean_of_defined(t.per_task.get(s, {}).get(task) for t in tables)
        for task in tables[0].tasks
      }
      for s in names
    },
    tasks=tables[0].tasks,
    notes=tuple(notes),
  )


def _cell(row: TableRow | None, column: str) -> float | None:
  return None if row is None else row.cell(column)


def paired_rows(
  tables: Sequence[ComparisonTable], names: Sequence[str]
) -> PairedComparison:
  """BC-Aligner's total minus each other strategy's, per seed, with intervals.

  Args:
    tables: per seed, its comparison table.
    names: the strategies, in table order.

  Returns:
    A row per strategy but the reference; a seed where either total is
    undefined has None as its difference and is left out of the interval.
  """
  out = []
  for s in names:
    if s == PAIRED_REFERENCE:
      continue
    differences = []
    for table in tables:
      a = _cell(table.row(PAIRED_REFERENCE), PAIRED_COLUMN)
      b = _cell(table.row(s), PAIRED_COLUMN)
      differences.append(None if a is None or b is None else a - b)
    out.append(PairedRow(s, differences, interval_cell(differences)))
  return PairedComparison(PAIRED_REFERENCE, PAIRED_COLUMN, LEVEL, tuple(out))


def format_cell(cell: Mapping[str, Any] | None, decimals: int, num_seeds: int) -> str:
  """``mean ± half-width``; ``(n of N seeds)`` when some seeds lack it."""
  if cell is None:
    return "n/a"
  interval = Interval(**cell)
  text = format_number(interval.mean, decimals)
  if interval.half_width is not None:
    text += f" ± {format_number(interval.half_width, decimals)}"
  if interval.n < num_seeds:
    text += f" ({interval.n} of {num_seeds} seeds)"
  return text


def to_markdown(table: SeedTable) -> str:
  """The table over seeds, the paired differences, per task, notes, as Markdown.

  Args:
    table: the output of :func:`seed_table` for two or more seeds.
  """
  n, level = table.num_seeds, table.level
  lines = [
    f"## Comparison (relative to nobc / fix-m0), mean ± {level:.0%} interval over "
    f"{n} embedding seeds",
    "",
    f"Each cell is computed within each embedding seed as in a one-seed run "
    f"(relative to the same seed's nobc / fix-m0, consumer seeds averaged inside "
    f"it), then averaged over the {n} seeds; ± is the half-width of a two-sided "
    f"Student-t {level:.0%} interval with {_degrees(n)}.",
    "",
  ]
  lines += markdown_table(
    ["strategy", "intended (%)", "unintended (%)", "total", "alignment error"],
    [
      [row.strategy]
      + [
        format_cell(row.intervals[c], 4 if c == "alignment_error" else 2, n)
        for c in COLUMNS[1:]
      ]
      for row in table.rows
    ],
  )
  paired = table.paired
  if paired:
    ref, column = paired.reference, paired.column
    lines += [
      "",
      f"## Paired differences: {ref} minus each strategy ({column})",
      "",
      f"Per embedding seed, {ref}'s {column} minus the strategy's (positive: "
      f"{ref} is better); mean ± half-width and the interval of a two-sided "
      f"Student-t {level:.0%} interval over seeds ({_degrees(n)}).",
      "",
    ]
    body = []
    for row in paired.rows:
      cell = row.interval
      span = "n/a"
      if cell is not None and cell["low"] is not None:
        span = f"[{format_number(cell['low'], 2)}, {format_number(cell['high'], 2)}]"
      body.append([row.strategy, format_cell(cell, 2, n), span])
    lines += markdown_table(
      ["strategy", f"{ref} − strategy", f"{level:.0%} interval"], body
    )
  lines += tasks_and_notes(table, "mean over evaluated versions and seeds")
  return "\n".join(lines) + "\n"


def _degrees(n: int) -> str:
  """``"2 degrees of freedom"`` of a t-interval over ``n`` seeds."""
  return f"{n - 1} degree{'' if n == 2 else 's'} of freedom"


def to_csv(table: SeedTable) -> str:
  """The table over seeds as CSV: per column its mean, low and high.

  Args:
    table: the output of :func:`seed_table` for two or more seeds.

  Returns:
    CSV text with ``strategy`` and, per column ``c`` of the one-seed CSV,
    ``c`` (the mean over seeds), ``c_low`` and ``c_high`` (the ends of the
    95% interval); an empty cell for None.
  """
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  header = ["strategy"]
  for c in COLUMNS[1:]:
    header += [c, f"{c}_low", f"{c}_high"]
  writer.writerow(header)
  for row in table.rows:
    cells = [row.strategy]
    for c in COLUMNS[1:]:
      cell = row.intervals[c] or {}
      cells += [
        "" if cell.get(k) is None else repr(cell[k]) for k in ("mean", "low", "high")
      ]
    writer.writerow(cells)
  return buffer.getvalue()
