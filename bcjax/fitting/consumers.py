"""Consumer models: the unintended-task MLPs trained once on version 0.

The model is the paper's (:class:`~bcjax.fitting.consumer_model.ConsumerMLP`),
trained with Adam, batch 2048, the epoch with the best selection metric
kept. Hidden size and dropout are chosen on the selection examples from a
grid, averaging the selection metric over the seeds, and the chosen grid
point's seeds are the consumers.

For one hidden size, every (dropout, seed) pair trains at once under
``jax.vmap``: dropout is applied with a traced rate, so the grid compiles
once per hidden size and task, and the epoch is one jitted ``lax.scan``.
Inputs are gathered on device from the embedding tables, so edge tasks never
materialise their ``(num_edges, 2 * dim)`` features on the host.

:func:`fit_consumers` trains the consumers of several embedding seeds (one
table per seed, the same examples and consumer keys) as one program: a
second ``jax.vmap`` over the seeds' tables, one compilation for all of them.
Each seed selects its own epochs and grid point. One seed takes the
unbatched path, so a one-seed run is exactly :func:`fit_consumer`'s.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bcjax import keys
from bcjax.evaluation.metrics import evaluate_metric
from bcjax.fitting.consumer_model import (
  Consumer,
  ConsumerMLP,
  example_ids,
  gather_inputs,
  predict,
  predict_stacked,
)
from bcjax.fitting.fit_loop import EpochParts, run_epochs
from bcjax.fitting.selection import BestEpochs
from bcjax.fitting.tasks import Task, TaskExamples


@dataclasses.dataclass(frozen=True)
class ConsumerConfig:
  """Training and selection settings of the consumer models.

  Attributes:
    hidden_sizes: the hidden widths to choose from.
    dropouts: the dropout rates to choose from.
    seeds: models per grid point; the chosen point's are the consumers.
    epochs: training epochs.
    batch_size: examples per step.
    learning_rate: Adam learning rate.
  """

  hidden_sizes: Sequence[int] = (128, 256, 512, 1024)
  dropouts: Sequence[float] = (0.0, 0.25, 0.5)
  seeds: int = 10
  epochs: int = 300
  batch_size: int = 2048
  learning_rate: float = 1e-3


def _loss(kind: str, logits, labels):
  if kind == "binary":
    return optax.sigmoid_binary_cross_entropy(logits[:, 0], labels).mean()
  if kind == "multiclass":
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return optax.sigmoid_binary_cross_entropy(logits, labels).mean()


def _labels(task: Task, examples: TaskExamples):
  dtype = jnp.int32 if task.kind == "multiclass" else jnp.float32
  return jnp.asarray(examples.labels, dtype)


class _Trainer:
  """Vmapped training of one hidden size over (dropout, seed) pairs.

  With ``stacked``, a leading axis of embedding seeds on the state and the
  tables (the keys, dropouts and examples are shared).
  """

  def __init__(
    self,
    task: Task,
    hidden: int,
    config: ConsumerConfig,
    num_train: int,
    stacked: bool = False,
  ):
    self.task = task
    self.model = ConsumerMLP(hidden, task.num_outputs)
    self.tx = optax.adam(config.learning_rate)
    self.batch_size = min(config.batch_size, num_train)
    self.num_steps = -(-num_train // self.batch_size)
    epoch = jax.vmap(self._epoch, in_axes=(0, 0, 0, None, None, None))
    static = dict(task_input=task.input, hidden=hidden, num_outputs=task.num_outputs)
    if stacked:
      epoch = jax.vmap(epoch, in_axes=(0, None, None, 0, None, None))
      self.predict = functools.partial(predict_stacked, **static)
    else:
      self.predict = functools.partial(predict, **static)
    self.epoch = jax.jit(epoch)

  def init(self, key, dim):
    variables = self.model.init(key, jnp.zeros((2, dim)), 0.0, train=False)
    return {
      "params": variables["params"],
      "batch_stats": variables["batch_stats"],
      "opt_state": self.tx.init(variables["params"]),
    }

  def _epoch(self, state, key, dropout, tables, ids, labels):
    n = labels.shape[0]
    k_order, k_extra, k_drop = jax.random.split(key, 3)
    # A permutation, topped up with random examples to whole batches, so every
    # batch is full and no mask is needed (batch norm sees real rows only).
    extra = self.num_steps * self.batch_size - n
    order = jnp.concatenate(
      [jax.random.permutation(k_order, n), jax.random.randint(k_extra, (extra,), 0, n)]
    ).reshape(self.num_steps, self.batch_size)

    def step(state, inputs):
      batch, step_key = inputs
      x = gather_inputs(self.task.input, tables, ids[0][batch], ids[1][batch])

      def loss_fn(params):
        logits, updates = self.model.apply(
          {"params": params, "batch_stats": state["batch_stats"]},
          x,
          dropout,
          train=True,
          rngs={"dropout": step_key},
          mutable=["batch_stats"],
        )
        return _loss(self.task.kind, logits, labels[batch]), updates["batch_stats"]

      (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"]
      )
      updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
      params = optax.apply_updates(state["params"], updates)
      return {
        "params": params,
        "batch_stats": batch_stats,
        "opt_state": opt_state,
      }, loss

    step_keys = jax.random.split(k_drop, self.num_steps)
    state, losses = jax.lax.scan(step, state, (order, step_keys))
    return state, losses.mean()


@functools.partial(jax.jit, donate_argnums=0)
def _keep_improved(best, current, improved):
  """``current`` where ``improved`` (the leading axes' mask), else ``best``."""

  def pick(b, c):
    return jnp.where(
      improved.reshape(improved.shape + (1,) * (b.ndim - improved.ndim)), c, b
    )

  return jax.tree.map(pick, best, current)


@dataclasses.dataclass
class _GridPoint:
  """The best (hidden, dropout) so far and its seeds' kept models."""

  mean: float
  hidden: int
  dropout: float
  variables: dict
  scores: np.ndarray
  epochs: np.ndarray


def fit_consumer(
  task: Task,
  train_tables,
  selection_tables,
  config: ConsumerConfig,
  key: jax.Array,
  report: Callable[[int, int, dict], None] | None = None,
) -> Consumer:
  """Trains the task's consumers and selects hidden size and dropout.

  Args:
    task: the task (training and selection examples).
    train_tables: ``(user_emb, item_emb)`` version-0 embeddings read by the
      training examples.
    selection_tables: the embeddings read by the selection examples.
    config: grid, seeds and optimiser settings.
    key: PRNG key; grid point ``(h, r)`` and seed ``s`` derive theirs from it.
    report: called after every epoch of every hidden size with ``(hidden,
      epoch, {"train_loss", "selection/d<dropout>_s<seed>"...})``.

  Returns:
    The :class:`Consumer` of the best grid point.
  """
  return fit_consumers(
    task, [train_tables], [selection_tables], config, key, reports=[report]
  )[0]


def fit_consumers(
  task: Task,
  train_tables: Sequence,
  selection_tables: Sequence,
  config: ConsumerConfig,
  key: jax.Array,
  reports: Sequence[Callable[[int, int, dict], None] | None] | None = None,
) -> list[Consumer]:
  """:func:`fit_consumer` of several embedding seeds, trained as one program.

  Every seed's consumers read their own tables and get the same keys (the
  consumer seeds do not depend on the embedding seed); each seed keeps its
  own epochs and grid point, so seed ``i``'s result is ``fit_consumer`` of
  its tables alone up to rounding (batched matmuls may sum in another
  order; one seed takes the unbatched path and is exactly it).

  Args:
    task: the task, shared by the seeds.
    train_tables: per seed, its ``(user_emb, item_emb)`` training tables; all
      of one shape.
    selection_tables: per seed, its selection tables.
    config: grid, seeds and optimiser settings.
    key: PRNG key, shared.
    reports: per seed, its ``report`` (see :func:`fit_consumer`) or None.

  Returns:
    Per seed, its :class:`Consumer`.
  """
  num = len(train_tables)
  reports = list(reports) if reports is not None else [None] * num
  if len(selection_tables) != num or len(reports) != num:
    raise ValueError(
      f"fit_consumers got {num} training tables, {len(selection_tables)} "
      f"selection tables and {len(reports)} reports; expected one of each per seed"
    )
  stacked = num > 1
  if stacked:
    train_input = jax.tree.map(lambda *a: jnp.stack(a), *train_tables)
    selection_input = jax.tree.map(lambda *a: jnp.stack(a), *selection_tables)
  else:
    train_input, selection_input = train_tables[0], selection_tables[0]
  train, selection = task.train, task.evaluation[task.selection_version]
  train_ids, train_labels = example_ids(train), _labels(task, train)
  selection_ids = example_ids(selection)
  dim = gather_inputs(
    task.input, train_tables[0], train_ids[0][:1], train_ids[1][:1]
  ).shape[-1]
  pairs = list(itertools.product(config.dropouts, range(config.seeds)))
  dropouts = jnp.asarray([p[0] for p in pairs], jnp.float32)
  best: list[_GridPoint | None] = [None] * num
  grids: list[dict] = [{} for _ in range(num)]
  for hidden in config.hidden_sizes:
    trainer = _Trainer(task, hidden, config, len(train), stacked=stacked)
    model_keys = [keys.consumer_model_key(key, hidden, seed) for _, seed in pairs]
    state = jax.vmap(trainer.init, in_axes=(0, None))(jnp.stack(model_keys), dim)
    if stacked:
      # The same initial models for every embedding seed.
      state = jax.tree.map(lambda a: jnp.broadcast_to(a, (num, *a.shape)), state)
    kept = {"params": state["params"], "batch_stats": state["batch_stats"]}
    kept = jax.tree.map(jnp.copy, kept)

    def train_epoch(state, epoch, trainer=trainer, model_keys=model_keys):
      epoch_keys = jnp.stack([keys.epoch_key(k, epoch) for k in model_keys])
      state, losses = trainer.epoch(
        state, epoch_keys, dropouts, train_input, train_ids, train_labels
      )
      return state, {"loss": losses}

    def evaluate(state, epoch, fetched, trainer=trainer, hidden=hidden):
      current = {"params": state["params"], "batch_stats": state["batch_stats"]}
      outputs = np.asarray(trainer.predict(current, selection_input, selection_ids))
      outputs = outputs.reshape(num * len(pairs), *outputs.shape[-2:])
      # A model whose outputs are not finite has no selection metric.
      metric = np.array(
        [
          _or_nan(evaluate_metric(task.metric, selection.labels, o))
          if np.all(np.isfinite(o))
          else np.nan
          for o in outputs
        ]
      )
      losses = np.asarray(fetched[-1]["loss"]).reshape(num, len(pairs))
      for i, report in enumerate(reports):
        if report is None:
          continue
        seed_metric = metric[i * len(pairs) : (i + 1) * len(pairs)]
        curves = {
          f"selection/d{rate:g}_s{seed}": m
          for (rate, seed), m in zip(pairs, seed_metric, strict=True)
          if np.isfinite(m)
        }
        report(hidden, epoch, {"train_loss": float(np.mean(losses[i])), **curves})
      return metric, current

    def keep(state, epoch, current, taken):
      nonlocal kept
      taken = np.asarray(taken).reshape((num, len(pairs)) if stacked else (-1,))
      kept = _keep_improved(kept, current, jnp.asarray(taken))

    best_epochs = BestEpochs.start(num * len(pairs))
    run_epochs(
      state,
      EpochParts(
        train_epoch, lambda epoch: True, evaluate, keep, stop_on_divergence=False
      ),
      best_epochs,
      epochs=config.epochs,
    )
    scores = best_epochs.scores.reshape(num, len(pairs))
    epochs = best_epochs.epochs.reshape(num, len(pairs))
    for i in range(num):
      seed_kept = jax.tree.map(lambda a, i=i: a[i], kept) if stacked else kept
      best[i] = _best_of_hidden(
        best[i], grids[i], hidden, config, pairs, seed_kept, scores[i], epochs[i]
      )
  return [
    Consumer(
      task=task,
      hidden=point.hidden,
      dropout=point.dropout,
      variables=point.variables,
      selection=[float(s) if np.isfinite(s) else None for s in point.scores],
      best_epochs=[int(e) for e in point.epochs],
      grid=grid,
    )
    for point, grid in zip(best, grids, strict=True)
  ]


def _best_of_hidden(best, grid, hidden, config, pairs, kept, scores, epochs):
  """The best grid point so far after hidden size ``hidden`` (``grid`` filled).

  Args:
    best: the best :class:`_GridPoint` of the hidden sizes before, or None.
    grid: ``"hidden/dropout" -> mean selection metric``, added to here.
    hidden: the hidden size just trained.
    config: the consumers' settings.
    pairs: the ``(dropout, seed)`` of each model.
    kept: the models' kept variables, ``(len(pairs), ...)``.
    scores: ``(len(pairs),)`` their selection metrics.
    epochs: ``(len(pairs),)`` their kept epochs.
  """
  for rate in config.dropouts:
    rows = np.array([i for i, p in enumerate(pairs) if p[0] == rate])
    mean = float(np.mean(scores[rows]))
    grid[f"{hidden}/{rate}"] = mean if np.isfinite(mean) else None
    if best is None or mean > best.mean:
      best = _GridPoint(
        mean=mean,
        hidden=hidden,
        dropout=float(rate),
        variables=jax.tree.map(lambda a, rows=rows: np.asarray(a[rows]), kept),
        scores=scores[rows],
        epochs=epochs[rows],
      )
  return best


def _or_nan(value):
  return np.nan if value is None else value
