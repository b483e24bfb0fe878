"""Training of the embedding model of one version on the intended task.

One epoch is one jitted call: it samples the epoch's BPR triples on device and
runs every batch under ``lax.scan``, each step a full-graph PinSAGE pass (as
in the paper) and an Adam update. The epoch compiles once per version (node
and edge counts are static per version) and there is no host round trip per
batch; the host only reads the losses at evaluation epochs.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax.training import train_state

from bcjax.data.bipartite import BipartiteGraph, sample_bpr_triples
from bcjax.data.split import VersionSplit
from bcjax.evaluation.recall import RecallEvaluator
from bcjax.losses import bpr_loss
from bcjax.models.pinsage import PinSAGE, embed, init_variables


class TrainState(train_state.TrainState):
  """Adam state of the model parameters, plus the batch-norm statistics."""

  batch_stats: Any = None


class TrainingDivergedError(RuntimeError):
  """A loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """Optimisation settings of one version.

  Attributes:
    epochs: training epochs.
    eval_every: evaluate validation Recall@K every this many epochs (and
      after the last).
    batch_size: BPR triples per step.
    learning_rate: Adam learning rate.
    weight_decay: weight of the batch-embedding L2 in the BPR loss.
    keep_after: only epochs after this one may be selected as the best.
  """

  epochs: int
  eval_every: int
  batch_size: int = 2048
  learning_rate: float = 1e-3
  weight_decay: float = 1e-2
  keep_after: int = 0


@dataclasses.dataclass
class FitResult:
  """The selected model of one version and how it got there.

  Attributes:
    variables: ``{"params", "batch_stats"}`` of the best epoch.
    best_epoch: the epoch with the best validation Recall@50.
    recall: ``{K: Recall@K}`` at the best epoch.
    history: one ``{"epoch", "loss", "recall@50", "seconds"}`` per evaluation.
    train_seconds: wall time of training and evaluation.
    seconds_per_epoch: mean wall time of a training epoch (compilation
      excluded).
  """

  variables: dict
  best_epoch: int
  recall: dict[int, float]
  history: list[dict[str, float]]
  train_seconds: float
  seconds_per_epoch: float


def create_train_state(
  model: PinSAGE, variables: dict, tx: optax.GradientTransformation
) -> TrainState:
  """A train state whose every leaf is a typed array.

  ``TrainState.create`` leaves ``step`` a Python int, which the first jitted
  epoch turns into an array: a second signature and a second compilation.
  """
  state = TrainState.create(
    apply_fn=model.apply,
    params=variables["params"],
    batch_stats=variables["batch_stats"],
    tx=tx,
  )
  return state.replace(step=jnp.zeros((), jnp.int32))


def steps_per_epoch(num_train: int, batch_size: int) -> int:
  """Batches per epoch: as many triples as training interactions, rounded up."""
  return max(1, -(-num_train // batch_size))


def make_train_epoch(
  model: PinSAGE, num_steps: int, batch_size: int, weight_decay: float
) -> Callable[[TrainState, BipartiteGraph, jax.Array], tuple[TrainState, dict]]:
  """Builds the jitted ``train_epoch(state, graph, key) -> (state, metrics)``.

  Args:
    model: the embedding model.
    num_steps: batches per epoch (static).
    batch_size: triples per batch (static).
    weight_decay: weight of the embedding L2 in the BPR loss.

  Returns:
    The jitted epoch function; ``state`` is donated. ``metrics`` holds the
    epoch means of ``loss``, ``bpr`` and ``reg``.
  """

  def train_step(graph, state: TrainState, batch):
    users, pos, neg = batch

    def loss_fn(params):
      (user_emb, item_emb), updates = model.apply(
        {"params": params, "batch_stats": state.batch_stats},
        graph,
        train=True,
        mutable=["batch_stats"],
      )
      loss, parts = bpr_loss(
        user_emb[users], item_emb[pos], item_emb[neg], weight_decay
      )
      return loss, (parts, updates["batch_stats"])

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (parts, batch_stats)), grads = grad_fn(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    return state, dict(parts, loss=loss)

  @functools.partial(jax.jit, donate_argnums=0)
  def train_epoch(state: TrainState, graph: BipartiteGraph, key: jax.Array):
    triples = sample_bpr_triples(graph, key, num_steps * batch_size)
    batches = jax.tree.map(lambda a: a.reshape(num_steps, batch_size), triples)
    state, metrics = jax.lax.scan(functools.partial(train_step, graph), state, batches)
    return state, jax.tree.map(jnp.mean, metrics)

  return train_epoch


def fit_version(
  model: PinSAGE,
  split: VersionSplit,
  config: FitConfig,
  key: jax.Array,
  *,
  variables: dict | None = None,
  label: str = "",
) -> FitResult:
  """Trains ``model`` on a version's split and keeps the best epoch.

  Args:
    model: the embedding model of the version.
    split: the version's training and validation interactions.
    config: optimisation settings.
    key: PRNG key of this version; initialisation uses ``fold_in(key, 0)``
      and epoch ``e >= 1`` uses ``fold_in(key, e)``.
    variables: starting variables (fine-tuning); fresh ones when None.
    label: prefix of progress lines, e.g. ``"nobc v2"``.

  Returns:
    The :class:`FitResult` of the best epoch by validation Recall@50.

  Raises:
    TrainingDivergedError: when a loss is not finite.
  """
  graph = BipartiteGraph.from_split(split)
  evaluator = RecallEvaluator(split)
  if variables is None:
    variables = init_variables(model, graph, jax.random.fold_in(key, 0))
  # A fresh Adam state in every fit, also when fine-tuning.
  state = create_train_state(model, variables, optax.adam(config.learning_rate))
  num_steps = steps_per_epoch(split.num_train, config.batch_size)
  train_epoch = make_train_epoch(
    model, num_steps, config.batch_size, config.weight_decay
  )

  best = FitResult(variables, 0, {}, [], 0.0, 0.0)
  best_score = -np.inf
  pending = []
  start = time.perf_counter()
  epoch_seconds, timed_epochs = 0.0, 0
  for epoch in range(1, config.epochs + 1):
    state, metrics = train_epoch(state, graph, jax.random.fold_in(key, epoch))
    pending.append(metrics)
    if epoch == 1:
      # Compilation happens in the first epoch; keep it out of the epoch time.
      jax.block_until_ready(metrics)
      segment_start, segment_epochs = time.perf_counter(), 0
    else:
      segment_epochs += 1
    if epoch % config.eval_every and epoch != config.epochs:
      continue
    losses = np.asarray(jax.device_get([m["loss"] for m in pending]))
    pending = []
    epoch_seconds += time.perf_counter() - segment_start
    timed_epochs += segment_epochs
    if not np.all(np.isfinite(losses)):
      raise TrainingDivergedError(
        f"{label}: the training loss became {losses[-1]} by epoch {epoch}; "
        f"the best model so far (epoch {best.best_epoch}) is kept"
      )
    current = {"params": state.params, "batch_stats": state.batch_stats}
    recall = evaluator(*embed(model, current, graph))
    elapsed = time.perf_counter() - start
    best.history.append(
      {
        "epoch": epoch,
        "loss": float(losses[-1]),
        "recall@50": recall[50],
        "seconds": elapsed,
      }
    )
    logging.info(
      "%s epoch %d loss %.4f recall@50 %.4f time %.1fs",
      label,
      epoch,
      losses[-1],
      recall[50],
      elapsed,
    )
    if epoch > config.keep_after and recall[50] > best_score:
      best_score = recall[50]
      # The state is donated to the next epoch, so the best model is copied.
      best.variables = jax.tree.map(jnp.copy, current)
      best.best_epoch, best.recall = epoch, recall
    segment_start, segment_epochs = time.perf_counter(), 0
  best.train_seconds = time.perf_counter() - start
  best.seconds_per_epoch = epoch_seconds / timed_epochs if timed_epochs else 0.0
  return best
