"""benchmarks.align_peers: its summary, rule and table on made-up numbers; vectormigrate's worker on small pairs."""

import os
import subprocess

import numpy as np
import pytest

from bcjax import align
from bcjax.align import families
from bcjax.align.protocol import split_ids
from benchmarks import align_peers, align_peers_report, align_vectormigrate


def _seed(seed, ours, theirs, vm=None):
  vm_side = (
    {"vectormigrate": {"refused": "ValueError: widths (new 4 dims, old 2 dims)"}}
    if vm is None
    else {
      "vectormigrate": {
        "method": "affine+L2",
        "self_recall": vm,
        "neighbour_overlap": vm,
      },
      "vectormigrate_cosine_rule": {
        "method": "affine",
        "self_recall": vm,
        "neighbour_overlap": vm,
      },
    }
  )
  return {
    **vm_side,
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
  summary = align_peers_report.summarize(seeds)
  difference = summary["self_recall"]["difference"]
  assert difference["mean"] == pytest.approx(0.1 + 1 / 30)
  # Differences 0.1, 0.2, 0.1: sd 0.0577, t(0.975, 2) = 4.303.
  assert difference["high"] - difference["mean"] == pytest.approx(
    4.303 * 0.057735 / 3**0.5, rel=1e-3
  )
  assert summary["self_recall"]["difference_auto_rule"]["mean"] == pytest.approx(
    0.2 + 1 / 30
  )
  # Where vectormigrate refused the pair, it has no measures to summarise.
  assert "difference_vectormigrate" not in summary["self_recall"]
  same = [_seed(0, 0.8, 0.7, 0.75), _seed(1, 0.9, 0.7, 0.9), _seed(2, 0.7, 0.6, 0.6)]
  same_summary = align_peers_report.summarize(same)
  assert same_summary["self_recall"]["difference_vectormigrate"][
    "mean"
  ] == pytest.approx(0.05)
  assert same_summary["neighbour_overlap"]["difference_vectormigrate_cosine_rule"][
    "mean"
  ] == pytest.approx(0.05)
  results = {
    "seed_list": [0, 1, 2],
    "pairs": {
      "rotation": {"note": "3 rows", "seeds": seeds, "summary": summary},
      "square": {"note": "3 square rows", "seeds": same, "summary": same_summary},
    },
    "skipped": "a bcjax run's versions (no --run_workdir)",
    "notes": "## Findings\n\nmade up",
  }
  table = align_peers_report.to_markdown(results)
  assert "mean over 3 split seeds 0..2;" in table
  assert (
    "| rotation | self-retrieval@10 | 0.8000 | 0.6667 | +0.1333 [" in table
    and "| 0.5667 | +0.2333 [" in table
    and "+0.2333 [+0.0899, +0.3768] | refused | - |" in table
  )
  assert "| square | self-retrieval@10 | 0.8000 |" in table
  assert "| 0.7500 | +0.0500 [-0.0742, +0.1742] |" in table
  assert (
    "| rotation | 3 rows | orthogonal+L2 (2), orthogonal+centre+L2 (1) | "
    "procrustes (3) | linear (3) | refused: ValueError: widths (new 4 dims, "
    "old 2 dims) |"
  ) in table
  assert "| square | 3 square rows |" in table and "| affine+L2 (3) |" in table
  assert "Not run: a bcjax run's versions (no --run_workdir)" in table
  assert table.endswith("## Findings\n\nmade up\n")


def test_rebasis_rule_ties_within_its_tolerance_to_fewer_parameters():
  assert align_peers.rebasis_rule([0.90, 0.896, 0.80], [300, 200, 10]) == 1
  assert align_peers.rebasis_rule([0.90, 0.894, 0.80], [300, 200, 10]) == 0


# -- vectormigrate's worker, in the peers' venv ---------------------------------

PEERS_PYTHON = os.environ.get("BCJAX_PEERS_PYTHON", "/work/vpeers/bin/python")


def _has_vectormigrate(python: str) -> bool:
  if not os.path.exists(python):
    return False
  done = subprocess.run([python, "-c", "import vectormigrate"], capture_output=True)
  return done.returncode == 0


needs_vectormigrate = pytest.mark.skipif(
  not _has_vectormigrate(PEERS_PYTHON),
  reason=f"vectormigrate's Python ({PEERS_PYTHON}, or $BCJAX_PEERS_PYTHON) is absent "
  "or cannot import vectormigrate",
)


def _pair(d_new, d_old, n=240, seed=0):
  """Clustered old rows; new = old rotated (padded to d_new) plus a little noise."""
  rng = np.random.default_rng(seed)
  old = rng.normal(size=(12, d_old))[rng.integers(0, 12, n)] + rng.normal(
    size=(n, d_old)
  )
  q, _ = np.linalg.qr(rng.normal(size=(d_new, d_new)))
  wide = np.hstack([old, rng.normal(size=(n, d_new - d_old))])
  new = wide @ q + 0.05 * rng.normal(size=(n, d_new))
  return old.astype(np.float32), new.astype(np.float32)


def _brute_measures(old, test, bridged, k=10):
  """Self-retrieval@k and overlap@k of ``bridged`` test queries, by NumPy alone."""
  unit = old / np.linalg.norm(old, axis=1, keepdims=True)
  queries = bridged / np.linalg.norm(bridged, axis=1, keepdims=True)
  hits, overlaps = [], []
  for row, q in zip(test, queries, strict=True):
    found = np.argsort(-(unit @ q), kind="stable")[:k]
    own = unit @ unit[row]
    own[row] = -np.inf  # an old vector's neighbours leave itself out
    truth = np.argsort(-own, kind="stable")[:k]
    hits.append(row in found)
    overlaps.append(len(set(found) & set(truth)) / k)
  return {"self_recall": float(np.mean(hits)), "neighbour_overlap": np.mean(overlaps)}


@needs_vectormigrate
def test_vectormigrate_refuses_different_widths_with_its_own_message():
  old, new = _pair(d_new=12, d_old=8)
  train, test = split_ids(len(old), 0.2, 0)
  bridge = align.fit(
    old=old[train], new=new[train], seed=0, grid={"linear": (families.LinearHP(0.0),)}
  )
  out = align_vectormigrate.side(
    old, new, train, test, bridge.selection, 0, PEERS_PYTHON, None, 10
  )
  assert out["vectormigrate"]["refused"] == (
    "ValueError: source and target vectors must have the same shape "
    "(new 12 dims, old 8 dims)"
  )
  assert "vectormigrate_candidates" not in out and out["vectormigrate_failed"] == []
  assert out["vectormigrate_version"] == "1.0.1"


@needs_vectormigrate
def test_vectormigrate_on_a_small_same_width_pair():
  old, new = _pair(d_new=8, d_old=8)
  train, test = split_ids(len(old), 0.2, 1)
  bridge = align.fit(old=old[train], new=new[train], seed=1)
  out = align_vectormigrate.side(
    old,
    new,
    train,
    test,
    bridge.selection,
    1,
    PEERS_PYTHON,
    lambda bridged: _brute_measures(old, test, bridged),
    10,
  )
  candidates = out["vectormigrate_candidates"]
  # Seven adapters (ranks 2 and 4 below width 8), raw and L2-normalised.
  assert len(candidates) == 14 and "low_rank_affine_r2+L2" in candidates
  # The uncentred Procrustes refit on all train rows, by NumPy alone.
  u, _, vt = np.linalg.svd(
    new[train].astype(np.float64).T @ old[train].astype(np.float64)
  )
  expected = _brute_measures(old, test, new[test] @ (u @ vt))
  assert candidates["procrustes"]["self_recall"] == pytest.approx(
    expected["self_recall"]
  )
  assert candidates["procrustes"]["neighbour_overlap"] == pytest.approx(
    expected["neighbour_overlap"]
  )
  pick = out["vectormigrate"]
  assert pick["self_recall"] == candidates[pick["method"]]["self_recall"]
  assert pick["self_recall"] > 0.9  # the rotation is nearly exact
  cosine = max(candidates, key=lambda n: candidates[n]["validation_cosine"])
  assert out["vectormigrate_cosine_rule"]["method"] == cosine
