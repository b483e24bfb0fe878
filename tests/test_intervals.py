"""Seed intervals against SciPy's Student-t and a hand computation."""

import math

import numpy as np
import pytest
from scipy import stats

from bcjax.evaluation.intervals import (
  mean_interval,
  paired_difference,
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
