"""Post-hoc fitting of B_k: the reference's batches, steps and selection."""

import math

import jax
import numpy as np
import pytest

from bcjax.components.losses import get_loss
from bcjax.components.transforms import linear
from bcjax.data.split import split_version
from bcjax.errors import InputError, TrainingDivergedError
from bcjax.fitting.posthoc import PosthocConfig, epoch_triples, fit_posthoc
from bcjax.models.device_graph import BipartiteGraph
from tests.conftest import graph_from_rows

# Four users, six items, eleven interactions; the last one is validation.
ROWS = [
  ("u0", "a", 1, 4.0),
  ("u0", "b", 2, 4.0),
  ("u1", "b", 3, 4.0),
  ("u1", "c", 4, 4.0),
  ("u1", "d", 5, 4.0),
  ("u2", "a", 6, 4.0),
  ("u2", "e", 7, 4.0),
  ("u3", "f", 8, 4.0),
  ("u3", "c", 9, 4.0),
  ("u0", "e", 10, 4.0),
  ("u0", "f", 11, 4.0),
]
D_IN, D_OUT = 5, 3


@pytest.fixture(scope="module")
def version():
  split = split_version(graph_from_rows(ROWS), 0, taus=(0.95, 1.0))
  assert split.num_train == 10
  rng = np.random.default_rng(0)
  current = (
    rng.normal(size=(split.num_users, D_IN)).astype(np.float32),
    rng.normal(size=(split.num_items, D_IN)).astype(np.float32),
  )
  previous = (
    rng.normal(size=(split.num_users, D_OUT)).astype(np.float32),
    rng.normal(size=(split.num_items, D_OUT)).astype(np.float32),
  )
  return split, BipartiteGraph.from_split(split), current, previous


def _fit(version, config, init="identity", loss="sloss"):
  _, graph, current, previous = version
  transform = linear(init=init)
  params = transform.init(jax.random.key(7), D_IN, D_OUT)
  return fit_posthoc(
    transform,
    params,
    current,
    previous,
    graph,
    config,
    jax.random.key(3),
    loss=get_loss(loss),
  )


def test_batches_are_the_versions_bpr_triples(version):
  split, graph, _, _ = version
  positives = set(zip(split.train_user.tolist(), split.train_item.tolist()))
  steps = math.ceil(split.num_train / 3)
  users, pos, neg = jax.device_get(
    jax.jit(epoch_triples, static_argnums=(2, 3))(graph, jax.random.key(0), steps, 3)
  )
  assert users.shape == pos.shape == neg.shape == (4, 3)
  assert all((u, i) in positives for u, i in zip(users.ravel(), pos.ravel()))
  assert not any((u, i) in positives for u, i in zip(users.ravel(), neg.ravel()))
  assert 0 <= neg.min() and neg.max() < split.num_items


def test_one_epoch_is_adam_on_three_groups_of_ceil_n_over_b_batches(version):
  """Epoch 1 replayed in NumPy: 4 = ceil(10 / 3) Adam steps on the sum of
  the user, positive-item and negative-item MSEs of each batch."""
  split, graph, current, previous = version
  config = PosthocConfig(
    epochs=1, keep_after=0, eval_every=1, batch_size=3, learning_rate=0.05
  )
  fit = _fit(version, config)
  assert fit.steps_per_epoch == 4 == math.ceil(split.num_train / 3)
  batches = jax.device_get(
    epoch_triples(graph, jax.random.fold_in(jax.random.key(3), 1), 4, 3)
  )
  z_user, z_item = (np.asarray(a, np.float64) for a in current)
  y_user, y_item = (np.asarray(a, np.float64) for a in previous)
  w = np.eye(D_IN, D_OUT)
  m, v = np.zeros_like(w), np.zeros_like(w)
  for t, (users, pos, neg) in enumerate(zip(*batches), 1):
    grad = np.zeros_like(w)
    for z, y in ((z_user[users], y_user[users]), (z_item[pos], y_item[pos])) + (
      (z_item[neg], y_item[neg]),
    ):
      grad += -2.0 / y.size * z.T @ (y - z @ w)
    m = 0.9 * m + 0.1 * grad
    v = 0.999 * v + 0.001 * grad**2
    w -= 0.05 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
  np.testing.assert_allclose(fit.params["kernel"], w, rtol=1e-4, atol=1e-5)
  # The criterion: half the user MSE plus half the item MSE over all nodes.
  want = 0.5 * (
    np.mean((z_user @ w - y_user) ** 2) + np.mean((z_item @ w - y_item) ** 2)
  )
  assert fit.checked == ((1, pytest.approx(want, rel=1e-4)),)
  assert fit.error == pytest.approx(want, rel=1e-4)


def test_criterion_checked_every_eval_every_epochs_after_keep_after(version):
  config = PosthocConfig(
    epochs=13, keep_after=4, eval_every=3, batch_size=3, learning_rate=0.05
  )
  fit = _fit(version, config, init="uniform")
  # The reference: `epoch % log_every == 0 and epoch > 50`.
  assert [e for e, _ in fit.checked] == [6, 9, 12]
  best_epoch, best_error = min(fit.checked, key=lambda c: c[1])
  assert (fit.best_epoch, fit.error) == (best_epoch, best_error)


def test_with_patience_and_min_delta_a_fit_stops_on_its_plateau(version):
  settings = dict(epochs=200, keep_after=0, eval_every=2, batch_size=3)
  settings.update(learning_rate=0.05)
  whole = _fit(version, PosthocConfig(**settings), init="uniform")
  stopped = _fit(
    version,
    PosthocConfig(**settings, patience=6, min_delta=0.01),
    init="uniform",
  )
  checks = [e for e, _ in stopped.checked]
  # Kept: the first check whose error no later one beat by 1%.
  errors = dict(whole.checked)
  kept, kept_error = 0, np.inf
  for epoch in sorted(errors):
    if epoch > checks[-1]:
      break
    if errors[epoch] < kept_error * 0.99:
      kept, kept_error = epoch, errors[epoch]
  assert stopped.best_epoch == kept
  # It stopped at the first check 6 epochs past the kept one, long before
  # the last epoch, and up to there it is the whole fit, check by check.
  assert checks[-1] == kept + 6 < 100
  assert stopped.checked == whole.checked[: len(checks)]
  assert stopped.error == pytest.approx(kept_error)


def test_last_epoch_checked_when_no_multiple_follows_keep_after(version):
  config = PosthocConfig(
    epochs=5, keep_after=4, eval_every=3, batch_size=3, learning_rate=0.05
  )
  fit = _fit(version, config, loss="mloss")
  assert [e for e, _ in fit.checked] == [5]
  assert fit.best_epoch == 5


def test_a_diverging_fit_stops_naming_the_fit_and_epoch(version):
  split, graph, current, previous = version
  # Embeddings far past float32's range square to inf: the loss is not finite.
  huge = tuple(np.full_like(c, 1e30) for c in current)
  config = PosthocConfig(epochs=4, keep_after=0, eval_every=2, batch_size=3)
  transform = linear(init="identity")
  with pytest.raises(TrainingDivergedError, match="posthoc v1: .* by epoch 2"):
    fit_posthoc(
      transform,
      transform.init(jax.random.key(7), D_IN, D_OUT),
      huge,
      previous,
      graph,
      config,
      jax.random.key(3),
      loss=get_loss("sloss"),
      label="posthoc v1",
    )


def test_a_refit_starts_from_the_given_transform(small_graph, tmp_path):
  """``fit_transform_posthoc(start=...)`` refines a given B_k, not a fresh one."""
  from bcjax.components.solvers import least_squares
  from bcjax.methods.building_blocks import fit_transform_posthoc

  ctx, current, previous = _method_context(
    small_graph, tmp_path, "posthoc-linear-sloss"
  )
  z, y = ctx.embed(current), ctx.embed(previous)
  best = {"kernel": least_squares(z, y, 0.0)}
  settings = dict(epochs=1, keep_after=0, learning_rate=1e-4)
  fresh, _ = fit_transform_posthoc(ctx, current, [previous], **settings)
  refined, _ = fit_transform_posthoc(ctx, current, [previous], start=best, **settings)
  # One small step from the least-squares optimum stays at its error; from
  # the transform's init it is far above it.
  optimum = np.mean([np.mean((zz @ best["kernel"] - yy) ** 2) for zz, yy in zip(z, y)])
  assert refined.error == pytest.approx(optimum, rel=0.05)
  assert fresh.error > 1.5 * refined.error


def _method_context(small_graph, tmp_path, strategy, **posthoc):
  from bcjax.methods.base import Context, Version
  from bcjax.methods.strategies import resolve
  from bcjax.models.pinsage import PinSAGE, init_variables
  from bcjax.storage.progress import FitProgress
  from experiments.configs import test as test_config

  config = test_config.get_config()
  config.method.posthoc.update(posthoc)
  split = split_version(small_graph, 1)
  graph = BipartiteGraph.from_split(split, None)

  def version(dim, seed):
    model = PinSAGE(dim=dim, num_layers=1)
    return Version(
      model, init_variables(model, graph, jax.random.key(seed)), None, None
    )

  made = {}
  ctx = Context(
    strategy=resolve(strategy, config),
    config=config,
    split=split,
    graph=graph,
    key=jax.random.key(0),
    mesh=None,
    progress=FitProgress(str(tmp_path / "progress")),
    version_of=lambda name, k: made["current"],
  )
  for name, dim, seed in (("current", 12, 1), ("previous", 8, 2)):
    v = version(dim, seed)
    made[name] = Version(v.model, v.variables, None, ctx.result(v.model, recall={}))
  return ctx, made["current"], made["previous"]


@pytest.mark.parametrize("loss", ["sloss", "mloss"])
def test_a_closed_form_start_lands_at_the_least_squares_error(
  small_graph, tmp_path, loss
):
  """``method.posthoc.start="closed_form"``: B_k's SGD starts from the
  single-step solution (the minimiser of both linear losses) and keeps an
  epoch within 1.1x of its error; from the init, the same short fit is not."""
  from bcjax.components.solvers import least_squares
  from bcjax.methods.paper import posthoc

  settings = dict(epochs=10, keep_after=0, learning_rate=1e-3)
  results = {}
  for start in ("init", "closed_form"):
    ctx, current, previous = _method_context(
      small_graph, tmp_path / start, f"posthoc-linear-{loss}", start=start, **settings
    )
    version = posthoc(ctx, 1, [previous])
    z, y = ctx.embed(current), ctx.embed(previous)
    w = np.asarray(version.transform_params["kernel"])
    results[start] = np.mean([np.mean((zz @ w - yy) ** 2) for zz, yy in zip(z, y)])
  best = least_squares(z, y, 0.0)
  optimum = np.mean([np.mean((zz @ best - yy) ** 2) for zz, yy in zip(z, y)])
  assert results["closed_form"] <= 1.1 * optimum
  assert results["init"] > 1.3 * optimum


def test_a_family_without_a_closed_form_starts_from_its_init(small_graph, tmp_path):
  """``start="closed_form"`` is one setting for every post-hoc strategy of a
  run: an MLP B_k, which has no exact solution, starts from its init."""
  from bcjax.methods.paper import posthoc

  kernels = []
  for start in ("init", "closed_form"):
    ctx, _, previous = _method_context(
      small_graph, tmp_path / start, "posthoc-mlp-sloss", start=start, epochs=2
    )
    kernels.append(jax.tree.leaves(posthoc(ctx, 1, [previous]).transform_params))
  for a, b in zip(*kernels, strict=True):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(InputError, match="start must be one of"):
    _method_context(small_graph, tmp_path, "posthoc-linear-sloss", start="warm")
