"""Post-hoc fitting of a backward transform B_k by gradient descent.

A post-hoc strategy trains M_k as nobc does, then fits B_k on the frozen
embeddings ``z_k`` to match ``z_{k-1}`` (M_{k-1} re-run on the current graph),
with any registered alignment loss, as the reference's ``posthoc_sloss.py``
and ``posthoc_mloss.py`` do: every epoch draws ``ceil(num_train /
batch_size)`` batches of the version's BPR triples (user, positive item,
negative item: three groups of rows in the loss), Adam at 1e-3 (the
reference's fixed rate) for 200 epochs, and the kept epoch is the one with the
lowest alignment error (the mean of the user and the item MSE over all
nodes), checked every ``eval_every`` epochs after epoch 50.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bcjax import keys
from bcjax.components.losses import AlignmentLoss
from bcjax.components.transforms import BackwardTransform
from bcjax.errors import TrainingDivergedError
from bcjax.evaluation.alignment import alignment_error
from bcjax.fitting.fit_loop import EpochParts, run_epochs
from bcjax.fitting.seed_axis import SeedAxis, check_per_seed
from bcjax.fitting.selection import BestEpoch, BestEpochs
from bcjax.fitting.train import steps_per_epoch
from bcjax.models.device_graph import BipartiteGraph, sample_bpr_triples


@dataclasses.dataclass(frozen=True)
class PosthocFit:
  """A fitted post-hoc transform.

  Attributes:
    params: B_k's parameters at the kept epoch.
    best_epoch: the kept epoch.
    error: its alignment error (mean of the user and the item MSE).
    steps_per_epoch: optimiser steps in every epoch.
    checked: ``(epoch, alignment error)`` of every epoch the selection
      criterion was evaluated at, in order.
    max_epochs: the fit's cap (``PosthocConfig.epochs``).
  """

  params: Any
  best_epoch: int
  error: float
  steps_per_epoch: int = 0
  checked: tuple[tuple[int, float], ...] = ()
  max_epochs: int | None = None


@dataclasses.dataclass(frozen=True)
class PosthocConfig:
  """Settings of a post-hoc transform fit.

  Attributes:
    epochs: training epochs (paper: 200).
    keep_after: only epochs after this one may be kept (paper: 50).
    eval_every: the alignment error is checked at epochs that are multiples
      of this (paper: 10, the reference's ``log_every``).
    batch_size: BPR triples per step.
    learning_rate: Adam learning rate (reference: 1e-3, whatever the models').
    patience: stop at the first check that finds the kept epoch this many
      epochs old; 0 trains every epoch (the reference).
    min_delta: a check's error must be below the kept one by more than this
      fraction of it to be kept (:mod:`bcjax.fitting.selection`); 0 keeps
      any lower error (the reference).
  """

  epochs: int = 200
  keep_after: int = 50
  eval_every: int = 10
  batch_size: int = 2048
  learning_rate: float = 1e-3
  patience: int = 0
  min_delta: float = 0.0

  def checks(self, epoch: int, best: BestEpoch) -> bool:
    """Whether the selection criterion is evaluated after ``epoch``.

    The reference's condition, ``epoch % log_every == 0 and epoch > 50``;
    when no such epoch exists (the reference then has no transform and
    fails), the last epoch is checked instead.
    """
    if not best.eligible(epoch):
      return False
    return epoch % self.eval_every == 0 or (epoch == self.epochs and best.epoch == 0)


def epoch_triples(
  graph: BipartiteGraph, key: jax.Array, num_steps: int, batch_size: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One epoch of post-hoc batches: the version's BPR training triples.

  Drawn as the embedding models' training draws them
  (:func:`bcjax.models.device_graph.sample_bpr_triples`).

  Args:
    graph: version k's training graph.
    key: a PRNG key, used once.
    num_steps: batches in the epoch (static).
    batch_size: triples per batch (static).

  Returns:
    ``(user, pos, neg)``, each ``(num_steps, batch_size)`` int32.
  """
  triples = sample_bpr_triples(graph, key, num_steps * batch_size)
  return jax.tree.map(lambda a: a.reshape(num_steps, batch_size), triples)


def posthoc_epoch_body(
  transform: BackwardTransform,
  loss: AlignmentLoss,
  tx: optax.GradientTransformation,
  num_steps: int,
  batch_size: int,
) -> Callable[..., tuple[Any, Any, jax.Array]]:
  """One post-hoc epoch, not jitted (:func:`fit_posthoc_seeds` jits it for
  one seed, and vmaps it over the seeds first for several).

  Returns:
    ``epoch(p, opt_state, key, graph, current, previous, old_params) -> (p,
    opt_state, mean loss)``. The embeddings and the graph are arguments, not
    closed-over constants, so that large graphs are not baked into the
    compiled program.
  """

  def loss_fn(p, batch, current, previous, old_params):
    users, pos, neg = batch
    prev = (previous[0][users], previous[1][pos], previous[1][neg])
    cur = (current[0][users], current[1][pos], current[1][neg])
    return loss(transform, p, old_params, prev, cur)

  def train_epoch(p, opt_state, key, graph, current, previous, old_params):
    batches = epoch_triples(graph, key, num_steps, batch_size)

    def step(carry, batch):
      p, opt_state = carry
      grad_fn = jax.value_and_grad(loss_fn)
      loss, grads = grad_fn(p, batch, current, previous, old_params)
      updates, opt_state = tx.update(grads, opt_state, p)
      return (optax.apply_updates(p, updates), opt_state), loss

    (p, opt_state), losses = jax.lax.scan(step, (p, opt_state), batches)
    return p, opt_state, jnp.mean(losses)

  return train_epoch


def fit_posthoc(
  transform: BackwardTransform,
  params: Any,
  current: tuple[jax.Array, jax.Array],
  previous: tuple[jax.Array, jax.Array],
  graph: BipartiteGraph,
  config: PosthocConfig,
  key: jax.Array,
  *,
  loss: AlignmentLoss,
  old_params: tuple = (),
  label: str = "",
) -> PosthocFit:
  """:func:`fit_posthoc_seeds` of one seed: its arguments, unwrapped."""
  return fit_posthoc_seeds(
    transform,
    [params],
    [current],
    [previous],
    graph,
    config,
    [key],
    loss=loss,
    old_params=[old_params],
    labels=[label],
  )[0]


def fit_posthoc_seeds(
  transform: BackwardTransform,
  params: Sequence[Any],
  current: Sequence[tuple[jax.Array, jax.Array]],
  previous: Sequence[tuple[jax.Array, jax.Array]],
  graph: BipartiteGraph,
  config: PosthocConfig,
  seed_keys: Sequence[jax.Array],
  *,
  loss: AlignmentLoss,
  old_params: Sequence[tuple] | None = None,
  labels: Sequence[str] | None = None,
) -> list[PosthocFit]:
  """Fits ``B_k`` on frozen embeddings, for S seeds (S = 1: a seed alone).

  Every epoch runs ``ceil(num_train / batch_size)`` steps, each on
  ``batch_size`` BPR triples of ``graph`` (:func:`epoch_triples`); the loss
  is the alignment loss over the users, the positive and the negative items
  of the batch (three groups). The seeds' parameters sit on a leading axis
  (:class:`~bcjax.fitting.seed_axis.SeedAxis`; none for one seed, which runs
  the plain jitted epoch); each seed is checked at the epochs it would be
  alone (:meth:`PosthocConfig.checks`) and keeps its own epoch.

  Args:
    transform: the family of ``B_k`` (and of the older transforms), shared.
    params: each seed's initial parameters of ``B_k``.
    current: each seed's ``(user, item)`` embeddings of M_k,
      ``(num_users, d_k)`` and ``(num_items, d_k)``.
    previous: each seed's ``(user, item)`` embeddings of M_{k-1} on the
      same graph, ``(num_users, d_{k-1})`` and ``(num_items, d_{k-1})``.
    graph: version k's training graph (its interactions are the triples').
    config: epochs, selection and optimiser settings.
    seed_keys: each seed's PRNG key; epoch ``e`` uses ``fold_in(key, e)``.
    loss: the alignment loss.
    old_params: each seed's frozen ``B_{k-1}, ..., B_1`` parameters, newest
      first (for losses that read the older versions' spaces); None: none.
    labels: each seed's name in the error raised on divergence.

  Returns:
    S :class:`PosthocFit`, each of its kept epoch.

  Raises:
    InputError: when the per-seed sequences do not all have S entries.
    TrainingDivergedError: when a seed's loss or alignment error is not
      finite (naming it by its label).
  """
  n = len(seed_keys)
  labels = list(labels) if labels is not None else [f"seed {i}" for i in range(n)]
  old_params = list(old_params) if old_params is not None else [()] * n
  given = dict(params=params, current=current, previous=previous, old_params=old_params)
  check_per_seed("fit_posthoc_seeds", n, labels=labels, **given)
  axis = SeedAxis(n)
  num_steps = steps_per_epoch(graph.num_interactions, config.batch_size)
  tx = optax.adam(config.learning_rate)
  body = posthoc_epoch_body(transform, loss, tx, num_steps, config.batch_size)
  held = {name: axis.stack(value) for name, value in given.items()}
  if axis.alone:
    one_epoch = jax.jit(body)

    def epoch_fn(p, opt_state, epoch, arrays):
      key = keys.epoch_key(seed_keys[0], epoch)
      return one_epoch(p, opt_state, key, graph, *arrays)
  else:

    def one_seed(p, opt_state, key, epoch, graph, cur, prev, old):
      return body(p, opt_state, keys.epoch_key(key, epoch), graph, cur, prev, old)

    seeds_epoch = jax.jit(jax.vmap(one_seed, in_axes=(0, 0, 0, None, None, 0, 0, 0)))
    stacked_keys = jnp.stack(list(seed_keys))

    def epoch_fn(p, opt_state, epoch, arrays):
      return seeds_epoch(p, opt_state, stacked_keys, epoch, graph, *arrays)

  arrays = (held["current"], held["previous"], held["old_params"])
  best = BestEpochs.start(
    n, config.keep_after, config.epochs, min_delta=config.min_delta
  )
  best_params = list(params)
  checked: list[list] = [[] for _ in range(n)]

  def checks(epoch):
    # PosthocConfig.checks of each seed's own BestEpoch, before the offer;
    # a seed stopped by patience is checked no more, as alone.
    regular = epoch % config.eval_every == 0
    last = (epoch == config.epochs) & (best.epochs == 0)
    eligible = (epoch > best.keep_after) | last
    return eligible & (regular | last) & best.running()

  def train(state, epoch):
    p, opt_state, loss_ = epoch_fn(*state, epoch, arrays)
    return (p, opt_state), {"loss": loss_}

  def evaluate(state, epoch, fetched):
    scores = np.full(n, np.nan)  # NaN never beats a kept epoch: not checked
    for i in np.flatnonzero(checks(epoch)):
      # run_epochs has checked the losses; the error can still overflow.
      error = alignment_error(
        transform, axis.take(state[0], i), current[i], previous[i]
      )
      if not np.isfinite(error):
        raise TrainingDivergedError(
          f"{labels[i]}: the post-hoc transform's alignment error became {error} "
          f"by epoch {epoch}; nothing of this version was saved"
        )
      checked[i].append((epoch, error))
      scores[i] = -error
    return scores, None

  def keep(state, epoch, info, taken):
    for i in np.flatnonzero(taken):
      best_params[i] = axis.take(state[0], i)

  run_epochs(
    (held["params"], axis.vmap(tx.init, in_axes=(0,))(held["params"])),
    EpochParts(train, lambda epoch: bool(np.any(checks(epoch))), evaluate, keep),
    best,
    epochs=config.epochs,
    label=labels[0] if axis.alone else labels,
    patience=config.patience,
  )
  return [
    PosthocFit(
      best_params[i],
      int(best.epochs[i]),
      float(-best.scores[i]),
      num_steps,
      tuple(checked[i]),
      config.epochs,
    )
    for i in range(n)
  ]
