"""A comparison's files, written once for every run: compared or merged.

``experiments.compare`` (through :mod:`bcjax.jobs.comparison`) and
``experiments.merge`` both end in :func:`write_outputs`, so a merged run's
folder is laid out as a compared one: ``table.md`` (the table, whose users
report Recall@K, the per-version Recall@K table and, where the run has it,
the compatibility section), ``table.csv``, the plots and ``results.json``.
"""

from __future__ import annotations

import os

from absl import logging

from bcjax import compatibility
from bcjax.evaluation import recall_table, seed_table
from bcjax.evaluation.plots import write_plots
from bcjax.evaluation.table_records import ComparisonTable, SeedTable
from bcjax.evaluation.table_text import to_csv, to_markdown
from bcjax.jobs import weight_tuning
from bcjax.jobs.metric_writer import MetricWriter
from bcjax.storage import atomic_files

# The cells of a table row that the metric writer logs.
LOGGED_CELLS = ("intended", "unintended", "total", "alignment_error")


def write_outputs(
  out: str,
  results: dict,
  runs: list[tuple[dict, ComparisonTable]],
  table: ComparisonTable | SeedTable,
  *,
  writer: MetricWriter | None = None,
  environment: dict | None = None,
) -> dict:
  """Writes a run's table, its Markdown, CSV and plots, and its results.json.

  Args:
    out: the folder to write into (created if missing).
    results: the run's results, its table over seeds already under
      ``"table"``; ``"plots"`` is added (and ``"environment"`` where given).
    runs: per embedding seed, ``(results, table)``.
    table: the table over seeds (:func:`bcjax.evaluation.seed_table.seed_table`
      of the runs' tables; the one run's own table for one seed).
    writer: where the table's numbers go as metrics too (None: nowhere).
    environment: the record that ends ``results.json`` (None: its own).

  Returns:
    ``results`` as written.
  """
  os.makedirs(out, exist_ok=True)
  if writer is not None:
    for row in table.rows:
      cells = {c: row.cell(c) for c in LOGGED_CELLS}
      writer.write(f"table/{row.strategy}", 0, cells, strategy=row.strategy)
  if len(runs) == 1:
    markdown = to_markdown(table) + "\n" + recall_table.to_markdown(results)
  else:
    markdown = (
      seed_table.to_markdown(table)
      + "\nEmbedding seed 0 (every seed's numbers are in results.json's per_seed):\n\n"
      + recall_table.to_markdown(results)
    )
  markdown = report_split_note(results["config"]) + markdown
  if "weight_selection" in results:
    markdown += "\n## Weights chosen on tuning seeds\n\n" + weight_tuning.to_markdown(
      results["weight_selection"]
    )
  if "compatibility" in results:
    markdown += "\n" + compatibility.to_markdown(results["compatibility"])
  with atomic_files.atomic_open(os.path.join(out, "table.md")) as f:
    f.write(markdown)
  with atomic_files.atomic_open(os.path.join(out, "table.csv")) as f:
    f.write(to_csv(table) if len(runs) == 1 else seed_table.to_csv(table))
  results["plots"] = [os.path.basename(p) for p in write_plots(runs, out)]
  if environment is not None:
    results["environment"] = environment
  atomic_files.write_json(os.path.join(out, "results.json"), results)
  logging.info("comparison table (%s):\n%s", out, markdown)
  return results


def report_split_note(config) -> str:
  """The line of ``table.md`` that says whose numbers the tables report."""
  if config.get("report_split", "validation") == "held_out":
    return (
      "Every number is reported on held-out halves: Recall@K on half of each "
      "version's validation users, the unintended tasks on the examples of "
      "the same half of the users (item tasks: of half of the items); the "
      "other halves chose each kept epoch and any tuned weight "
      "(`config.report_split=held_out`, halves seeded by the embedding "
      "seed).\n\n"
    )
  return (
    "Optimistic: Recall@K is reported on every validation user, the same "
    "users that chose each version's kept epoch, as the reference does "
    "(`config.report_split=validation`).\n\n"
  )
