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
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state
from jax.sharding import Mesh

from bcjax import sharding
from bcjax.components.losses import AlignmentLoss, bpr_loss
from bcjax.components.transforms import BackwardTransform
from bcjax.models.device_graph import BipartiteGraph, sample_bpr_triples
from bcjax.models.pinsage import PinSAGE
from bcjax.models.row_gather import take_rows


class TrainState(train_state.TrainState):
  """Adam state of ``{"model", "transform"}`` parameters, plus batch norm's."""

  batch_stats: Any = None


@dataclasses.dataclass(frozen=True)
class Alignment:
  """How a joint strategy ties M_k to the previous version (static settings).

  Attributes:
    transform: the family of ``B_k`` (and of the frozen older ones).
    loss: the alignment loss (a registered one, e.g. ``sloss``, ``mloss``).
    weight: lambda, the weight of the alignment loss beside BPR.
  """

  transform: BackwardTransform
  loss: AlignmentLoss
  weight: float


class AlignmentTarget(struct.PyTreeNode):
  """What M_k is aligned to, as device arrays (an argument of the epoch).

  Attributes:
    user: ``(num_users, d_{k-1})`` embeddings of M_{k-1} on the current graph.
    item: ``(num_items, d_{k-1})``.
    old_params: parameters of the frozen ``B_{k-1}, ..., B_1``, newest first.
  """

  user: jax.Array
  item: jax.Array
  old_params: tuple = ()


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
    eval_chunk_size: users scored at once by the Recall@K evaluator.
    layout: how the step sums rows (see :mod:`bcjax.models.aggregation`);
      None: the backend's reproducible default.
    report_split: which validation users choose the kept epoch and which
      its reported Recall@K (see
      :func:`~bcjax.evaluation.recall.version_evaluators`).
    patience: stop once the kept epoch is this many epochs old at an
      evaluation (0: train all ``epochs``; see
      :func:`~bcjax.fitting.fit_loop.run_epochs`).
  """

  epochs: int
  eval_every: int
  batch_size: int = 2048
  learning_rate: float = 1e-3
  weight_decay: float = 1e-2
  keep_after: int = 0
  eval_chunk_size: int = 512
  layout: str | None = None
  report_split: str = "validation"
  patience: int = 0


@dataclasses.dataclass(frozen=True)
class FitResult:
  """The selected model of one version and how it got there.

  Attributes:
    variables: ``{"params", "batch_stats"}`` of the best epoch.
    transform_params: ``B_k``'s parameters at the best epoch (joint
      strategies; else the ones passed in).
    best_epoch: the epoch with the best validation Recall@50 (on the
      selection users of ``report_split``).
    recall: ``{K: Recall@K}`` at the best epoch, on the reported users.
    selection_recall: ``{K: Recall@K}`` at the best epoch, on the selection
      users (what weights are chosen on; ``recall`` itself under
      ``report_split="validation"``).
    max_epochs: the fit's cap (``FitConfig.epochs``): a fit whose history
      ends there was stopped by it, not by its patience.
    history: one ``{"epoch", "loss", "recall@50", "seconds"}`` per evaluation
      (Recall@50 of the selection users).
    train_seconds: wall time of training and evaluation.
    seconds_per_epoch: mean wall time of a training epoch (compilation
      excluded).
  """

  variables: dict
  transform_params: Any
  best_epoch: int
  recall: dict[int, float]
  history: tuple[dict[str, float], ...]
  train_seconds: float = 0.0
  seconds_per_epoch: float = 0.0
  selection_recall: dict[int, float] | None = None
  max_epochs: int | None = None


def progress_metadata(
  best: FitResult, best_score: float | None, history: list[dict]
) -> dict:
  """What a fit's epoch checkpoint keeps beside its arrays (JSON)."""
  return {
    "best_epoch": best.best_epoch,
    "best_score": best_score,
    "recall": {str(k): v for k, v in best.recall.items()},
    "selection_recall": {str(k): v for k, v in (best.selection_recall or {}).items()},
    "history": history,
  }


def result_from_progress(restored: dict, meta: dict) -> FitResult:
  """A resumed fit's kept epoch from its checkpoint (one made before
  ``selection_recall`` was kept reads ``recall``: the same users then)."""
  return FitResult(
    restored["variables"],
    restored["transform"],
    meta["best_epoch"],
    {int(k): v for k, v in meta["recall"].items()},
    (),
    selection_recall={
      int(k): v for k, v in meta.get("selection_recall", meta["recall"]).items()
    },
  )


def create_train_state(
  model: PinSAGE,
  variables: dict,
  tx: optax.GradientTransformation,
  transform_params: Any = None,
) -> TrainState:
  """A train state over ``{"model", "transform"}`` with typed leaves only.

  ``TrainState.create`` leaves ``step`` a Python int, which the first jitted
  epoch turns into an array: a second signature and a second compilation.
  """
  state = TrainState.create(
    apply_fn=model.apply,
    params={"model": variables["params"], "transform": transform_params},
    batch_stats=variables["batch_stats"],
    tx=tx,
  )
  return state.replace(step=jnp.zeros((), jnp.int32))


def steps_per_epoch(num_train: int, batch_size: int) -> int:
  """Batches per epoch: as many triples as training interactions, rounded up."""
  return max(1, -(-num_train // batch_size))


def make_train_epoch(
  model: PinSAGE,
  num_steps: int,
  batch_size: int,
  weight_decay: float,
  alignment: Alignment | None = None,
  mesh: Mesh | None = None,
) -> Callable[..., tuple[TrainState, dict]]:
  """The jitted :func:`epoch_body`; ``state`` is donated."""
  body = epoch_body(model, num_steps, batch_size, weight_decay, alignment, mesh)
  return jax.jit(body, donate_argnums=0)


def epoch_body(
  model: PinSAGE,
  num_steps: int,
  batch_size: int,
  weight_decay: float,
  alignment: Alignment | None = None,
  mesh: Mesh | None = None,
) -> Callable[..., tuple[TrainState, dict]]:
  """One training epoch ``(state, graph, key, target)``, not jitted.

  :func:`make_train_epoch` jits it for one seed;
  :func:`bcjax.fitting.version_fit.make_batched_epoch` vmaps it over
  embedding seeds first, so both train with the same step.

  Args:
    model: the embedding model.
    num_steps: batches per epoch (static).
    batch_size: triples per batch (static).
    weight_decay: weight of the embedding L2 in the BPR loss.
    alignment: for joint strategies, the alignment loss added to BPR; its
      ``target`` argument is then an :class:`AlignmentTarget` (else None).
    mesh: shard every batch over this mesh's devices (data parallelism); the
      state, graph and target are expected replicated on it.

  Returns:
    The epoch function ``(state, graph, key, target) -> (state, metrics)``;
    ``metrics`` holds the epoch means of ``loss``, ``bpr``, ``reg`` (and
    ``align``).
  """

  def train_step(graph, target, state: TrainState, batch):
    users, pos, neg = batch

    def loss_fn(params):
      (user_emb, item_emb), updates = model.apply(
        {"params": params["model"], "batch_stats": state.batch_stats},
        graph,
        train=True,
        mutable=["batch_stats"],
      )
      take = functools.partial(take_rows, layout=graph.layout)
      current = (take(user_emb, users), take(item_emb, pos), take(item_emb, neg))
      loss, parts = bpr_loss(*current, weight_decay)
      if alignment is not None:
        previous = (target.user[users], target.item[pos], target.item[neg])
        align = alignment.loss(
          alignment.transform,
          params["transform"],
          target.old_params,
          previous,
          current,
        )
        loss = loss + alignment.weight * align
        parts = dict(parts, align=align)
      return loss, (parts, updates["batch_stats"])

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (parts, batch_stats)), grads = grad_fn(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    return state, dict(parts, loss=loss)

  def train_epoch(state: TrainState, graph: BipartiteGraph, key: jax.Array, target):
    triples = sample_bpr_triples(graph, key, num_steps * batch_size)
    batches = jax.tree.map(lambda a: a.reshape(num_steps, batch_size), triples)
    if mesh is not None:
      batches = jax.lax.with_sharding_constraint(batches, sharding.batch_spec(mesh))
    step = functools.partial(train_step, graph, target)
    state, metrics = jax.lax.scan(step, state, batches)
    return state, jax.tree.map(jnp.mean, metrics)

  return train_epoch
