"""The ``mlp`` bridge family: a small MLP fitted by Adam with early stopping.

``Dense -> ReLU -> ... -> Dense`` without a residual connection (a residual
needs ``d_new == d_old``, and a bridge maps any widths). It is fitted on the
preprocessed rows it is given, minus a validation part it splits off itself
(seeded), and keeps the epoch with the lowest validation error; training
stops after ``patience`` epochs without improvement. One epoch is one jitted
``lax.scan`` over shuffled batches, compiled once.

An MLP is not affine, so its bridges cannot be exported as a matrix and a
bias, nor collapsed into a chain's matrix.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bcjax.align.families import Family, check_field, register_family
from bcjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class MLPHP:
  """Hyper-parameters of ``mlp``.

  Attributes:
    hidden: hidden width; 0 means ``max(d_new, d_old)``.
    layers: hidden layers (each ``Dense -> ReLU``), then an output ``Dense``.
    learning_rate: Adam's.
    weight_decay: decoupled weight decay (AdamW) when > 0.
    batch_size: rows per step (the fit rows when fewer).
    max_epochs: at most this many epochs.
    patience: stop after this many epochs without a better validation error.
    validation_fraction: share of the given rows held out for early stopping.
  """

  hidden: int = 0
  layers: int = 1
  learning_rate: float = 1e-3
  weight_decay: float = 0.0
  batch_size: int = 256
  max_epochs: int = 200
  patience: int = 10
  validation_fraction: float = 0.1

  def __post_init__(self):
    check_field(self, "hidden", minimum=0, integer=True)
    check_field(self, "layers", minimum=1, integer=True)
    check_field(self, "learning_rate", minimum=1e-12)
    check_field(self, "weight_decay", minimum=0.0)
    check_field(self, "batch_size", minimum=1, integer=True)
    check_field(self, "max_epochs", minimum=1, integer=True)
    check_field(self, "patience", minimum=1, integer=True)
    check_field(self, "validation_fraction", minimum=1e-9, below=1.0)


def widths(hp: MLPHP, d_new: int, d_old: int) -> list[int]:
  """Layer widths from input to output."""
  hidden = hp.hidden or max(d_new, d_old)
  return [d_new] + [hidden] * hp.layers + [d_old]


def init(rng: np.random.Generator, hp: MLPHP, d_new: int, d_old: int) -> dict:
  """LeCun-normal kernels (``N(0, 1 / fan_in)``), zero biases.

  Drawn on the host: a fit compiles only its epoch, which matters more than
  the draw on CPU, where every extra jitted function costs seconds.
  """
  sizes = widths(hp, d_new, d_old)
  return {
    f"layer{i}": {
      "kernel": (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32),
      "bias": np.zeros((b,), np.float32),
    }
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
  }


def apply(params: dict, x: jax.Array) -> jax.Array:
  """``(..., d_new) -> (..., d_old)``."""
  count = len(params)
  for i in range(count):
    layer = params[f"layer{i}"]
    x = x @ layer["kernel"] + layer["bias"]
    if i < count - 1:
      x = jax.nn.relu(x)
  return x


def num_params(hp: MLPHP, d_new: int, d_old: int) -> int:
  sizes = widths(hp, d_new, d_old)
  return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def split_rows(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``(fit, validation)`` row indices of ``n`` rows, seeded, both sorted."""
  held = min(max(1, round(fraction * n)), n - 1)
  order = np.random.default_rng(seed).permutation(n)
  return np.sort(order[held:]), np.sort(order[:held])


def _optimizer(hp: MLPHP) -> optax.GradientTransformation:
  if hp.weight_decay > 0:
    return optax.adamw(hp.learning_rate, weight_decay=hp.weight_decay)
  return optax.adam(hp.learning_rate)


def _loss(params, x, y):
  return jnp.mean((apply(params, x) - y) ** 2)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _epoch(hp, batch, params, state, order, x_fit, y_fit, x_val, y_val):
  """One epoch of Adam over the batches ``order`` ``(steps, batch)``, then
  the validation error.

  Module-level with the hyper-parameters static, so fits of one shape and
  one ``hp`` (auto's, a chain's) share one compilation.
  """
  optimizer = _optimizer(hp)

  def step(carry, rows):
    p, s = carry
    grads = jax.grad(_loss)(p, x_fit[rows], y_fit[rows])
    updates, s = optimizer.update(grads, s, p)
    return (optax.apply_updates(p, updates), s), None

  (params, state), _ = jax.lax.scan(step, (params, state), order)
  return params, state, _loss(params, x_val, y_val)


def _fit(data, hp: MLPHP, seed: int) -> dict:
  x, y = data.arrays()
  if len(x) < 2:
    raise InputError(f"the mlp family needs at least 2 rows to fit, got {len(x)}")
  fit_rows, val_rows = split_rows(len(x), hp.validation_fraction, seed)
  arrays = [
    jnp.asarray(a) for a in (x[fit_rows], y[fit_rows], x[val_rows], y[val_rows])
  ]
  batch = min(hp.batch_size, len(fit_rows))
  steps = len(fit_rows) // batch
  rng = np.random.default_rng(seed)
  params = jax.tree.map(jnp.asarray, init(rng, hp, x.shape[1], y.shape[1]))
  state = _optimizer(hp).init(params)
  best, best_error, since = params, math.inf, 0
  for _ in range(hp.max_epochs):
    # The last partial batch is dropped; a fresh permutation every epoch
    # means every row is seen.
    order = rng.permutation(len(fit_rows))[: steps * batch].reshape(steps, batch)
    params, state, error = _epoch(hp, batch, params, state, order, *arrays)
    error = float(error)
    if not math.isfinite(error):
      break
    if error < best_error:
      best, best_error, since = params, error, 0
    else:
      since += 1
      if since >= hp.patience:
        break
  return jax.tree.map(np.asarray, best)


register_family(
  Family(
    name="mlp",
    hparams=MLPHP,
    fn=_fit,
    apply=apply,
    num_params=num_params,
    grid=lambda d_new, d_old: (MLPHP(),),
  )
)
