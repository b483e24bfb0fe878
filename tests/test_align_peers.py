"""benchmarks.align_peers: its summary and table, on made-up numbers (no peers run)."""

import pytest

from benchmarks import align_peers


def _seed(seed, ours, theirs):
  return {
    "seed": seed,
    "bcjax": {"family": "orthogonal", "self_recall": ours, "neighbour_overlap": ours},
    "rebasis": {
      "method": "procrustes",
      "self_recall": theirs,
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
  results = {
    "pairs": {"rotation": {"note": "3 rows", "seeds": seeds, "summary": summary}},
    "skipped": "bcjax-v0-v4 (no --run_workdir)",
  }
  table = align_peers.to_markdown(results)
  assert "| rotation | self-retrieval@10 | 0.8000 | - | 0.6667 | +0.1333 [" in table
  assert "| rotation | 3 rows | orthogonal | - | procrustes |" in table
  assert "Not run: bcjax-v0-v4 (no --run_workdir)" in table
