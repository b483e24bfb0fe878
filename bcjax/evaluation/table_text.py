"""The comparison table as text: Markdown for people, CSV for tools.

One seed's table (:func:`to_markdown`, :func:`to_csv`); the helpers here
(:func:`format_number`, :func:`markdown_table`, :func:`tasks_and_notes`) write
the tables over seeds in :mod:`bcjax.evaluation.seed_table` too.
"""

from __future__ import annotations

import csv
import io

from bcjax.evaluation.table_records import COLUMNS, ComparisonTable, SeedTable


def format_number(value: float | None, decimals: int) -> str:
  """``value`` with ``decimals`` decimals, ``n/a`` for None, never ``-0.00``."""
  if value is None:
    return "n/a"
  text = f"{value:.{decimals}f}"
  # A value that rounds to zero from below would print as "-0.00".
  return text[1:] if text.startswith("-") and float(text) == 0 else text


def markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
  """The lines of a Markdown table."""
  lines = ["| " + " | ".join(header) + " |"]
  lines.append("|" + "|".join("---" for _ in header) + "|")
  lines.extend("| " + " | ".join(row) + " |" for row in body)
  return lines


def to_markdown(table: ComparisonTable) -> str:
  """The comparison table, a per-task table and the notes, as Markdown.

  Args:
    table: the output of :func:`~bcjax.evaluation.table.comparison_table`.

  Returns:
    Markdown text: percentages with two decimals, errors and metrics with
    four, ``n/a`` where a value is undefined.
  """
  lines = ["## Comparison (relative to nobc / fix-m0)", ""]
  lines += markdown_table(
    ["strategy", "intended (%)", "unintended (%)", "total", "alignment error"],
    [
      [
        row.strategy,
        format_number(row.intended, 2),
        format_number(row.unintended, 2),
        format_number(row.total, 2),
        format_number(row.alignment_error, 4),
      ]
      for row in table.rows
    ],
  )
  lines += tasks_and_notes(table, "mean over evaluated versions")
  return "\n".join(lines) + "\n"


def tasks_and_notes(table: ComparisonTable | SeedTable, averaged: str) -> list[str]:
  """The Markdown lines of the per-task table and the notes.

  Args:
    table: a comparison table (one seed or over seeds).
    averaged: what each per-task cell averages, for the heading.
  """
  lines = []
  tasks = table.tasks
  if tasks:
    strategies = table.strategies
    lines += ["", f"## Unintended tasks ({averaged})", ""]
    lines += markdown_table(
      ["task", "metric", "core", "versions", *strategies],
      [
        [
          task,
          spec["metric"],
          "yes" if spec["core"] else "no",
          f"> {spec['selection_version']}",
          *(format_number(table.per_task[s].get(task), 4) for s in strategies),
        ]
        for task, spec in tasks.items()
      ],
    )
  if table.notes:
    lines += ["", "## Notes", ""]
    lines += [f"- {note}" for note in table.notes]
  return lines


def to_csv(table: ComparisonTable) -> str:
  """The comparison table as CSV: a header, then one row per strategy.

  Args:
    table: the output of :func:`~bcjax.evaluation.table.comparison_table`.

  Returns:
    CSV text with the columns ``strategy, intended, unintended, total,
    alignment_error`` (percentages for the first three numbers), full
    precision, an empty cell for None.
  """
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(COLUMNS)
  for row in table.rows:
    numbers = [getattr(row, c) for c in COLUMNS[1:]]
    writer.writerow([row.strategy, *("" if v is None else repr(v) for v in numbers)])
  return buffer.getvalue()
