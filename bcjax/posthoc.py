"""Post-hoc fitting of a backward transform B_k by gradient descent.

A post-hoc strategy trains M_k as nobc does, then fits B_k on the frozen
embeddings ``z_k`` to match ``z_{k-1}`` (M_{k-1} re-run on the current graph),
with any registered alignment loss. As in the paper's code: 200 epochs, and
the epoch with the lowest alignment error after epoch 50 is kept, where the
alignment error is the mean of the user and the item MSE over all nodes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bcjax.errors import TrainingDivergedError
from bcjax.evaluation.alignment import alignment_error
from bcjax.losses import AlignmentLoss
from bcjax.selection import BestEpoch
from bcjax.transforms import BackwardTransform


@dataclasses.dataclass(frozen=True)
class PosthocFit:
  """A fitted post-hoc transform.

  Attributes:
    params: B_k's parameters at the kept epoch.
    best_epoch: the kept epoch.
    error: its alignment error (mean of the user and the item MSE).
  """

  params: Any
  best_epoch: int
  error: float


@dataclasses.dataclass(frozen=True)
class PosthocConfig:
  """Settings of a post-hoc transform fit.

  Attributes:
    epochs: training epochs (paper: 200).
    keep_after: only epochs after this one may be kept (paper: 50).
    batch_size: users and items per step, each.
    learning_rate: Adam learning rate.
  """

  epochs: int = 200
  keep_after: int = 50
  batch_size: int = 2048
  learning_rate: float = 1e-3


def fit_posthoc(
  transform: BackwardTransform,
  params: Any,
  current: tuple[jax.Array, jax.Array],
  previous: tuple[jax.Array, jax.Array],
  config: PosthocConfig,
  key: jax.Array,
  *,
  loss: AlignmentLoss,
  old_params: tuple = (),
  label: str = "",
) -> PosthocFit:
  """Fits ``B_k`` on frozen embeddings.

  Every epoch visits ``ceil(max(num_users, num_items) / batch_size)`` batches,
  each of ``batch_size`` random users and as many random items; the loss is
  alignment loss over those two groups.

  Args:
    transform: the family of ``B_k`` (and of the older transforms).
    params: initial parameters of ``B_k``.
    current: ``(user, item)`` embeddings of M_k.
    previous: ``(user, item)`` embeddings of M_{k-1} on the same graph.
    config: epochs, selection and optimiser settings.
    key: PRNG key; epoch ``e`` uses ``fold_in(key, e)``.
    loss: the alignment loss.
    old_params: frozen ``B_{k-1}, ..., B_1`` parameters, newest first (for
      losses that read the older versions' spaces).
    label: names the fit in the error raised on divergence.

  Returns:
    The :class:`PosthocFit` of the kept epoch.

  Raises:
    TrainingDivergedError: when the loss or the alignment error is not finite.
  """
  num_rows = max(current[0].shape[0], current[1].shape[0])
  num_steps = max(1, -(-num_rows // config.batch_size))
  tx = optax.adam(config.learning_rate)

  # The embeddings are arguments, not closed-over constants, so that large
  # graphs are not baked into the compiled program.
  def loss_fn(p, batch, current, previous, old_params):
    users, items = batch
    prev = (previous[0][users], previous[1][items])
    cur = (current[0][users], current[1][items])
    return loss(transform, p, old_params, prev, cur)

  @jax.jit
  def train_epoch(p, opt_state, key, current, previous, old_params):
    k_user, k_item = jax.random.split(key)
    shape = (num_steps, config.batch_size)
    users = jax.random.randint(k_user, shape, 0, current[0].shape[0])
    items = jax.random.randint(k_item, shape, 0, current[1].shape[0])

    def step(carry, batch):
      p, opt_state = carry
      grad_fn = jax.value_and_grad(loss_fn)
      loss, grads = grad_fn(p, batch, current, previous, old_params)
      updates, opt_state = tx.update(grads, opt_state, p)
      return (optax.apply_updates(p, updates), opt_state), loss

    (p, opt_state), losses = jax.lax.scan(step, (p, opt_state), (users, items))
    return p, opt_state, jnp.mean(losses)

  opt_state = tx.init(params)
  best_params = params
  best = BestEpoch(config.keep_after, config.epochs)
  for epoch in range(1, config.epochs + 1):
    params, opt_state, loss = train_epoch(
      params,
      opt_state,
      jax.random.fold_in(key, epoch),
      current,
      previous,
      old_params,
    )
    if not best.eligible(epoch):
      continue
    error = alignment_error(transform, params, current, previous)
    if not (np.isfinite(float(loss)) and np.isfinite(error)):
      raise TrainingDivergedError(
        f"{label}: the post-hoc transform diverged (loss {float(loss)}, "
        f"alignment error {error}) by epoch {epoch}; nothing of this version "
        "was saved"
      )
    if best.offer(epoch, -error):
      best_params = params
  return PosthocFit(best_params, best.epoch, -best.score)
