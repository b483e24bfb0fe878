"""The table over seeds: per-seed cells, means and paired t-intervals.

Expected values come from NumPy and the Student-t quantiles below (from
tables), independent of bcjax.evaluation.intervals.
"""

import csv
import io
import math

import numpy as np
import pytest

from bcjax.evaluation import seed_table
from bcjax.evaluation.plots import figures
from bcjax.evaluation.table import comparison_table
from bcjax.evaluation.table_records import ComparisonTable
from tests.test_table import make_results

# Two-sided 95% Student-t quantiles t_{0.975, df}.
T975 = {1: 12.706204736174703, 2: 4.302652729749464}


def t_interval(values):
  """Mean and 95% t-interval ends, by NumPy and the table above."""
  values = np.asarray(values, dtype=float)
  n = len(values)
  half = T975[n - 1] * values.std(ddof=1) / math.sqrt(n)
  return values.mean(), values.mean() - half, values.mean() + half


def seed_results():
  """Three seeds of the hand-made results, each with its own numbers."""
  out = []
  for scale in (1.0, 1.1, 0.95):
    results = make_results()
    for entries in results["strategies"].values():
      for e in entries[1:]:
        e["recall"]["50"] *= scale
        e["distance_to_fix_m0"] *= scale
    # The consumers of each seed move too (bc-aligner's edge task).
    edge = results["unintended"]["edge"]["per_strategy"]["bc-aligner"]["per_version"]
    edge["2"] = 0.74 * scale
    out.append(results)
  return out


def test_one_seed_is_the_one_seed_table_unchanged():
  table = comparison_table(make_results())
  assert seed_table.seed_table([table]) is table


def test_cells_are_per_seed_values_averaged_with_t_intervals():
  runs = seed_results()
  tables = [comparison_table(r) for r in runs]
  summary = seed_table.seed_table(tables).to_json()
  assert summary["num_seeds"] == 3
  rows = {row["strategy"]: row for row in summary["rows"]}
  for s in ("fix-m0", "nobc", "bc-aligner"):
    for column in ("intended", "unintended", "total", "alignment_error"):
      # Step 1, independently: the cell within each seed from its raw numbers.
      per_seed = [t.row(s).cell(column) for t in tables]
      assert rows[s]["per_seed"][column] == per_seed
      mean, low, high = t_interval(per_seed)
      cell = rows[s]["intervals"][column]
      assert rows[s][column] == pytest.approx(mean, abs=1e-12)
      assert cell["low"] == pytest.approx(low, abs=1e-9)
      assert cell["high"] == pytest.approx(high, abs=1e-9)
      assert cell["n"] == 3 and cell["level"] == 0.95
  # Intended within each seed from Recall@50 over versions 0..2, relative to
  # the same seed's nobc.
  recall = lambda r, s: np.mean([e["recall"]["50"] for e in r["strategies"][s]])  # noqa: E731
  want = [100 * (recall(r, "bc-aligner") / recall(r, "nobc") - 1) for r in runs]
  assert rows["bc-aligner"]["per_seed"]["intended"] == pytest.approx(want)


def test_paired_differences_of_the_total():
  tables = [comparison_table(r).to_json() for r in seed_results()]
  for t in tables:
    for row in t["rows"]:
      if row["strategy"] == "bc-aligner":
        row["strategy"] = "joint-linear-mloss"
  summary = seed_table.seed_table([ComparisonTable.from_json(t) for t in tables])
  paired = summary.to_json()["paired"]
  assert paired["reference"] == "joint-linear-mloss" and paired["column"] == "total"
  rows = {r["strategy"]: r for r in paired["rows"]}
  assert set(rows) == {"fix-m0", "nobc"}
  for other in ("fix-m0", "nobc"):
    totals = {
      s: np.array([{r["strategy"]: r for r in t["rows"]}[s]["total"] for t in tables])
      for s in ("joint-linear-mloss", other)
    }
    differences = totals["joint-linear-mloss"] - totals[other]
    np.testing.assert_allclose(rows[other]["differences"], differences, atol=1e-12)
    mean, low, high = t_interval(differences)
    cell = rows[other]["interval"]
    assert (cell["mean"], cell["low"], cell["high"]) == pytest.approx(
      (mean, low, high), abs=1e-9
    )
  text = seed_table.to_markdown(summary)
  mean, low, high = t_interval(np.array(rows["nobc"]["differences"], dtype=float))
  assert (
    f"| nobc | {mean:.2f} ± {(high - low) / 2:.2f} | [{low:.2f}, {high:.2f}] |" in text
  )


def test_markdown_and_csv_show_mean_and_interval():
  tables = [comparison_table(r) for r in seed_results()]
  summary = seed_table.seed_table(tables)
  text = seed_table.to_markdown(summary)
  assert "mean ± 95% interval over 3 embedding seeds" in text
  assert "Student-t 95% interval with 2 degrees of freedom" in text
  rows = {row["strategy"]: row for row in summary.to_json()["rows"]}
  cell = rows["nobc"]["intervals"]["alignment_error"]
  half = (cell["high"] - cell["low"]) / 2
  assert f"| {cell['mean']:.4f} ± {half:.4f} |" in text
  # No paired table without BC-Aligner.
  assert "Paired differences" not in text
  lines = list(csv.reader(io.StringIO(seed_table.to_csv(summary))))
  assert lines[0][:4] == ["strategy", "intended", "intended_low", "intended_high"]
  nobc = dict(zip(lines[0], lines[2]))
  assert float(nobc["alignment_error_low"]) == pytest.approx(cell["low"])


def test_a_cell_missing_in_some_seeds_says_so():
  tables = [comparison_table(r).to_json() for r in seed_results()]
  tables[1]["rows"][2]["unintended"] = None
  summary = seed_table.seed_table([ComparisonTable.from_json(t) for t in tables])
  assert "bc-aligner unintended: defined for 2 of 3 seeds" in " ".join(summary.notes)
  assert "(2 of 3 seeds)" in seed_table.to_markdown(summary)


def test_plots_average_seeds_with_a_band():
  runs = seed_results()
  figs = figures([(r, comparison_table(r)) for r in runs])
  assert "tradeoff.png" in figs
  (ax,) = figs["alignment_error.png"].axes
  lines = {line.get_label(): line.get_xydata() for line in ax.get_lines()}
  distances = [np.array([0.0, 1.0, 2.0]) * s for s in (1.0, 1.1, 0.95)]
  np.testing.assert_allclose(lines["nobc"][:, 1], np.mean(distances, axis=0))
  # One band per strategy with 2+ seeds, from the t-interval at each version.
  bands = ax.collections
  assert len(bands) == 3
  _, low, high = t_interval([d[2] for d in distances])
  vertices = bands[1].get_paths()[0].vertices
  ys = vertices[vertices[:, 0] == 2, 1]  # nobc's band at version 2
  assert ys.min() == pytest.approx(low) and ys.max() == pytest.approx(high)
