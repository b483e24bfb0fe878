"""The per-version Recall@50 table of table.md."""

from bcjax.evaluation import recall_table

RESULTS = {
  "baselines": {
    "most-popular": [
      {"version": 0, "recall": {"50": 0.1}},
      {"version": 1, "recall": {"50": 0.2}},
    ]
  },
  "strategies": {
    "nobc": [
      {"version": 0, "recall": {"50": 0.25, "10": 0.1}},
      {"version": 1, "recall": {"50": 0.5}},
    ],
    "fix-m0": [{"version": 0, "recall": {"50": 0.25}}],
  },
}


def test_rows_put_the_baseline_first_and_leave_missing_versions_empty():
  assert recall_table.recall_rows(RESULTS) == [
    ["most popular", 0.1, 0.2],
    ["nobc", 0.25, 0.5],
    ["fix-m0", 0.25, None],
  ]
  assert recall_table.recall_rows(RESULTS, k=10)[1] == ["nobc", 0.1, None]


def test_markdown_table():
  assert recall_table.to_markdown(RESULTS) == (
    "## Recall@50 per version (validation window of each version)\n\n"
    "| strategy | v0 | v1 |\n"
    "|---|---|---|\n"
    "| most popular | 0.1000 | 0.2000 |\n"
    "| nobc | 0.2500 | 0.5000 |\n"
    "| fix-m0 | 0.2500 | n/a |\n"
  )
