"""Backward transforms, their composition and the alignment losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bcjax.components.chains import collapse_linear, compose
from bcjax.components.losses import group_mse, multi_step_loss, single_step_loss
from bcjax.components.transforms import (
  LinearHparams,
  from_config,
  get_transform,
  linear,
  mlp,
  notrans,
)
from bcjax.errors import InputError


def _random_linear(key, d_in, d_out):
  return {"kernel": jax.random.normal(key, (d_in, d_out))}


@pytest.mark.parametrize("factory", [notrans, linear, lambda: mlp(hidden=7)])
def test_transform_shapes(factory):
  transform = factory()
  params = transform.init(jax.random.key(0), 12, 8)
  z = jnp.ones((5, 12))
  assert transform.apply(params, z).shape == (5, 8)


def test_notrans_keeps_the_prefix_and_linear_starts_there():
  z = jax.random.normal(jax.random.key(1), (4, 6))
  np.testing.assert_array_equal(
    notrans().apply(notrans().init(None, 6, 3), z), z[:, :3]
  )
  lin = linear(init="identity")
  np.testing.assert_allclose(lin.apply(lin.init(None, 6, 3), z), z[:, :3])
  with pytest.raises(InputError, match="cannot map dimension 3 to the larger 6"):
    notrans().init(None, 3, 6)


def test_linear_starts_like_torch_linear():
  # torch.nn.Linear(d_k, d_{k-1}, bias=False): U(-1/sqrt(d_k), 1/sqrt(d_k)).
  d_in, d_out = 16, 9
  kernel = np.asarray(linear().init(jax.random.key(0), d_in, d_out)["kernel"])
  assert kernel.shape == (d_in, d_out)  # apply is z @ W
  bound = 0.25  # 1 / sqrt(16)
  assert np.all(np.abs(kernel) <= bound)
  # 144 uniform draws: the extremes come close to the bound, the mean and
  # variance to 0 and bound^2 / 3 (five standard errors).
  assert np.abs(kernel).max() > 0.9 * bound
  assert abs(kernel.mean()) < 5 * bound / np.sqrt(3 * 144)
  assert abs(kernel.var() - bound**2 / 3) < 5 * bound**2 * np.sqrt(4 / 45 / 144)
  assert not np.allclose(kernel, np.eye(d_in, d_out), atol=0.1)
  other = linear().init(jax.random.key(1), d_in, d_out)["kernel"]
  assert not np.allclose(kernel, other)


def test_linear_identity_init_and_bad_init_names():
  kernel = linear(init="identity").init(None, 6, 3)["kernel"]
  np.testing.assert_array_equal(kernel, np.eye(6, 3))
  config = {"transform": {"linear": {"init": "identity"}}}
  spec = from_config("linear", config).spec(6, 3)
  assert spec["hparams"] == {"init": "identity"}
  assert linear().hparams == LinearHparams(init="uniform")
  with pytest.raises(InputError) as error:
    from_config("linear", {"transform": {"linear": {"init": "zeros"}}})
  assert str(error.value) == (
    "config.transform.linear.init must be one of uniform, identity, got 'zeros'"
  )
  with pytest.raises(InputError, match="^init must be one of uniform, identity"):
    linear(init="zeros")


def test_compose_applies_the_last_transform_first():
  dims = (10, 7, 4)  # B_2: 10 -> 7, then B_1: 7 -> 4
  chain = compose(linear(), mlp(hidden=5))
  params = chain.init(jax.random.key(2), *dims)
  assert params[1]["hidden"]["kernel"].shape == (10, 5)  # B_2 is the mlp
  assert params[0]["kernel"].shape == (7, 4)
  z = jax.random.normal(jax.random.key(3), (3, 10))
  by_hand = linear().apply(params[0], mlp(hidden=5).apply(params[1], z))
  np.testing.assert_allclose(chain.apply(params, z), by_hand, rtol=1e-6)
  np.testing.assert_array_equal(compose().apply((), z), z)
  with pytest.raises(InputError, match="needs 3 dims"):
    chain.init(jax.random.key(0), 10, 4)


def test_collapse_linear_equals_step_by_step():
  keys = jax.random.split(jax.random.key(4), 3)
  # W_1: 5 -> 3, W_2: 6 -> 5, W_3: 8 -> 6; the chain is B_1 o B_2 o B_3.
  kernels = [
    jax.random.normal(keys[0], (5, 3)),
    jax.random.normal(keys[1], (6, 5)),
    jax.random.normal(keys[2], (8, 6)),
  ]
  z = jax.random.normal(jax.random.key(5), (7, 8))
  chain = compose(linear(), linear(), linear())
  step_by_step = chain.apply(tuple({"kernel": w} for w in kernels), z)
  np.testing.assert_allclose(z @ collapse_linear(kernels), step_by_step, rtol=1e-4)


def test_get_transform_lists_valid_names():
  with pytest.raises(
    InputError,
    match="unknown transform 'conv'; valid transform names: linear, mlp, notrans, orthogonal, softorthogonal",
  ):
    get_transform("conv")


def _groups(key, n, d):
  keys = jax.random.split(key, 3)
  return [jax.random.normal(k, (n, d)) for k in keys]


def test_single_step_loss_is_sum_of_group_means():
  prev = _groups(jax.random.key(6), 4, 3)
  cur = _groups(jax.random.key(7), 4, 5)
  params = _random_linear(jax.random.key(8), 5, 3)
  want = sum(
    np.mean((np.asarray(p) - np.asarray(c) @ np.asarray(params["kernel"])) ** 2)
    for p, c in zip(prev, cur)
  )
  got = single_step_loss(linear(), params, prev, cur)
  assert float(got) == pytest.approx(want, rel=1e-5)


def test_multi_step_loss_equals_linear_residual_form():
  # Version k = 3 with dims d_0..d_3 = 3, 4, 6, 8.
  dims = (3, 4, 6, 8)
  keys = jax.random.split(jax.random.key(9), 4)
  w = {
    k: np.asarray(_random_linear(keys[k], dims[k], dims[k - 1])["kernel"])
    for k in (1, 2, 3)
  }
  prev = _groups(jax.random.key(10), 5, dims[2])
  cur = _groups(jax.random.key(11), 5, dims[3])
  got = multi_step_loss(
    linear(),
    {"kernel": w[3]},
    linear(),
    ({"kernel": w[2]}, {"kernel": w[1]}),
    prev,
    cur,
  )
  # Residual form: r = z_2 - z_3 W_3, pushed through W_2 then W_1.
  residual = [np.asarray(p) - np.asarray(c) @ w[3] for p, c in zip(prev, cur)]
  errors = []
  for through in ([], [w[2]], [w[2], w[1]]):
    pushed = residual
    for m in through:
      pushed = [r @ m for r in pushed]
    errors.append(sum(np.mean(r**2) for r in pushed))
  assert float(got) == pytest.approx(np.mean(errors), rel=1e-4)


def test_multi_step_loss_at_version_one_is_single_step():
  prev = _groups(jax.random.key(12), 4, 3)
  cur = _groups(jax.random.key(13), 4, 5)
  params = mlp(hidden=4).init(jax.random.key(14), 5, 3)
  single = single_step_loss(mlp(hidden=4), params, prev, cur)
  multi = multi_step_loss(mlp(hidden=4), params, mlp(hidden=4), (), prev, cur)
  assert float(multi) == pytest.approx(float(single), rel=1e-6)


def test_multi_step_loss_does_not_train_old_transforms():
  prev = _groups(jax.random.key(15), 4, 4)
  cur = _groups(jax.random.key(16), 4, 6)
  old = _random_linear(jax.random.key(17), 4, 3)
  new = _random_linear(jax.random.key(18), 6, 4)
  grads = jax.grad(lambda o: multi_step_loss(linear(), new, linear(), (o,), prev, cur))(
    old
  )
  np.testing.assert_array_equal(grads["kernel"], 0.0)
  assert float(group_mse(prev, prev)) == 0.0
