"""Joint training's variants (bcjax.methods.joint_variants) on a stand-in context.

Each method is called with a context whose fit records its call and whose
embeddings are small random arrays, so the numerics are checked against
brute-force computations (NumPy least squares on stacked rows, the Gram
penalty by hand) without training anything. The methods' fits go through
the version-fit driver as joint training's do; the end-to-end run of each
is the screening's (docs/strategies.md).
"""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bcjax.components import losses, transforms
from bcjax.errors import InputError
from bcjax.fitting.train import FitConfig, FitResult
from bcjax.methods import joint_variants as jv
from bcjax.methods.base import Version
from bcjax.methods.strategies import parse_strategy, resolve
from experiments.configs import test as test_config


@dataclasses.dataclass(frozen=True)
class _Result:
  best_epoch: int = 7
  strategy: str = ""
  transform_best_epoch: int = -1
  transform_seconds: float = -1.0

  def replace(self, **fields):
    return dataclasses.replace(self, **fields)


class _Context:
  """What the methods read of a Context: fits recorded, embeddings by model."""

  def __init__(self, hparams, dims=(5, 6), seed=0, loss="mloss"):
    rng = np.random.default_rng(seed)
    self.hparams = hparams
    self.transform = transforms.get_transform("linear")
    self.loss = losses.get_loss(loss)
    self.transform_key = jax.random.key(0)
    self.label = "test"
    self.strategy = types.SimpleNamespace(name="variant-linear-mloss")
    self.dims = dims
    self.calls = []
    # Embeddings on version k's graph: 9 users, 4 items (unequal, so the
    # per-group weights matter).
    self.tables = {
      name: tuple(jnp.asarray(rng.normal(size=(n, d)), jnp.float32) for n in (9, 4))
      for name, d in (("previous", dims[0]), ("nobc", dims[1]), ("fitted", dims[1]))
    }

  def model(self, k):
    return types.SimpleNamespace(dim=self.dims[min(k, 1)], name=f"M{k}")

  def version(self, name, dim):
    model = types.SimpleNamespace(dim=dim, name=name)
    return Version(model, {"name": name}, None, _Result())

  def version_of(self, strategy, k):
    assert strategy == "nobc"
    return self.version("nobc", self.dims[1])

  def embed(self, version):
    return self.tables[version.variables["name"]]

  def fit_config(self, epochs=None, keep_after=0):
    return FitConfig(epochs=epochs or 300, eval_every=5, keep_after=keep_after)

  def fit(self, model, config, **settings):
    self.calls.append(dict(model=model, config=config, **settings))
    return FitResult({"name": "fitted"}, settings["transform_params"], 7, {50: 0.5}, ())

  def result(self, model, fit):
    return _Result(best_epoch=fit.best_epoch)


def _earlier(ctx, k):
  """Versions 0..k-1; the last is the alignment target ("previous")."""
  return [ctx.version("previous", ctx.dims[0]) for _ in range(k)]


def _lstsq(current, previous):
  """argmin_W sum_g mean_rows ||Z_g W - Y_g||^2, by NumPy on stacked rows."""
  rows = [np.asarray(z, np.float64) / np.sqrt(len(z)) for z in current]
  targets = [np.asarray(y, np.float64) / np.sqrt(len(y)) for y in previous]
  return np.linalg.lstsq(np.vstack(rows), np.vstack(targets), rcond=None)[0]


def test_jointsolve_serves_the_least_squares_map_of_the_kept_model():
  ctx = _Context(jv.JointSolveHparams(align_weight=2.0, keep_after=3, ridge=0.0))
  version = jv.jointsolve(ctx, 1, _earlier(ctx, 1))
  (call,) = ctx.calls
  assert call["alignment"].weight == 2.0 and call["config"].keep_after == 3
  assert call["variables"] is None  # a fresh M_k, as joint training
  expected = _lstsq(ctx.tables["fitted"], ctx.tables["previous"])
  np.testing.assert_allclose(version.transform_params["kernel"], expected, atol=1e-5)
  # The jointly trained B_k (the init here) is not what is served.
  assert np.abs(np.asarray(call["transform_params"]["kernel"]) - expected).max() > 0.1
  assert version.result.best_epoch == 7 and version.result.transform_best_epoch == 0


def test_warmjoint_fine_tunes_nobc_from_its_least_squares_map():
  ctx = _Context(jv.WarmJointHparams(align_weight=4.0, epochs=30, keep_after=10))
  version = jv.warmjoint(ctx, 2, _earlier(ctx, 2))
  (call,) = ctx.calls
  assert call["variables"] == {"name": "nobc"} and call["model"].name == "nobc"
  expected = _lstsq(ctx.tables["nobc"], ctx.tables["previous"])
  # The relative ridge 1e-6 moves the solve by less than the tolerance.
  np.testing.assert_allclose(call["transform_params"]["kernel"], expected, atol=1e-4)
  assert (call["config"].epochs, call["config"].keep_after) == (30, 10)
  assert call["alignment"].weight == 4.0 and call["alignment"].loss.name == "mloss"
  np.testing.assert_array_equal(call["target"].user, ctx.tables["previous"][0])
  assert len(call["target"].old_params) == 1  # B_1 of the two earlier versions
  assert version.variables == {"name": "fitted"}


def test_schedjoint_weights_by_hand():
  hp = jv.ScheduledJointHparams(align_weight=4.0, growth=0.5)
  ctx = _Context(hp)
  for k in (1, 2, 3, 4):
    jv.schedjoint(ctx, k, _earlier(ctx, k))
  assert [c["alignment"].weight for c in ctx.calls] == [4.0, 2.0, 1.0, 0.5]
  assert jv.version_weight(3.0, 2.0, 3) == 12.0


def test_softjoint_adds_the_gated_gram_penalty_by_hand():
  ctx = _Context(jv.SoftJointHparams(align_weight=1.0, strength=0.3, tolerance=0.2))
  jv.softjoint(ctx, 1, _earlier(ctx, 1))
  (call,) = ctx.calls
  family = call["alignment"].transform
  w = np.asarray(call["transform_params"]["kernel"], np.float64)  # (6, 5)
  gram = w.T @ w
  deviation = np.sqrt(((gram - np.eye(5)) ** 2).sum())
  expected = 0.3 * max(deviation - 0.2, 0.0) ** 2 / 5
  np.testing.assert_allclose(
    family.penalty(call["transform_params"]), expected, rtol=1e-5
  )
  # The penalty shapes the fit; the map served is the strategy's linear one.
  z = ctx.tables["fitted"][0]
  np.testing.assert_allclose(
    family.apply(call["transform_params"], z),
    ctx.transform.apply(call["transform_params"], z),
  )


@pytest.mark.parametrize(
  "name, message",
  [
    (
      "warmjoint-linear-mloss@epochs=20@keep_after=20",
      "keep_after must be below epochs=20",
    ),
    ("schedjoint-linear-mloss@growth=0", "growth must be a finite number > 0"),
    ("softjoint-linear-mloss@strength=-1", "strength must be a finite number >= 0"),
    ("jointsolve-linear-mloss@align_weight=-2", "align_weight must be >= 0"),
    ("jointsolve-linear-sloss@ridge=nan", "ridge must be a finite number >= 0"),
  ],
)
def test_bad_hyperparameters_get_one_message_naming_the_field(name, message):
  with pytest.raises(InputError, match=message):
    resolve(name, test_config.get_config())


@pytest.mark.parametrize(
  "name, reason",
  [
    ("warmjoint-mlp-mloss", "no exact single-step fit"),
    ("jointsolve-softorthogonal-sloss", "no exact single-step fit"),
    ("softjoint-orthogonal-mloss", "expected softjoint-linear-<loss>"),
  ],
)
def test_combinations_without_their_solver_or_family_are_refused(name, reason):
  with pytest.raises(InputError, match=reason):
    parse_strategy(name)
