"""bcjax.align.blend: SLERP of stored and bridged rows, alpha by class retrieval."""

import numpy as np
import pytest

from bcjax import align
from bcjax.align import blend
from bcjax.errors import InputError


def _brute_slerp(a, b, alpha):
  """Row by row: rotate ``u`` toward ``v`` in their plane by ``alpha`` of the angle."""
  out = np.zeros(a.shape)
  for i, (x, y) in enumerate(zip(a.astype(np.float64), b.astype(np.float64))):
    u, v = x / np.linalg.norm(x), y / np.linalg.norm(y)
    theta = np.arccos(np.clip(u @ v, -1, 1))
    w = v - (u @ v) * u  # v's part perpendicular to u
    w /= np.linalg.norm(w)
    out[i] = np.cos(alpha * theta) * u + np.sin(alpha * theta) * w
  return out


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.37, 0.5, 0.9, 1.0])
def test_slerp_matches_a_rotation_in_the_plane_of_each_pair(alpha):
  rng = np.random.default_rng(0)
  a = rng.normal(size=(40, 6)) * rng.uniform(0.1, 5, size=(40, 1))
  b = rng.normal(size=(40, 6)) * rng.uniform(0.1, 5, size=(40, 1))
  got = blend.slerp(a, b, alpha)
  np.testing.assert_allclose(got, _brute_slerp(a, b, alpha), atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
  # The angle splits alpha : 1 - alpha along the arc.
  u = a / np.linalg.norm(a, axis=1, keepdims=True)
  v = b / np.linalg.norm(b, axis=1, keepdims=True)
  theta = np.arccos(np.sum(u * v, axis=1))
  to_u = np.arccos(np.clip(np.sum(got * u, axis=1), -1, 1))
  np.testing.assert_allclose(to_u, alpha * theta, atol=1e-3)


def test_endpoints_are_the_directions_and_lengths_do_not_matter():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
  unit = lambda z: z / np.linalg.norm(z, axis=1, keepdims=True)  # noqa: E731
  np.testing.assert_allclose(blend.slerp(a, b, 0), unit(a), atol=1e-6)
  np.testing.assert_allclose(blend.slerp(a, b, 1), unit(b), atol=1e-6)
  scales = rng.uniform(0.01, 100, size=(10, 1))
  np.testing.assert_allclose(
    blend.slerp(a * scales, b / scales, 0.3), blend.slerp(a, b, 0.3), atol=1e-6
  )


def test_parallel_opposite_and_zero_rows():
  u = np.asarray([[3.0, 4.0, 0.0]])
  # Parallel: every alpha is the one direction.
  for alpha in (0.0, 0.5, 1.0):
    np.testing.assert_allclose(blend.slerp(u, 2 * u, alpha), u / 5, atol=1e-7)
  # Opposite: a half turn through a perpendicular (the axis least like u, z).
  np.testing.assert_allclose(blend.slerp(u, -u, 0.5), [[0, 0, 1]], atol=1e-7)
  np.testing.assert_allclose(blend.slerp(u, -u, 1.0), -u / 5, atol=1e-7)
  quarter = blend.slerp(u, -u, 0.25)
  assert np.arccos(quarter @ (u[0] / 5)) == pytest.approx(np.pi / 4)
  # A zero row has no direction: the other side's is served.
  zero = np.zeros((1, 3))
  np.testing.assert_allclose(blend.slerp(zero, u, 0.2), u / 5, atol=1e-7)
  np.testing.assert_allclose(blend.slerp(u, zero, 0.8), u / 5, atol=1e-7)
  np.testing.assert_array_equal(blend.slerp(zero, zero, 0.5), zero)
  # One dimension: the nearer endpoint.
  np.testing.assert_array_equal(blend.slerp([[2.0]], [[-1.0]], 0.7), [[-1.0]])


@pytest.mark.parametrize(
  "call, message",
  [
    (lambda: blend.slerp(np.ones((2, 3)), np.ones((2, 3)), 1.5), "alpha must be"),
    (lambda: blend.slerp(np.ones((2, 3)), np.ones((2, 3)), True), "alpha must be"),
    (lambda: blend.slerp(np.ones((2, 3)), np.ones((3, 3)), 0.5), "slerp pairs rows"),
    (lambda: blend.slerp(np.ones((2, 3)), np.ones((2, 4)), 0.5), "must have 3 dims"),
    (
      lambda: blend.choose_alpha(np.ones((4, 2)), *[np.ones((2, 2))] * 2, [0, 1], None),
      "no blending row without labels",
    ),
  ],
)
def test_bad_input_is_one_line(call, message):
  with pytest.raises(InputError) as e:
    call()
  assert message in str(e.value) and "\n" not in str(e.value)


def _stale_and_bridged(seed=0, n=300):
  """Labelled rows whose stored and bridged vectors carry independent noise.

  The class signal sits in dims 0-1, and each side has noise of its own
  there: either alone confuses some rows' classes, the midpoint averages
  the two noises and confuses fewer.
  """
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 4, size=n)
  centres = np.asarray([[1, 0], [0, 1], [-1, 0], [0, -1]], np.float64) * 3
  clean = np.concatenate([centres[labels], rng.normal(size=(n, 6))], axis=1)
  stored = clean + np.concatenate([rng.normal(size=(n, 2)) * 2.5, np.zeros((n, 6))], 1)
  bridged = clean + np.concatenate([rng.normal(size=(n, 2)) * 2.5, np.zeros((n, 6))], 1)
  return clean, stored, bridged, labels.astype(str)


def test_choose_alpha_scores_every_alpha_by_class_retrieval():
  index, stored, bridged, labels = _stale_and_bridged()
  rows = np.arange(0, 300, 3)
  choice = blend.choose_alpha(
    stored, stored[rows], bridged[rows], rows, labels, alphas=(0.0, 0.5, 1.0), k=5
  )
  for alpha, score in choice.scores:
    want = align.measures.class_retrieval(
      stored,
      blend.slerp(stored[rows], bridged[rows], alpha),
      labels,
      labels[rows],
      5,
      rows=rows,
    )
    assert score == pytest.approx(want)
  best = max(s for _, s in choice.scores)
  assert choice.alpha == min(a for a, s in choice.scores if s == best)
  # Independent noise on both sides: the midpoint averages it and wins.
  assert choice.alpha == 0.5
  assert choice.summary()["scores"]["0.5"] == best


def test_select_alpha_refits_on_training_rows_only():
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 3, size=240)
  new = (rng.normal(size=(3, 5)) * 3)[labels] + rng.normal(size=(240, 5))
  old = new @ rng.normal(size=(5, 4)) + 0.5 * rng.normal(size=(240, 4))
  train = np.arange(200)
  bridge = align.fit(old=old[train], new=new[train], family="linear")
  choice = blend.select_alpha(old, new, train, labels, bridge, seed=1, k=5)
  assert choice.fit_rows + choice.validation_rows == 200
  assert choice.validation_rows == 40
  # Rows outside train never matter: changing them changes nothing.
  old2, new2 = old.copy(), new.copy()
  old2[200:] = 0.0
  new2[200:] = 99.0
  again = blend.select_alpha(old2, new2, train, labels, bridge, seed=1, k=5)
  assert again == choice
