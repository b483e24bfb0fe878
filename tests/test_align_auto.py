"""bcjax.align's auto: the paired tie rule and its choice of preprocessing.

The rule is checked against a NumPy restatement on made-up per-query
scores; the preprocessing choices on rows built so that the answer is
known (and checked on held-out rows of the same generator).
"""

import math

import numpy as np
import pytest

from bcjax import align
from bcjax.align import measures


def _brute_choose(per_query, params):
  n = len(per_query[0])
  means = [sum(q) / n for q in per_query]
  best = means.index(max(means))
  tied = []
  for i, q in enumerate(per_query):
    d = [b - c for b, c in zip(per_query[best], q, strict=True)]
    mean = sum(d) / n
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n)
    if mean <= se:
      tied.append(i)
  return min(tied, key=lambda i: (params[i], -means[i], i))


def test_choose_is_the_paired_one_standard_error_rule():
  rng = np.random.default_rng(0)
  best = rng.uniform(size=400)
  noisy = best + rng.normal(0, 0.2, size=400)  # mean gap ~0, se ~0.01
  lower = best - 0.02  # a gap of 0.02 on every query: se 0
  for params, want in [
    ([100, 50, 10], 1),  # noisy ties with the best and has fewer parameters
    ([100, 200, 10], 0),  # ... but not fewer than the best: the best
    ([100, 100, 100], None),  # equal parameters: the higher mean
  ]:
    per_query = [best, noisy, lower]
    chosen, se = align.choose(per_query, params)
    assert chosen == _brute_choose([list(q) for q in per_query], params)
    if want is not None:
      assert chosen == want
    # A gap of 0.02 on every query is beyond the noise, however small:
    # the paired rule does not tie it, where a binomial se of 0.02 would.
    assert chosen != 2
    np.testing.assert_allclose(
      se, [0.0, np.std(best - noisy, ddof=1) / 20, 0.0], atol=1e-12
    )
  # Exactly equal scores and parameters: the earliest.
  assert align.choose([best, best.copy()], [5, 5])[0] == 0
  # Many random cases against the restatement.
  for seed in range(20):
    r = np.random.default_rng(seed)
    per_query = [r.integers(0, 3, size=30) / 2 for _ in range(5)]
    params = list(r.integers(1, 4, size=5))
    assert align.choose(per_query, params)[0] == _brute_choose(
      [list(q) for q in per_query], params
    )


def _heavy_tailed(seed, n, d=8):
  """Rows whose norms span orders of magnitude, with noise in proportion.

  ``old = s u``, ``new = s (u M + 0.3 e)`` with ``log s ~ N(0, 3^2)``: an
  unweighted least-squares fit is decided by the few largest rows; after
  L2 normalisation every row counts alike, so only normalised fits do well.
  """
  rng = np.random.default_rng(seed)
  mixing = np.random.default_rng(99).normal(size=(d, d))
  u = rng.normal(size=(n, d))
  scale = np.exp(3.0 * rng.normal(size=(n, 1)))
  old = scale * u
  new = scale * (u @ mixing + 0.3 * rng.normal(size=(n, d)))
  return old.astype(np.float32), new.astype(np.float32)


def _held_out_recall(bridge, seed):
  old, new = _heavy_tailed(seed, 400)
  return measures.self_recall(old, bridge.apply(new), np.arange(400), 10)


def test_auto_normalises_where_only_normalised_fits_do_well():
  old, new = _heavy_tailed(1, 600)
  grid = {"linear": [{}], "orthogonal": [{}]}
  bridge = align.fit(old=old, new=new, grid=grid, center=False)
  sel = bridge.selection
  assert [(c.family, c.normalize) for c in sel.candidates] == [
    ("linear", False),
    ("orthogonal", False),
    ("linear", True),
    ("orthogonal", True),
  ]
  assert bridge.normalize and bridge.family == "linear"
  assert sel.choice.normalize and sel.summary()["normalize"]
  raw = sel.candidates[0]
  assert sel.choice.score - raw.score > 3 * raw.standard_error
  # The known answer, on fresh rows of the same generator.
  plain = align.fit(old=old, new=new, family="linear")
  assert _held_out_recall(bridge, 2) > _held_out_recall(plain, 2) + 0.1


def test_auto_centres_where_only_centred_fits_do_well():
  # A rotation between spaces with different offsets: a map through the
  # origin cannot move one offset onto the other.
  rng = np.random.default_rng(3)
  q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
  u = rng.normal(size=(500, 8))
  new = (u + 4.0 * rng.normal(size=8)).astype(np.float32)
  old = (u @ q + 4.0 * rng.normal(size=8) + 0.1 * rng.normal(size=(500, 8))).astype(
    np.float32
  )
  bridge = align.fit(old=old, new=new, grid={"orthogonal": [{}]}, normalize=False)
  sel = bridge.selection
  assert [c.center for c in sel.candidates] == [False, True]
  assert bridge.center and sel.choice.center and sel.chosen == 1
  # The bias is counted: the centred bridge has d_old more parameters.
  assert sel.candidates[1].num_params == sel.candidates[0].num_params + 8
  assert (
    bridge.num_params == align.fit(old=old, new=new, family="orthogonal").num_params + 8
  )
  assert measures.self_recall(old, bridge.apply(new), np.arange(500), 1) > 0.99


def test_auto_ties_go_to_the_bridge_without_a_bias():
  # A zero-mean rotation: centring buys nothing, so the tie goes to the
  # uncentred bridge (fewer parameters); asked to centre, auto centres.
  rng = np.random.default_rng(4)
  q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
  new = rng.normal(size=(500, 8)).astype(np.float32)
  old = (new @ q + 0.01 * rng.normal(size=(500, 8))).astype(np.float32)
  grid = {"orthogonal": [{}]}
  bridge = align.fit(old=old, new=new, grid=grid, normalize=False)
  first, centred = bridge.selection.candidates
  assert first.score - centred.score <= centred.standard_error
  assert not bridge.center and bridge.selection.chosen == 0
  fixed = align.fit(old=old, new=new, grid=grid, center=True, normalize=False)
  assert [(c.center, c.normalize) for c in fixed.selection.candidates] == [
    (True, False)
  ]
  assert fixed.center


@pytest.mark.parametrize("center, normalize", [(None, None), (False, True)])
def test_the_default_tries_every_preprocessing_a_fixed_one_only_itself(
  center, normalize
):
  old, new = _heavy_tailed(5, 200)
  grid = {"linear": [{}]}
  sel = align.fit(
    old=old, new=new, grid=grid, center=center, normalize=normalize
  ).selection
  want = (
    [(False, False), (False, True), (True, False), (True, True)]
    if center is None
    else [(False, True)]
  )
  assert [(c.center, c.normalize) for c in sel.candidates] == want
