"""Seed intervals against SciPy's Student-t and a hand computation."""

import math

import numpy as np
import pytest
from scipy import stats

from bcjax.evaluation.intervals import (
  holm,
  mean_interval,
  paired_difference,
  paired_t_test,
  t_quantile,
)


@pytest.mark.parametrize("df", [1, 2, 4, 9, 29, 200])
@pytest.mark.parametrize("p", [0.6, 0.975, 0.995, 0.025])
def test_t_quantile_matches_scipy(p, df):
  assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-6, abs=1e-6)


def test_mean_interval_by_hand():
  values = [1.0, 2.0, 6.0]
  got = mean_interval(values)
  sd = math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2)
  half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2)
  assert got.mean == pytest.approx(3.0)
  assert (got.low, got.high) == pytest.approx((3.0 - half, 3.0 + half), rel=1e-6)
  assert got.format() == f"3.00 ± {half:.2f}"
  assert not got.excludes_zero()


def test_one_seed_has_no_interval_and_bad_input_is_refused():
  got = mean_interval([0.25])
  assert (got.mean, got.low, got.high, got.n) == (0.25, None, None, 1)
  assert got.format() == "0.25"
  with pytest.raises(ValueError, match="no values"):
    mean_interval([])
  with pytest.raises(ValueError, match="finite"):
    mean_interval([1.0, float("nan")])
  with pytest.raises(ValueError, match="one per seed"):
    paired_difference([1.0], [1.0, 2.0])


def test_pairing_removes_what_the_seeds_share():
  rng = np.random.default_rng(0)
  shared = rng.normal(scale=5.0, size=6)  # e.g. each seed's M_0
  a = shared + 1.0 + rng.normal(scale=0.1, size=6)
  b = shared + rng.normal(scale=0.1, size=6)
  paired = paired_difference(a, b)
  assert paired.excludes_zero() and paired.low > 0
  unpaired_a, unpaired_b = mean_interval(a), mean_interval(b)
  assert unpaired_a.low < unpaired_b.high  # unpaired, the intervals overlap
  assert paired.mean == pytest.approx(np.mean(a - b))


def test_paired_t_test_matches_scipy():
  rng = np.random.default_rng(5)
  for n in (2, 3, 5, 10):
    d = rng.normal(0.4, 1.0, size=n)
    expected = stats.ttest_1samp(d, 0.0).pvalue
    assert paired_t_test(d) == pytest.approx(expected, rel=1e-6)
  assert paired_t_test([1.0]) is None
  assert paired_t_test([0.0, 0.0, 0.0]) == 1.0
  assert paired_t_test([2.0, 2.0]) == 0.0


def test_holm_matches_its_definition_by_brute_force():
  rng = np.random.default_rng(6)
  for m in (1, 2, 5, 12):
    p = rng.uniform(0, 0.2, size=m).tolist()
    got = holm(p)
    order = np.argsort(p)
    # Adjusted p of the i-th smallest: max over j <= i of (m - j) p_(j), capped.
    for rank, i in enumerate(order):
      expected = min(1.0, max((m - j) * p[order[j]] for j in range(rank + 1)))
      assert got[i] == pytest.approx(expected)
  # Rejections at 0.05 are a step-down: stop at the first that fails.
  assert [q <= 0.05 for q in holm([0.01, 0.04, 0.03, 0.005])] == [
    True,
    False,
    False,
    True,
  ]
