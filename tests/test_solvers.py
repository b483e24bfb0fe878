"""The orthogonal transform family and the closed-form post-hoc fits.

Each solver is checked against an independent NumPy solution: ridge least
squares by ``lstsq`` on the row-weighted, ridge-augmented system (not the
normal equations), and Procrustes by recovering a planted isometry and by
beating every nearby orthogonal matrix.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bcjax.components import solvers
from bcjax.components.chains import compose
from bcjax.components.losses import get_loss
from bcjax.components.transforms import get_transform, orthogonal
from bcjax.errors import InputError
from bcjax.methods.strategies import parse_strategy, valid_names


def _groups(seed, sizes, d):
  rng = np.random.default_rng(seed)
  return [rng.normal(size=(n, d)).astype(np.float32) for n in sizes]


def test_least_squares_matches_the_augmented_lstsq_solution():
  sizes, d_in, d_out, ridge = (50, 30), 6, 4, 1e-2
  z = _groups(0, sizes, d_in)
  y = _groups(1, sizes, d_out)
  w = solvers.least_squares(z, y, ridge)
  # 1/2 sum_g mean_rows ||Z_g W - Y_g||^2 + rho ||W||^2 as one least-squares
  # problem: rows scaled by sqrt(1 / (2 n_g)), then sqrt(rho) I rows.
  gram = sum(g.astype(np.float64).T @ g / len(g) for g in z)
  rho = ridge * np.mean(np.diag(gram))
  a = np.concatenate(
    [g / np.sqrt(2 * len(g)) for g in z] + [np.sqrt(rho) * np.eye(d_in)]
  )
  b = np.concatenate([g / np.sqrt(2 * len(g)) for g in y] + [np.zeros((d_in, d_out))])
  want, *_ = np.linalg.lstsq(a, b, rcond=None)
  assert w.shape == (d_in, d_out)
  np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-6)


def test_least_squares_with_a_dead_unit_and_no_ridge_is_the_minimum_norm_one():
  # A unit that is zero on every node (trained embeddings have them) makes
  # the Gram matrix singular: the solve gives lstsq's minimum-norm solution,
  # zero on that unit's row, not an error or noise.
  z = _groups(2, (40, 25), 5)
  for g in z:
    g[:, 3] = 0.0
  y = _groups(3, (40, 25), 4)
  w = solvers.least_squares(z, y, 0.0)
  a = np.concatenate([g / np.sqrt(2 * len(g)) for g in z])
  b = np.concatenate([g / np.sqrt(2 * len(g)) for g in y])
  want, *_ = np.linalg.lstsq(a, b, rcond=None)
  np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(w[3], 0.0)


def test_procrustes_recovers_a_planted_isometry_and_is_optimal():
  sizes, d_in, d_out = (40, 25), 6, 4
  # Planted: z = [x, 0] Q^T, so z Q = [x, 0] and the padded objective is zero
  # at R = Q for the targets y = x; W must be Q's first d_out columns.
  q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(d_in, d_in)))
  x = _groups(2, sizes, d_out)
  z = [np.pad(g, ((0, 0), (0, d_in - d_out))) @ q.T for g in x]
  w = solvers.procrustes(z, x)
  np.testing.assert_allclose(w.T @ w, np.eye(d_out), atol=1e-5)
  np.testing.assert_allclose(w, q[:, :d_out], atol=1e-4)

  # With noise there is no exact answer: no orthogonal matrix near R does
  # better on the padded objective.
  z = [g + 0.3 * n for g, n in zip(z, _groups(6, sizes, d_in))]
  noisy = [g + 0.3 * n for g, n in zip(x, _groups(4, sizes, d_out))]
  w = solvers.procrustes(z, noisy)

  def objective(r):
    return sum(
      np.mean((g @ r - np.pad(t, ((0, 0), (0, d_in - d_out)))) ** 2)
      for g, t in zip(z, noisy)
    )

  # Complete W to the R it came from (its last columns by the SVD as well).
  m = sum(
    g.T @ np.pad(t, ((0, 0), (0, d_in - d_out))) / len(g) for g, t in zip(z, noisy)
  )
  u, _, vt = np.linalg.svd(m)
  r = u @ vt
  np.testing.assert_allclose(r[:, :d_out], w, atol=1e-5)
  rng = np.random.default_rng(5)
  for _ in range(20):
    s = rng.normal(size=(d_in, d_in)) * 1e-2
    rotation, _ = np.linalg.qr(np.eye(d_in) + (s - s.T))
    assert objective(r) <= objective(r @ rotation) + 1e-9


def test_orthogonal_transform_keeps_orthonormal_columns_while_trained():
  transform = orthogonal()
  params = transform.init(jax.random.key(0), 7, 3)
  np.testing.assert_allclose(transform.as_matrix(params), np.eye(7, 3), atol=1e-6)
  z = jax.random.normal(jax.random.key(1), (64, 7))
  target = jax.random.normal(jax.random.key(2), (64, 3))
  loss = get_loss("sloss")

  @jax.jit
  def step(p):
    grads = jax.grad(lambda p: loss(transform, p, (), [target], [z]))(p)
    return jax.tree.map(lambda a, g: a - 0.5 * g, p, grads)

  before = float(loss(transform, params, (), [target], [z]))
  for _ in range(50):
    params = step(params)
  w = np.asarray(transform.as_matrix(params))
  np.testing.assert_allclose(w.T @ w, np.eye(3), atol=1e-5)
  assert float(loss(transform, params, (), [target], [z])) < before
  np.testing.assert_allclose(transform.apply(params, z), z @ w, rtol=1e-5, atol=1e-5)
  # Reflections are reachable: a kernel with a negative column stays one.
  flipped = {"kernel": jnp.eye(3, 3).at[0, 0].set(-1.0)}
  assert float(jnp.linalg.det(transform.as_matrix(flipped))) == pytest.approx(-1.0)


def test_orthogonal_chain_collapses_through_as_matrix():
  family = orthogonal()
  chain = compose(family, family)
  params = chain.init(jax.random.key(0), 6, 5, 3)
  params = jax.tree.map(
    lambda a: a + 0.1 * jax.random.normal(jax.random.key(1), a.shape), params
  )
  z = jax.random.normal(jax.random.key(2), (4, 6))
  matrix = family.as_matrix(params[1]) @ family.as_matrix(params[0])
  np.testing.assert_allclose(chain.apply(params, z), z @ matrix, rtol=1e-5, atol=1e-5)


def test_closedform_names_and_refusals():
  names = valid_names()
  for name in (
    "closedform-linear-sloss",
    "closedform-orthogonal-sloss",
    "joint-orthogonal-sloss",
    "joint-orthogonal-mloss",
    "posthoc-orthogonal-mloss",
  ):
    assert name in names
    assert parse_strategy(name).name == name
  with pytest.raises(InputError, match="mlp transform has no closed-form fit"):
    parse_strategy("closedform-mlp-sloss")
  with pytest.raises(InputError, match="exact closed-form fit only of sloss"):
    parse_strategy("closedform-linear-mloss")
  with pytest.raises(InputError, match="exact closed-form fit only of sloss"):
    parse_strategy("closedform-orthogonal-mloss")
  with pytest.raises(InputError, match="larger 6"):
    get_transform("orthogonal").init(None, 3, 6)
