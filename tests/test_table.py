"""The comparison table on a small made-up results dict, computed by hand."""

import copy
import csv
import io
import json
import math
import re

import numpy as np
import pytest

from bcjax.errors import InputError
from bcjax.evaluation import seed_table
from bcjax.evaluation.plots import figures, write_plots
from bcjax.evaluation.table import comparison_table
from bcjax.evaluation.table_records import COLUMNS, ComparisonTable, read_table
from bcjax.evaluation.table_text import to_csv, to_markdown

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def strategy_entries(recall50, distances):
  """Per-version entries; ``distances`` are for versions 1, 2, ..."""
  entries = []
  for k, r in enumerate(recall50):
    entry = {"version": k, "recall": {"10": r / 3, "20": r / 2, "50": r, "100": r}}
    if k >= 1:
      entry["distance_to_fix_m0"] = distances[k - 1]
      entry["alignment_mse_v0"] = distances[k - 1]
    entry["epochs"] = 7  # Other keys are ignored.
    entries.append(entry)
  return entries


def task(metric, core, selection, **per_strategy):
  return {
    "metric": metric,
    "core": core,
    "selection_version": selection,
    "per_strategy": {
      name.replace("_", "-"): {"per_version": {str(k): v for k, v in enumerate(values)}}
      for name, values in per_strategy.items()
    },
  }


def make_results():
  results = {
    "strategies": {
      "fix-m0": strategy_entries([0.3, 0.3, 0.3], [0.0, 0.0]),
      "nobc": strategy_entries([0.3, 0.4, 0.5], [1.0, 2.0]),
      "bc-aligner": strategy_entries([0.3, 0.38, 0.46], [0.1, 0.2]),
    },
    "unintended": {
      "edge": task(
        "rocauc",
        True,
        0,
        fix_m0=[0.8, 0.8, 0.8],
        nobc=[0.8, 0.6, 0.5],
        bc_aligner=[0.8, 0.78, 0.74],
      ),
      # Version 1 is the selection version: its values must not count.
      "activity": task(
        "rocauc",
        True,
        1,
        fix_m0=[0.5, 0.7, 0.7],
        nobc=[0.5, 0.7, 0.63],
        bc_aligner=[0.5, 0.1, 0.7],
      ),
      # Undefined at version 2 for everyone (labels all one class).
      "item-std": task(
        "rocauc",
        True,
        0,
        fix_m0=[0.6, 0.6, None],
        nobc=[0.6, 0.54, None],
        bc_aligner=[0.6, 0.6, None],
      ),
      # Undefined everywhere for bc-aligner: skipped for it alone.
      "item-avg": task(
        "rocauc",
        True,
        0,
        fix_m0=[0.9, 0.9, 0.9],
        nobc=[0.9, 0.81, 0.81],
        bc_aligner=[0.9, None, None],
      ),
      # Not core: shown per task, never in the unintended mean.
      "gender": task(
        "accuracy",
        False,
        0,
        fix_m0=[0.7, 0.7, 0.7],
        nobc=[0.7, 0.6, 0.5],
        bc_aligner=[0.7, 0.0, 0.0],
      ),
    },
  }
  # What the table reads is what results.json holds.
  return json.loads(json.dumps(results))


# Hand computations.
# Recall@50 over every version 0..2 (the reference's get_df): fix-m0 0.3,
#   nobc (0.3 + 0.4 + 0.5) / 3 = 0.4, bc-aligner (0.3 + 0.38 + 0.46) / 3 = 0.38;
#   over versions 1..2 alone (the extra): 0.3, 0.45, 0.42.
# Alignment error: distance_to_fix_m0 over versions 0..2, version 0 (no
#   number in the entries) at distance 0: nobc (0 + 1 + 2) / 3 = 1.0,
#   bc-aligner (0 + 0.1 + 0.2) / 3 = 0.1; over versions 1..2: 1.5 and 0.15.
# Core task means: fix-m0 edge 0.8, activity 0.7 (version 2 only),
#   item-std 0.6 (version 1 only), item-avg 0.9 -> U = 3.0 / 4 = 0.75;
#   nobc 0.55, 0.63, 0.54, 0.81 -> U = 2.53 / 4 = 0.6325;
#   bc-aligner 0.76, 0.7, 0.6, (skipped) -> U = 2.06 / 3; its unintended
#   column compares it with fix-m0 over the three tasks both have:
#   (2.06 / 3) / (2.1 / 3).
WANT = {
  "fix-m0": {
    "intended": 100 * (0.3 / 0.4 - 1),
    "unintended": 0.0,
    "alignment_error": 0.0,
    "intended_after_v0": 100 * (0.3 / 0.45 - 1),
    "alignment_error_after_v0": 0.0,
    "mean_recall50": 0.3,
    "mean_recall50_after_v0": 0.3,
    "mean_unintended": 0.75,
  },
  "nobc": {
    "intended": 0.0,
    "unintended": 100 * (0.6325 / 0.75 - 1),
    "alignment_error": 1.0,
    "intended_after_v0": 0.0,
    "alignment_error_after_v0": 1.5,
    "mean_recall50": 0.4,
    "mean_recall50_after_v0": 0.45,
    "mean_unintended": 0.6325,
  },
  "bc-aligner": {
    "intended": 100 * (0.38 / 0.4 - 1),
    "unintended": 100 * (2.06 / 2.1 - 1),
    "alignment_error": 0.1,
    "intended_after_v0": 100 * (0.42 / 0.45 - 1),
    "alignment_error_after_v0": 0.15,
    "mean_recall50": 0.38,
    "mean_recall50_after_v0": 0.42,
    "mean_unintended": 2.06 / 3,
  },
}


def numbers(obj):
  """Every float anywhere in a nested structure."""
  if isinstance(obj, float):
    yield obj
  elif isinstance(obj, dict):
    for v in obj.values():
      yield from numbers(v)
  elif isinstance(obj, list):
    for v in obj:
      yield from numbers(v)


def test_table_arithmetic():
  table = comparison_table(make_results()).to_json()
  rows = {row["strategy"]: row for row in table["rows"]}
  assert [row["strategy"] for row in table["rows"]] == ["fix-m0", "nobc", "bc-aligner"]
  assert rows["bc-aligner"]["intended"] == pytest.approx(-5.0)
  for strategy, want in WANT.items():
    for key, value in want.items():
      assert rows[strategy][key] == pytest.approx(value, abs=1e-12), (strategy, key)
    assert rows[strategy]["total"] == pytest.approx(
      want["intended"] + want["unintended"], abs=1e-12
    )
  assert all(math.isfinite(x) for x in numbers(table))
  json.dumps(table, allow_nan=False)


def test_intended_and_alignment_follow_the_reference_get_df():
  """Version 0 counts in both means, as in ``get_df``; an independent NumPy."""
  results = make_results()
  # A version-0 distance given in the entries is read, not assumed 0.
  results["strategies"]["nobc"][0]["distance_to_fix_m0"] = 0.6
  recall = {
    s: np.array([e["recall"]["50"] for e in entries])
    for s, entries in results["strategies"].items()
  }
  rows = {row.strategy: row.to_json() for row in comparison_table(results).rows}
  for s in recall:
    want = (recall[s].mean() - recall["nobc"].mean()) / recall["nobc"].mean() * 100
    assert rows[s]["intended"] == pytest.approx(want, abs=1e-12)
    after = recall[s][1:].mean() / recall["nobc"][1:].mean() * 100 - 100
    assert rows[s]["intended_after_v0"] == pytest.approx(after, abs=1e-12)
  assert rows["nobc"]["alignment_error"] == pytest.approx(np.mean([0.6, 1.0, 2.0]))
  assert rows["nobc"]["alignment_error_after_v0"] == pytest.approx(1.5)


def test_per_task_and_per_version():
  table = comparison_table(make_results()).to_json()
  assert table["per_task"]["nobc"]["activity"] == pytest.approx(0.63)
  assert table["per_task"]["nobc"]["item-std"] == pytest.approx(0.54)
  assert table["per_task"]["bc-aligner"]["item-avg"] is None
  assert table["per_task"]["bc-aligner"]["gender"] == 0.0
  assert table["per_version"]["bc-aligner"]["recall@50"] == [0.3, 0.38, 0.46]
  assert table["per_version"]["nobc"]["item-std"] == [0.6, 0.54, None]
  assert table["tasks"]["activity"] == {
    "metric": "rocauc",
    "core": True,
    "selection_version": 1,
  }


def test_notes_explain_what_was_skipped():
  notes = comparison_table(make_results()).notes
  assert "task item-std: labels all one class at version 2 for every strategy" in (
    notes
  )
  assert any("item-avg skipped for bc-aligner" in note for note in notes)
  # The skipped strategy is not listed again version by version.
  assert not any("undefined at version" in note for note in notes)


def test_nan_read_back_from_json_counts_as_undefined():
  results = make_results()
  results["strategies"]["nobc"][2]["distance_to_fix_m0"] = float("nan")
  results["unintended"]["edge"]["per_strategy"]["nobc"]["per_version"]["2"] = float(
    "inf"
  )
  table = comparison_table(results).to_json()
  rows = {row["strategy"]: row for row in table["rows"]}
  # Versions 0 (distance 0) and 1 (1.0) are left.
  assert rows["nobc"]["alignment_error"] == 0.5
  assert table["per_task"]["nobc"]["edge"] == pytest.approx(0.6)
  assert any("edge: undefined at version 2 for nobc" in n for n in table["notes"])
  json.dumps(table, allow_nan=False)


@pytest.mark.parametrize(
  "missing,column,note",
  [
    ("nobc", "intended", "nobc missing: intended column empty"),
    ("fix-m0", "unintended", "fix-m0 missing: unintended column empty"),
  ],
)
def test_missing_reference_empties_its_column(missing, column, note, tmp_path):
  results = make_results()
  del results["strategies"][missing]
  table = comparison_table(results)
  assert note in table.notes
  other = "unintended" if column == "intended" else "intended"
  for row in table.rows:
    assert row.cell(column) is None and row.total is None
    assert row.cell(other) is not None
  assert table.row("bc-aligner").cell(other) == pytest.approx(WANT["bc-aligner"][other])
  assert "n/a" in to_markdown(table)
  assert ",," in to_csv(table)
  written = {
    p.rsplit("/", 1)[-1] for p in write_plots([(results, table)], str(tmp_path))
  }
  skipped = "recall50_vs_nobc.png" if missing == "nobc" else "unintended_vs_fix_m0.png"
  assert skipped not in written and "alignment_error.png" in written
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(written)


def test_markdown_rows():
  text = to_markdown(comparison_table(make_results()))
  assert "| strategy | intended (%) | unintended (%) | total | alignment error |" in (
    text
  )
  assert "| fix-m0 | -25.00 | 0.00 | -25.00 | 0.0000 |" in text
  assert "| nobc | 0.00 | -15.67 | -15.67 | 1.0000 |" in text
  assert "| bc-aligner | -5.00 | -1.90 | -6.90 | 0.1000 |" in text
  assert "| item-avg | rocauc | yes | > 0 | 0.9000 | 0.8100 | n/a |" in text
  assert "| gender | accuracy | no | > 0 | 0.7000 | 0.5500 | 0.0000 |" in text
  assert "- task item-std: labels all one class at version 2" in text
  assert "nan" not in text.lower()


def test_csv_rows():
  table = comparison_table(make_results())
  rows = list(csv.reader(io.StringIO(to_csv(table))))
  assert tuple(rows[0]) == COLUMNS
  assert [r[0] for r in rows[1:]] == ["fix-m0", "nobc", "bc-aligner"]
  bc = dict(zip(COLUMNS, rows[3]))
  assert float(bc["intended"]) == pytest.approx(WANT["bc-aligner"]["intended"])
  assert float(bc["alignment_error"]) == pytest.approx(0.1)


def test_plots_are_png_files(tmp_path):
  results = make_results()
  paths = write_plots([(results, comparison_table(results))], str(tmp_path / "plots"))
  names = sorted(p.rsplit("/", 1)[-1] for p in paths)
  assert names == [
    "alignment_error.png",
    "recall50_vs_nobc.png",
    "tradeoff.png",
    "unintended_vs_fix_m0.png",
  ]
  for path in paths:
    with open(path, "rb") as f:
      assert f.read(8) == PNG_MAGIC
  # Only the plots: no temporary files are left beside them.
  assert len(list((tmp_path / "plots").iterdir())) == 4


# Hand computations of the plotted points, (version, value) per strategy.
# Recall@50 relative to nobc's 0.3, 0.4, 0.5: fix-m0 0.3 / 0.4 and 0.3 / 0.5,
#   bc-aligner 0.38 / 0.4 = 0.95 and 0.46 / 0.5 = 0.92.
# Mean core-task metric per version, a task counting after its selection
#   version (none at version 0): fix-m0 (0.8 + 0.6 + 0.9) / 3 and
#   (0.8 + 0.7 + 0.9) / 3 = 0.8; nobc (0.6 + 0.54 + 0.81) / 3 and
#   (0.5 + 0.63 + 0.81) / 3; bc-aligner over its defined tasks
#   (0.78 + 0.6) / 2 = 0.69 and (0.74 + 0.7) / 2 = 0.72, both 90 % of fix-m0.
# Alignment error: distance_to_fix_m0 at versions 1 and 2, 0 at version 0.
# Trade-off: (unintended, intended) of each strategy's table row (WANT).
WANT_PLOTS = {
  "recall50_vs_nobc.png": {
    "fix-m0": [(0, 0.0), (1, -25.0), (2, -40.0)],
    "nobc": [(0, 0.0), (1, 0.0), (2, 0.0)],
    "bc-aligner": [(0, 0.0), (1, -5.0), (2, -8.0)],
  },
  "unintended_vs_fix_m0.png": {
    "fix-m0": [(1, 0.0), (2, 0.0)],
    "nobc": [(1, 100 * (1.95 / 2.3 - 1)), (2, 100 * (1.94 / 2.4 - 1))],
    "bc-aligner": [(1, -10.0), (2, -10.0)],
  },
  "alignment_error.png": {
    "fix-m0": [(0, 0.0), (1, 0.0), (2, 0.0)],
    "nobc": [(0, 0.0), (1, 1.0), (2, 2.0)],
    "bc-aligner": [(0, 0.0), (1, 0.1), (2, 0.2)],
  },
  "tradeoff.png": {
    s: [(WANT[s]["unintended"], WANT[s]["intended"])]
    for s in ("fix-m0", "nobc", "bc-aligner")
  },
}


def test_plotted_points_are_computed_by_hand():
  results = make_results()
  figs = figures([(results, comparison_table(results))])
  assert list(figs) == list(WANT_PLOTS)
  for name, want in WANT_PLOTS.items():
    (ax,) = figs[name].axes
    # Unlabelled lines (the 0 % guide) start with "_" in matplotlib.
    lines = {
      line.get_label(): line.get_xydata()
      for line in ax.get_lines()
      if not line.get_label().startswith("_")
    }
    assert list(lines) == list(want), name
    for strategy, points in want.items():
      np.testing.assert_allclose(
        lines[strategy], points, rtol=0, atol=1e-9, err_msg=f"{name} {strategy}"
      )


@pytest.mark.parametrize(
  "mutate,match",
  [
    (lambda r: r.pop("strategies"), "no field 'strategies'"),
    (lambda r: r["strategies"]["nobc"][1]["recall"].pop("50"), "Recall@50"),
    (lambda r: r["unintended"]["edge"].pop("core"), "no field 'core'"),
    (
      lambda r: r["unintended"]["edge"]["per_strategy"]["nobc"].pop("per_version"),
      "per_version",
    ),
  ],
)
def test_malformed_results_raise_input_error(mutate, match):
  results = copy.deepcopy(make_results())
  mutate(results)
  with pytest.raises(InputError, match=match):
    comparison_table(results)


def test_tables_read_back_from_their_json():
  results = make_results()
  table = comparison_table(results)
  data = json.loads(json.dumps(table.to_json()))
  assert ComparisonTable.from_json(data) == table
  assert read_table(data) == table
  over_seeds = seed_table.seed_table([table, table])
  data = json.loads(json.dumps(over_seeds.to_json()))
  assert read_table(data) == over_seeds
  # No paired differences without the paired reference (joint-linear-mloss).
  assert read_table(data).paired is None
  results["strategies"]["joint-linear-mloss"] = results["strategies"]["bc-aligner"]
  table = comparison_table(results)
  over_seeds = seed_table.seed_table([table, table])
  data = json.loads(json.dumps(over_seeds.to_json()))
  assert read_table(data) == over_seeds and read_table(data).paired is not None


@pytest.mark.parametrize(
  "damage,message",
  [
    (lambda d: d["rows"][0].pop("total"), "missing fields ['total']"),
    (lambda d: d["rows"][0].update(totl=1.0), "unknown fields ['totl']"),
    (lambda d: d.pop("tasks"), "missing fields ['tasks']"),
    (lambda d: d.update(rows=[3]), "table row must be a JSON object, got int"),
    (lambda d: d.update(rows={}), "rows must be a list, got dict"),
    (lambda d: d.pop("notes"), "missing fields ['notes']"),
  ],
)
def test_a_malformed_table_is_refused_with_what_is_wrong(damage, message):
  data = comparison_table(make_results()).to_json()
  damage(data)
  with pytest.raises(InputError, match=re.escape(message)):
    read_table(data)


@pytest.mark.parametrize(
  "damage,message",
  [
    (lambda d: d["rows"][0].pop("total"), "seed-table row: missing fields ['total']"),
    (lambda d: d.update(paired=3), "paired comparison must be a JSON object"),
    (lambda d: d["rows"].append([]), "seed-table row must be a JSON object"),
    (lambda d: d.pop("rows"), "missing fields ['rows']"),
  ],
)
def test_a_malformed_seed_table_is_refused_with_what_is_wrong(damage, message):
  table = comparison_table(make_results())
  data = seed_table.seed_table([table, table]).to_json()
  damage(data)
  with pytest.raises(InputError, match=re.escape(message)):
    read_table(data)
  with pytest.raises(InputError, match="a table must be a JSON object, got list"):
    read_table([data])
