"""Means over embedding seeds with Student-t intervals, plain and paired.

A table cell over ``n`` seeds is reported as the mean of its per-seed values
and a two-sided Student-t interval with ``n - 1`` degrees of freedom. Paired
comparisons (strategy A against B) take the interval of the per-seed
differences, which removes what the seeds share (the same M_0, the same
data) from the noise. One seed gives the mean alone, no interval.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class Interval:
  """A mean and its confidence interval (``low``/``high`` None for one value).

  Attributes:
    mean: the mean of the values.
    low: lower end of the interval.
    high: upper end.
    n: number of values.
    level: confidence level, e.g. 0.95.
  """

  mean: float
  low: float | None
  high: float | None
  n: int
  level: float

  @property
  def half_width(self) -> float | None:
    return None if self.low is None else (self.high - self.low) / 2

  def excludes_zero(self) -> bool:
    """Whether the interval lies wholly on one side of 0 (a resolved sign)."""
    return self.low is not None and (self.low > 0 or self.high < 0)

  def format(self, digits: int = 2) -> str:
    """``"-3.10 ± 0.84"``, or the mean alone for one value."""
    if self.half_width is None:
      return f"{self.mean:.{digits}f}"
    return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def t_cdf(t: float, df: int) -> float:
  """Student-t distribution function, through the regularised incomplete beta."""
  tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
  return 1 - tail if t >= 0 else tail


def _betainc(a: float, b: float, x: float) -> float:
  """Regularised incomplete beta ``I_x(a, b)`` in float64.

  Lentz's continued fraction (converging for ``x < (a + 1) / (a + b + 2)``,
  and through the symmetry ``I_x(a, b) = 1 - I_{1-x}(b, a)`` elsewhere).
  JAX's betainc works in float32 unless x64 is on: 1e-5 off at 200 degrees
  of freedom.
  """
  if x <= 0 or x >= 1:
    return 0.0 if x <= 0 else 1.0
  if x > (a + 1) / (a + b + 2):
    return 1 - _betainc(b, a, 1 - x)
  log_front = (
    math.lgamma(a + b)
    - math.lgamma(a)
    - math.lgamma(b)
    + a * math.log(x)
    + b * math.log1p(-x)
  )
  tiny = 1e-300
  c, d = 1.0, 1 - (a + b) * x / (a + 1)
  d = 1 / (d if abs(d) > tiny else tiny)
  fraction = d
  for m in range(1, 500):
    for numerator in (
      m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
      -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
    ):
      d = 1 + numerator * d
      d = 1 / (d if abs(d) > tiny else tiny)
      c = 1 + numerator / c
      c = c if abs(c) > tiny else tiny
      fraction *= c * d
    if abs(c * d - 1) < 1e-15:
      break
  return math.exp(log_front) * fraction / a


def t_quantile(p: float, df: int) -> float:
  """The ``p`` quantile of Student's t with ``df`` degrees of freedom.

  Bisection on :func:`t_cdf` to 1e-10: a few dozen evaluations, once per
  table.
  """
  if not 0 < p < 1 or df < 1:
    raise ValueError(f"need 0 < p < 1 and df >= 1, got p={p}, df={df}")
  if p < 0.5:
    return -t_quantile(1 - p, df)
  low, high = 0.0, 1.0
  while t_cdf(high, df) < p:
    high *= 2
  while high - low > 1e-10 * max(1.0, high):
    mid = (low + high) / 2
    low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
  return (low + high) / 2


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
  """The mean of ``values`` and its two-sided Student-t interval.

  Args:
    values: one number per seed; at least one.
    level: confidence level.

  Raises:
    ValueError: for no values or a non-finite one.
  """
  values = [float(v) for v in values]
  if not values:
    raise ValueError("no values to average")
  if not all(math.isfinite(v) for v in values):
    raise ValueError(f"values must be finite, got {values}")
  n = len(values)
  mean = sum(values) / n
  if n == 1:
    return Interval(mean, None, None, 1, level)
  sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
  half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
  return Interval(mean, mean - half, mean + half, n, level)


def paired_difference(
  a: Sequence[float], b: Sequence[float], level: float = 0.95
) -> Interval:
  """The interval of ``a[s] - b[s]`` over seeds ``s`` (paired by seed)."""
  if len(a) != len(b):
    raise ValueError(f"paired values need one per seed each, got {len(a)} and {len(b)}")
  return mean_interval([x - y for x, y in zip(a, b)], level)


def paired_t_test(differences: Sequence[float]) -> float | None:
  """The two-sided p-value of the paired t-test that the mean difference is 0.

  Args:
    differences: one ``a[s] - b[s]`` per seed.

  Returns:
    The p-value; None for fewer than two differences. Differences with no
    spread give 1.0 when they are all 0 and 0.0 otherwise.
  """
  values = [float(v) for v in differences]
  n = len(values)
  if n < 2:
    return None
  mean = sum(values) / n
  sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
  if sd == 0:
    return 1.0 if mean == 0 else 0.0
  t = mean / (sd / math.sqrt(n))
  return 2 * (1 - t_cdf(abs(t), n - 1))


def holm(p_values: Sequence[float]) -> list[float]:
  """Holm's step-down adjustment of ``m`` p-values (family-wise error).

  The i-th smallest p is multiplied by ``m - i`` (i from 0), made
  non-decreasing in that order and capped at 1; a test is rejected at level
  ``alpha`` when its adjusted p is at most ``alpha``.

  Returns:
    The adjusted p-values, in the order given.
  """
  m = len(p_values)
  order = sorted(range(m), key=lambda i: p_values[i])
  adjusted = [0.0] * m
  running = 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (m - rank) * p_values[i]))
    adjusted[i] = running
  return adjusted
