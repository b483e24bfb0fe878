"""benchmarks.align_peers: its summary, rule and table, on made-up numbers (no peers run)."""

import pytest

from benchmarks import align_peers


def _seed(seed, ours, theirs):
  return {
    "seed": seed,
    "bcjax": {
      "family": "orthogonal",
      "center": seed == 0,
      "normalize": True,
      "self_recall": ours,
      "neighbour_overlap": ours,
    },
    "rebasis": {
      "method": "procrustes",
      "self_recall": theirs,
      "neighbour_overlap": 0.5,
    },
    "rebasis_auto_rule": {
      "method": "linear",
      "self_recall": theirs - 0.1,
      "neighbour_overlap": 0.5,
    },
  }


def test_paired_intervals_and_table():
  seeds = [_seed(0, 0.8, 0.7), _seed(1, 0.9, 0.7), _seed(2, 0.7, 0.6)]
  summary = align_peers.summarize(seeds)
  difference = summary["self_recall"]["difference"]
  assert difference["mean"] == pytest.approx(0.1 + 1 / 30)
  # Differences 0.1, 0.2, 0.1: sd 0.0577, t(0.975, 2) = 4.303.
  assert difference["high"] - difference["mean"] == pytest.approx(
    4.303 * 0.057735 / 3**0.5, rel=1e-3
  )
  assert summary["self_recall"]["difference_auto_rule"]["mean"] == pytest.approx(
    0.2 + 1 / 30
  )
  results = {
    "seed_list": [0, 1, 2],
    "pairs": {"rotation": {"note": "3 rows", "seeds": seeds, "summary": summary}},
    "skipped": "a bcjax run's versions (no --run_workdir)",
    "notes": "## Findings\n\nmade up",
  }
  table = align_peers.to_markdown(results)
  assert "mean over 3 split seeds 0..2;" in table
  assert (
    "| rotation | self-retrieval@10 | 0.8000 | 0.6667 | +0.1333 [" in table
    and "| 0.5667 | +0.2333 [" in table
  )
  assert (
    "| rotation | 3 rows | orthogonal+L2 (2), orthogonal+centre+L2 (1) | "
    "procrustes (3) | linear (3) |"
  ) in table
  assert "Not run: a bcjax run's versions (no --run_workdir)" in table
  assert table.endswith("## Findings\n\nmade up\n")


def test_rebasis_rule_ties_within_its_tolerance_to_fewer_parameters():
  assert align_peers.rebasis_rule([0.90, 0.896, 0.80], [300, 200, 10]) == 1
  assert align_peers.rebasis_rule([0.90, 0.894, 0.80], [300, 200, 10]) == 0
