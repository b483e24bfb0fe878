"""bcjax.align.backfill: the forward map, backfilling orders, curves and areas."""

import numpy as np
import pytest

from bcjax import align
from bcjax.align import backfill
from bcjax.errors import InputError


def test_residuals_and_their_order_against_brute_force():
  rng = np.random.default_rng(0)
  predicted, actual = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
  actual[[3, 9]] = predicted[[3, 9]] + [1.0, 0, 0, 0]  # a tie of residual 1
  r = backfill.residuals(predicted, actual)
  want = [np.sqrt(sum((p - a) ** 2)) for p, a in zip(predicted, actual)]
  np.testing.assert_allclose(r, want, rtol=1e-6)
  r = np.round(r, 5)
  order = backfill.residual_order(r)
  np.testing.assert_array_equal(order, sorted(range(50), key=lambda i: (-r[i], i)))
  assert list(order).index(3) + 1 == list(order).index(9)
  random = backfill.random_order(50, seed=2)
  np.testing.assert_array_equal(np.sort(random), np.arange(50))
  np.testing.assert_array_equal(random, backfill.random_order(50, seed=2))
  assert not np.array_equal(random, backfill.random_order(50, seed=3))


def test_the_gallery_holds_new_vectors_at_the_first_rows_of_the_order():
  rng = np.random.default_rng(1)
  new, forwarded = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
  order = rng.permutation(10)
  for fraction, count in [(0.0, 0), (0.25, 2), (0.35, 4), (0.5, 5), (1.0, 10)]:
    got = backfill.gallery_at(new, forwarded, order, fraction)
    for row in range(10):
      want = new[row] if row in order[:count] else forwarded[row]
      np.testing.assert_array_equal(got[row], want)
  with pytest.raises(InputError, match="order must be a permutation of the 10 rows"):
    backfill.gallery_at(new, forwarded, np.zeros(10, int), 0.5)


def test_area_of_known_curves():
  f = np.linspace(0, 1, 11)
  assert backfill.area(f, 0.2 + 0.6 * f) == pytest.approx(0.5)  # exact for lines
  # Trapezoids over-estimate f^2 by h^2 / 6: 1/3 + 0.01 / 6.
  assert backfill.area(f, f**2) == pytest.approx(1 / 3 + 0.01 / 6)
  assert backfill.area([0, 0.5, 1], [1, 0, 1]) == pytest.approx(0.5)
  for x, y, message in [
    ([0, 0.5], [1, 1], "rise strictly from 0 to 1"),
    ([0, 0.6, 0.5, 1], [1, 1, 1, 1], "rise strictly from 0 to 1"),
    ([0, 1], [1, 1, 1], "one length >= 2"),
  ]:
    with pytest.raises(InputError, match=message):
      backfill.area(x, y)


def _versions(seed=0, n=240):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 4, size=n)
  new = (rng.normal(size=(4, 6)) * 2)[labels] + rng.normal(size=(n, 6))
  old = new @ rng.normal(size=(6, 5)) + 0.3 * rng.normal(size=(n, 5))
  # A fifth of the rows: the old model embedded them badly.
  bad = rng.permutation(n)[: n // 5]
  old[bad] = 4 * rng.normal(size=(len(bad), 5))
  return old.astype(np.float32), new.astype(np.float32), labels.astype(str), bad


@pytest.mark.parametrize("with_labels", [True, False])
def test_curve_endpoints_are_no_backfill_and_full_reindex(with_labels):
  old, new, labels, _ = _versions()
  labels = labels if with_labels else None
  train, test = np.arange(40, 240), np.arange(40)
  forward = backfill.fit_forward(old[train], new[train], family="linear")
  assert (forward.d_new, forward.d_old) == (5, 6)
  forwarded = forward.apply(old)
  order = backfill.random_order(240, 0)
  values = backfill.curve(
    new, forwarded, test, order, labels=labels, fractions=(0, 0.5, 1), k=5
  )
  if with_labels:
    none = align.measures.class_retrieval(
      forwarded, new[test], labels, labels[test], 5, rows=test
    )
    # evaluate's class_retrieval_reindexed: new queries, new index.
    full = align.measures.class_retrieval(
      new, new[test], labels, labels[test], 5, rows=test
    )
  else:
    none = align.measures.self_recall(forwarded, new[test], test, 5)
    full = 1.0  # every query finds its own, identical, new vector
  assert values[0] == pytest.approx(none) and values[-1] == pytest.approx(full)
  halfway = backfill.gallery_at(new, forwarded, order, 0.5)
  if not with_labels:
    assert values[1] == pytest.approx(
      align.measures.self_recall(halfway, new[test], test, 5)
    )


@pytest.mark.parametrize("with_labels", [True, False])
def test_backfill_results_curves_follow_the_brute_force_orders(with_labels):
  old, new, labels, bad = _versions(1)
  labels = labels if with_labels else None
  train, test = np.arange(40, 240), np.arange(40)
  bridge = align.fit(old=old[train], new=new[train], family="linear")
  out = backfill.backfill_results(
    old, new, train, test, labels, bridge, k=5, seed=3, family="linear"
  )
  b = out["backfill"]
  assert b["measure"] == ("class_retrieval" if with_labels else "self_recall")
  assert b["fractions"] == list(backfill.FRACTIONS)
  forward = backfill.fit_forward(old[train], new[train], family="linear")
  forwarded = forward.apply(old)

  def largest_first(predicted, actual):
    r = [float(np.linalg.norm(p - a)) for p, a in zip(predicted, actual)]
    return sorted(range(len(r)), key=lambda i: (-r[i], i))

  orders = {
    "bridge residual": largest_first(bridge.apply(new), old),
    "forward residual": largest_first(forwarded, new),
    "random": backfill.random_order(240, 3),
  }
  # The badly embedded rows are the ones the forward map serves worst.
  assert len(set(orders["forward residual"][: len(bad)]) & set(bad)) > 0.8 * len(bad)
  for name, order in orders.items():
    want = backfill.curve(new, forwarded, test, np.asarray(order), labels=labels, k=5)
    np.testing.assert_allclose(b["curves"][name], want, atol=1e-6)
    assert b["area"][name] == pytest.approx(backfill.area(backfill.FRACTIONS, want))
  f = out["forward"]
  assert f["family"] == "linear"
  assert ("class_retrieval" in f["measures"]) == with_labels
  assert f["measures"]["self_recall"] == pytest.approx(
    align.measures.self_recall(new, forward.apply(old[test]), test, 5)
  )
