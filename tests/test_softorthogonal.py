"""The softorthogonal transform family: its penalty, both ends of its strength, a run.

The penalty is checked against a brute-force NumPy version; the post-hoc fit
at strength 0 against the linear family's, at a large strength against
orthogonal Procrustes; the strategies run end to end on the test config and
are served back with their hyperparameters; bad hyperparameters are one
line.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bcjax import registry
from bcjax.align.families import soft_objective
from bcjax.components import solvers, transforms
from bcjax.components.losses import get_loss
from bcjax.components.softorthogonal import (
  SoftOrthogonalHparams,
  gram_penalty,
  softorthogonal,
)
from bcjax.data.split import split_version
from bcjax.errors import InputError
from bcjax.fitting.posthoc import PosthocConfig, epoch_triples, fit_posthoc
from bcjax.jobs import config as config_lib
from bcjax.jobs import runner
from bcjax.methods import strategies
from bcjax.models.device_graph import BipartiteGraph
from experiments.configs import test as test_config
from tests.conftest import ROOT, run_module

STRATEGIES = ("posthoc-softorthogonal-sloss", "joint-softorthogonal-sloss")


def _penalty_numpy(w, tolerance):
  """``max(0, ||G - I||_F - tolerance)^2 / m`` by loops, in float64."""
  w = np.asarray(w, np.float64)
  if w.shape[0] < w.shape[1]:
    w = w.T  # the smaller side's Gram: W W^T is the Gram of W^T's columns
  m = w.shape[1]
  total = 0.0
  for i, j in itertools.product(range(m), range(m)):
    g = sum(w[r, i] * w[r, j] for r in range(w.shape[0]))
    total += (g - (i == j)) ** 2
  return max(np.sqrt(total) - tolerance, 0.0) ** 2 / m


@pytest.mark.parametrize("shape", [(7, 4), (4, 7), (5, 5)])
def test_penalty_is_the_gated_gram_deviation_of_the_smaller_side(shape):
  rng = np.random.default_rng(sum(shape))
  w = (rng.normal(size=shape) / np.sqrt(max(shape))).astype(np.float32)
  deviation = np.sqrt(_penalty_numpy(w, 0.0) * min(shape))
  assert deviation > 0.5
  for tolerance in (0.0, 0.5 * deviation, 2.0 * deviation):  # open, open, shut
    want = _penalty_numpy(w, tolerance)
    got = float(gram_penalty(jnp.asarray(w), tolerance))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  assert float(gram_penalty(jnp.asarray(w), 2.0 * deviation)) == 0.0
  assert float(gram_penalty(jnp.asarray(w), 0.5 * deviation)) > 0.0

  # A semi-orthogonal W pays nothing whichever side is smaller; the Gram of
  # the larger side could not reach I.
  q, _ = np.linalg.qr(rng.normal(size=(max(shape), min(shape))))
  semi = q if shape[0] >= shape[1] else q.T
  assert float(gram_penalty(jnp.asarray(semi, jnp.float32), 0.0)) < 1e-10
  if shape[0] != shape[1]:
    big = semi @ semi.T if shape[0] > shape[1] else semi.T @ semi
    assert np.linalg.norm(big - np.eye(len(big))) > 1.0

  # Its gradient is the brute force's, by central differences in float64.
  grad = np.asarray(jax.grad(gram_penalty)(jnp.asarray(w), 0.1 * deviation))
  step = 1e-6
  for r, c in [(0, 0), (shape[0] - 1, shape[1] - 1), (1, 2)]:
    bump = np.zeros(shape)
    bump[r, c] = step
    fd = (
      _penalty_numpy(w + bump, 0.1 * deviation)
      - _penalty_numpy(w - bump, 0.1 * deviation)
    ) / (2 * step)
    np.testing.assert_allclose(grad[r, c], fd, rtol=1e-3, atol=1e-5)

  # The align bridge's objective uses this very penalty.
  zeros = jnp.zeros((shape[0], shape[0])), jnp.zeros(shape)
  bridge = float(soft_objective(jnp.asarray(w), *zeros, 3.0, 0.0))
  np.testing.assert_allclose(bridge, 3.0 * _penalty_numpy(w, 0.0), rtol=1e-5)


def test_the_loss_adds_the_penalty_weighed_by_the_targets_mean_square():
  rng = np.random.default_rng(0)
  w = rng.normal(size=(6, 4)).astype(np.float32)
  current = [rng.normal(size=(n, 6)).astype(np.float32) for n in (5, 3)]
  previous = [rng.normal(size=(n, 4)).astype(np.float32) for n in (5, 3)]
  family = softorthogonal(strength=2.5, tolerance=0.3)
  got = float(get_loss("sloss")(family, {"kernel": w}, (), previous, current))
  mse = sum(np.mean((y - z @ w) ** 2) for z, y in zip(current, previous))
  scale = sum(np.mean(y**2) for y in previous)
  want = mse + scale * 2.5 * _penalty_numpy(w, 0.3)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # A family without a penalty gets the loss alone.
  linear = float(
    get_loss("sloss")(transforms.linear(), {"kernel": w}, (), previous, current)
  )
  np.testing.assert_allclose(linear, mse, rtol=1e-5)


@pytest.fixture(scope="module")
def graph(small_graph):
  return BipartiteGraph.from_split(split_version(small_graph, 0, taus=(0.5, 1.0)))


def _rows(graph, d_in, d_out, seed, scales=None):
  """Embeddings ``z`` and ``y = z W0 + noise`` with ``W0`` semi-orthogonal.

  ``W0`` is the first ``d_out`` columns of a random rotation (its first
  ``d_in`` rows, transposed, when ``d_in < d_out``), each column times
  ``scales`` when given (then ``W0`` is no longer orthogonal).
  """
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(max(d_in, d_out),) * 2))
  w0 = q[:, :d_out] if d_in >= d_out else q[:d_in, :]
  if scales is not None:
    w0 = w0 * np.asarray(scales)
  counts = (graph.num_users, graph.num_items)
  z = [rng.normal(size=(n, d_in)).astype(np.float32) for n in counts]
  y = [(x @ w0 + 0.05 * rng.normal(size=(len(x), d_out))).astype(np.float32) for x in z]
  return z, y, w0


def _fit(graph, family, z, y, epochs=200):
  # Adam at 1e-2 rather than the reference's 1e-3: seconds, not minutes.
  config = PosthocConfig(
    epochs=epochs, keep_after=0, eval_every=10, batch_size=256, learning_rate=1e-2
  )
  params = family.init(jax.random.key(1), z[0].shape[1], y[0].shape[1])
  fit = fit_posthoc(
    family,
    params,
    tuple(z),
    tuple(y),
    graph,
    config,
    jax.random.key(2),
    loss=get_loss("sloss"),
  )
  return np.asarray(fit.params["kernel"])


def _deviation(w):
  g = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
  return float(np.linalg.norm(g - np.eye(len(g))))


def test_strength_zero_is_the_linear_fit(graph):
  z, y, _ = _rows(graph, 8, 5, seed=0, scales=np.linspace(0.6, 1.5, 5))
  linear = _fit(graph, transforms.linear(), z, y, epochs=40)
  # From linear's start, step for step the same fit (to float rounding).
  same_start = _fit(graph, softorthogonal(strength=0.0, init="uniform"), z, y, 40)
  np.testing.assert_allclose(same_start, linear, rtol=0, atol=1e-6)
  assert _deviation(linear) > 0.5  # the data are far from orthogonal
  # From its own start (zeros), near the same least-squares optimum.
  own_start = _fit(graph, softorthogonal(strength=0.0), z, y, epochs=40)
  optimum = solvers.least_squares(z, y, 0.0)
  assert np.abs(own_start - optimum).max() < 0.01
  assert np.abs(linear - optimum).max() < 0.01


def test_a_large_strength_approaches_procrustes(graph):
  # A rotation times scales 0.6..1.5 plus noise: the linear fit is far from
  # orthogonal, and Procrustes is the orthogonal fit (W is square).
  z, y, _ = _rows(graph, 8, 8, seed=1, scales=np.linspace(0.6, 1.5, 8))
  procrustes = solvers.procrustes(z, y)
  # The fit weighs rows as the BPR triples do (users by degree, ...), not
  # users and items by their means: its orthogonal optimum is Procrustes on
  # a large sample of triples (0.016 from the other in max-abs here).
  users, pos, neg = (a[0] for a in epoch_triples(graph, jax.random.key(5), 1, 10**5))
  weighed = solvers.procrustes(
    [z[0][users], z[1][pos], z[1][neg]], [y[0][users], y[1][pos], y[1][neg]]
  )
  linear = solvers.least_squares(z, y, 0.0)  # strength 0 (previous test)
  assert _deviation(linear) > 1.0 and np.abs(linear - procrustes).max() > 0.2
  moderate = _fit(graph, softorthogonal(strength=10.0), z, y)
  assert _deviation(moderate) < 0.05
  # The larger the strength, the stiffer: 400 epochs to slide along the
  # manifold (200 leave it 0.05 from the optimum).
  strong = _fit(graph, softorthogonal(strength=100.0), z, y, epochs=400)
  assert _deviation(strong) < 0.01
  assert np.abs(strong - weighed).max() < 0.005
  assert np.abs(strong - procrustes).max() < 0.03


@pytest.mark.parametrize("d_in,d_out", [(10, 6), (6, 10)])
def test_a_large_strength_is_semi_orthogonal_on_either_side(graph, d_in, d_out):
  # A rotation plus noise: the noise alone keeps the linear fit 0.02-0.04
  # from semi-orthogonal (in ||G - I||_F); the penalty takes it below 1e-3.
  z, y, w0 = _rows(graph, d_in, d_out, seed=2)
  w = _fit(graph, softorthogonal(strength=100.0), z, y)
  assert _deviation(w) < 1e-3 and _deviation(solvers.least_squares(z, y, 0.0)) > 0.01
  assert np.abs(w - w0).max() < 0.05


def test_bad_hyperparameters_are_one_input_error():
  def section(**fields):
    return {"transform": {"softorthogonal": fields}}

  for fields, message in [
    ({"strength": -1.0}, "strength must be a finite number >= 0, got -1.0"),
    ({"tolerance": float("nan")}, "tolerance must be a finite number >= 0, got nan"),
    ({"strength": "big"}, "strength must be a number, got 'big'"),
    ({"init": "orthogonal"}, "init must be one of zeros, uniform, identity"),
    ({"rank": 3}, "has no field 'rank'"),
  ]:
    with pytest.raises(InputError, match=message) as raised:
      transforms.from_config("softorthogonal", section(**fields))
    assert str(raised.value).startswith("config.transform.softorthogonal")
    assert "\n" not in str(raised.value)
  with pytest.raises(InputError, match="tolerance must be a finite number >= 0"):
    softorthogonal(tolerance=-0.1)
  with pytest.raises(InputError, match="softorthogonal transform dims must be"):
    softorthogonal().init(None, 0, 3)


def test_a_bad_strength_on_the_command_line_is_one_error_line(tmp_path):
  proc = run_module(
    "experiments.run_intended",
    f"--workdir={tmp_path / 'w'}",
    "--config=test",
    f"--config.strategy={STRATEGIES[0]}",
    "--config.transform.softorthogonal.strength=-2",
    cwd=ROOT,
  )
  assert proc.returncode == 2, proc.stderr[-3000:]
  lines = proc.stderr.strip().splitlines()
  assert lines == [
    "error: config.transform.softorthogonal.strength must be a finite number "
    ">= 0, got -2.0"
  ], proc.stderr[-3000:]
  assert not (tmp_path / "w").exists()


def test_strategies_run_and_are_served_with_their_hyperparameters(tmp_path):
  names = strategies.valid_names()
  assert all(name in names for name in STRATEGIES + ("joint-softorthogonal-mloss",))
  with pytest.raises(InputError, match="softorthogonal transform has no closed-form"):
    strategies.parse_strategy("closedform-softorthogonal-sloss")

  config = config_lib.with_component_sections(test_config.get_config())
  config.strategy = ",".join(("nobc",) + STRATEGIES)
  config.transform.softorthogonal.strength = 5.0
  config.transform.softorthogonal.tolerance = 0.25
  results = runner.run(config, str(tmp_path))
  hparams = {"strength": 5.0, "tolerance": 0.25, "init": "zeros"}
  assert results["config"]["transform"]["softorthogonal"] == hparams
  for name in STRATEGIES:
    entries = results["strategies"][name]
    assert [e["version"] for e in entries] == [0, 1]
    assert np.isfinite(entries[1]["alignment_mse_previous"])

    reg = registry.open(str(tmp_path / "checkpoints" / name))
    spec = reg.metadata(1)["transform"]
    assert spec["name"] == "softorthogonal" and spec["hparams"] == hparams
    assert transforms.from_spec(spec).hparams == SoftOrthogonalHparams(5.0, 0.25)
    chain = reg.chain(1, 0)
    assert np.shape(chain.weights) == (24, 16)  # collapsed through as_matrix
    z1 = reg.embeddings(version=1, kind="item")
    np.testing.assert_allclose(
      reg.embeddings(version=0, kind="item"),
      z1 @ np.asarray(chain.weights),
      rtol=1e-4,
      atol=1e-5,
    )
