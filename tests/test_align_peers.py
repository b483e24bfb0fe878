"""benchmarks.align_peers: its summary, rule and table on made-up numbers; vectormigrate's worker on small pairs."""

import os
import subprocess

import numpy as np
import pytest

from bcjax import align
from bcjax.align import families
from bcjax.align.protocol import split_ids
from benchmarks import (
  align_pairs,
  align_peers,
  align_peers_report,
  align_vectormigrate,
)


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
    "| rotation | 3 rows | - | orthogonal+L2 (2), orthogonal+centre+L2 (1) | "
    "procrustes (3) | linear (3) | refused: ValueError: widths (new 4 dims, "
    "old 2 dims) |"
  ) in table
  assert "| square | 3 square rows |" in table and "| affine+L2 (3) |" in table
  assert "Not run: a bcjax run's versions (no --run_workdir)" in table
  assert table.endswith("## Findings\n\nmade up\n")


def _scored(seed, ours, one_split, pick, candidates):
  """A seed with every side: auto, its one split, rebasis's pick and candidates."""
  both = lambda v: {"self_recall": v, "neighbour_overlap": v / 2}  # noqa: E731
  return {
    "seed": seed,
    "bcjax": {"family": "linear", "hparams": "h", "folds": 5, **both(ours)},
    "bcjax_one_split": {
      "family": "orthogonal" if seed % 2 else "linear",
      "hparams": "h",
      **both(one_split),
    },
    "bcjax_folds": {"chosen": ["a"] * 5, "agreement": 0.6 + 0.2 * (seed % 2)},
    "rebasis": {"method": "linear", **both(pick)},
    "rebasis_candidates": {n: both(v) for n, v in candidates.items()},
  }


def test_holm_verdicts_hindsight_gap_and_stability():
  rng = np.random.default_rng(3)
  pairs, diffs = {}, {}
  # Three pairs: auto clearly ahead, a tie, and behind by a little.
  for name, shift in [("ahead", 0.05), ("tie", 0.0), ("behind", -0.006)]:
    seeds = []
    for i in range(8):
      pick = 0.6 + 0.01 * i
      ours = pick + shift + rng.normal(0, 0.002)
      best = pick + 0.003  # the best candidate, on every seed
      seeds.append(_scored(i, ours, ours - 0.01, pick, {"linear": pick, "mlp": best}))
    pairs[name] = {"note": name, "seeds": seeds}
    diffs[name] = [
      s["bcjax"]["self_recall"] - s["rebasis"]["self_recall"] for s in seeds
    ]
  summaries = {n: align_peers_report.summarize(p["seeds"]) for n, p in pairs.items()}
  got = align_peers_report.verdicts(summaries)
  # Brute force: scipy's paired t-test, Holm by its definition over 6 tests.
  from scipy import stats

  cells = [(n, m) for n in pairs for m in align_peers_report.MEASURES]
  p = []
  for n, m in cells:
    scale = 1.0 if m == "self_recall" else 0.5
    p.append(stats.ttest_1samp(np.array(diffs[n]) * scale, 0.0).pvalue)
  for i, cell in enumerate(cells):
    bigger = sorted(range(6), key=lambda j: p[j])
    rank = bigger.index(i)
    holm = max(min(1.0, (6 - r) * p[bigger[r]]) for r in range(rank + 1))
    assert got[cell]["p"] == pytest.approx(p[i], rel=1e-6)
    assert got[cell]["p_holm"] == pytest.approx(holm, rel=1e-6)
  assert got["ahead", "self_recall"]["verdict"] == "ahead"
  assert got["tie", "neighbour_overlap"]["verdict"] == "tie"
  assert got["behind", "self_recall"]["verdict"] == "behind"
  # The best candidate in hindsight is mlp on every pair; auto - it, paired.
  h = summaries["tie"]["combined"]["hindsight"]
  want = [
    0.75 * (s["bcjax"]["self_recall"] - s["rebasis_candidates"]["mlp"]["self_recall"])
    for s in pairs["tie"]["seeds"]
  ]
  assert h["method"] == "mlp"
  assert h["difference"]["mean"] == pytest.approx(np.mean(want))
  one = summaries["tie"]["self_recall"]["difference_one_split"]
  assert one["mean"] == pytest.approx(0.01)
  assert summaries["tie"]["combined"]["spread"]["rebasis"] == pytest.approx(
    0.75 * np.std([0.6 + 0.01 * i for i in range(8)], ddof=1)
  )
  table = align_peers_report.to_markdown({"seed_list": list(range(8)), "pairs": pairs})
  assert "Resolved behind rebasis's pick after Holm: behind self-retrieval@10" in table
  assert "| ahead | mean of both | " in table and "| mlp | " in table
  # Fold agreement 0.6 and 0.8 alternate: 0.70; one split chose 2 kinds.
  # Per seed, auto's cost against mlp is its noise - 0.003 (x 0.75).
  cost = [
    0.75 * (s["bcjax"]["self_recall"] - s["rebasis_candidates"]["mlp"]["self_recall"])
    for s in pairs["tie"]["seeds"]
  ]
  theirs = min(
    0.75 * (s["rebasis"]["self_recall"] - s["rebasis_candidates"]["mlp"]["self_recall"])
    for s in pairs["tie"]["seeds"]
  )
  assert (
    f"| tie | 5 | 0.70 | 1 | 2 | {np.std(cost, ddof=1):.4f} | "
    f"{np.std(cost, ddof=1):.4f} | 0.0000 | {min(cost):+.4f} | "
    f"{min(cost) - 0.0075:+.4f} | {theirs:+.4f} | +0.0075 [" in table
  )
  assert "Pairs whose mean gap is below -0.005: behind." in table


def test_r_squared_is_the_closed_form_affine_fit():
  from sklearn.linear_model import LinearRegression
  from sklearn.metrics import r2_score

  rng = np.random.default_rng(0)
  new = rng.normal(size=(300, 5))
  old = np.tanh(new @ rng.normal(size=(5, 3))) + 0.1 * rng.normal(size=(300, 3))
  fitted = LinearRegression().fit(new, old).predict(new)
  assert align_pairs.r_squared(new, old) == pytest.approx(
    r2_score(old, fitted, multioutput="variance_weighted")
  )
  assert align_pairs.r_squared(new, new @ rng.normal(size=(5, 3)) + 2.0) == (
    pytest.approx(1.0)
  )
  assert align_pairs.r_squared(new, old) < 0.95


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
