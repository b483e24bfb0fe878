"""Consumer models: the unintended-task MLPs trained once on version 0.

The model is the paper's: Linear -> BatchNorm -> ReLU -> Dropout, Linear ->
BatchNorm -> Dropout, then a Linear output of logits; Adam, batch 2048, the
epoch with the best selection metric kept. Hidden size and dropout are chosen
on the selection examples from a grid, averaging the selection metric over
the seeds, and the chosen grid point's seeds are the consumers.

For one hidden size, every (dropout, seed) pair trains at once under
``jax.vmap``: dropout is applied with a traced rate, so the grid compiles
once per hidden size and task, and the epoch is one jitted ``lax.scan``.
Inputs are gathered on device from the embedding tables, so edge tasks never
materialise their ``(num_edges, 2 * dim)`` features on the host.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bcjax import keys
from bcjax.errors import TrainingDivergedError
from bcjax.evaluation.metrics import evaluate_metric
from bcjax.evaluation.unintended import mean_over_seeds
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

  @classmethod
  def from_config(cls, config) -> ConsumerConfig:
    """The settings of an experiment config's ``consumer`` field."""
    c = config.consumer
    return cls(
      hidden_sizes=tuple(c.hidden_sizes),
      dropouts=tuple(c.dropouts),
      seeds=c.seeds,
      epochs=c.epochs,
      batch_size=c.batch_size,
      learning_rate=c.learning_rate,
    )


class ConsumerMLP(nn.Module):
  """The paper's consumer MLP.

  Attributes:
    hidden: hidden width.
    num_outputs: logits per example.
  """

  hidden: int
  num_outputs: int

  @nn.compact
  def __call__(self, x: jax.Array, dropout: jax.Array, *, train: bool) -> jax.Array:
    """Logits ``(n, num_outputs)`` of inputs ``(n, d)``.

    Args:
      x: the input embeddings.
      dropout: the dropout rate, a traced scalar (so it can be vmapped).
      train: batch statistics and dropout (else running averages, no drop).
    """

    def drop(h):
      if not train:
        return h
      keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - dropout, h.shape)
      return jnp.where(keep, h / (1.0 - dropout), 0.0)

    def norm(h):
      return nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)

    x = drop(nn.relu(norm(nn.Dense(self.hidden)(x))))
    x = drop(norm(nn.Dense(self.hidden)(x)))
    return nn.Dense(self.num_outputs)(x)


def gather_inputs(task_input: str, tables, user, item) -> jax.Array:
  """The consumer inputs of examples: user, item or user || item embeddings."""
  user_emb, item_emb = tables
  if task_input == "user":
    return user_emb[user]
  if task_input == "item":
    return item_emb[item]
  return jnp.concatenate([user_emb[user], item_emb[item]], axis=-1)


def _loss(kind: str, logits, labels):
  if kind == "binary":
    return optax.sigmoid_binary_cross_entropy(logits[:, 0], labels).mean()
  if kind == "multiclass":
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return optax.sigmoid_binary_cross_entropy(logits, labels).mean()


def _ids(examples: TaskExamples):
  zeros = np.zeros(len(examples), np.int32)
  user = zeros if examples.user is None else examples.user
  item = zeros if examples.item is None else examples.item
  return jnp.asarray(user), jnp.asarray(item)


def _labels(task: Task, examples: TaskExamples):
  dtype = jnp.int32 if task.kind == "multiclass" else jnp.float32
  return jnp.asarray(examples.labels, dtype)


class _Trainer:
  """Vmapped training of one hidden size over (dropout, seed) pairs."""

  def __init__(self, task: Task, hidden: int, config: ConsumerConfig, num_train: int):
    self.task = task
    self.model = ConsumerMLP(hidden, task.num_outputs)
    self.tx = optax.adam(config.learning_rate)
    self.batch_size = min(config.batch_size, num_train)
    self.num_steps = -(-num_train // self.batch_size)
    self.epoch = jax.jit(jax.vmap(self._epoch, in_axes=(0, 0, 0, None, None, None)))
    self.predict = functools.partial(
      predict, task_input=task.input, hidden=hidden, num_outputs=task.num_outputs
    )

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


@functools.partial(jax.jit, static_argnames=("task_input", "hidden", "num_outputs"))
def predict(variables, tables, ids, *, task_input, hidden, num_outputs):
  """Logits ``(models, n, num_outputs)`` of models stacked on a leading axis.

  Module-level and keyed by static settings, so every evaluation of a task's
  consumers at one size of inputs shares one compilation.
  """
  model = ConsumerMLP(hidden, num_outputs)
  x = gather_inputs(task_input, tables, ids[0], ids[1])
  return jax.vmap(lambda v: model.apply(v, x, 0.0, train=False))(variables)


@functools.partial(jax.jit, donate_argnums=0)
def _keep_improved(best, current, improved):
  def pick(b, c):
    return jnp.where(improved.reshape((-1,) + (1,) * (b.ndim - 1)), c, b)

  return jax.tree.map(pick, best, current)


@dataclasses.dataclass
class Consumer:
  """The trained consumers of one task (one per seed).

  Attributes:
    task: the task.
    hidden: the chosen hidden width.
    dropout: the chosen dropout rate.
    variables: ``{"params", "batch_stats"}`` with a leading seed axis.
    selection: per seed, the best selection metric.
    best_epochs: per seed, the epoch kept.
    grid: per ``"hidden/dropout"``, the mean selection metric over seeds.
  """

  task: Task
  hidden: int
  dropout: float
  variables: dict
  selection: list[float]
  best_epochs: list[int]
  grid: dict[str, float]

  def outputs(self, tables, examples: TaskExamples) -> np.ndarray:
    """Logits ``(seeds, n, num_outputs)`` of every seed's model."""
    out = predict(
      self.variables,
      tables,
      _ids(examples),
      task_input=self.task.input,
      hidden=self.hidden,
      num_outputs=self.task.num_outputs,
    )
    return np.asarray(out)

  def scores(self, tables, examples: TaskExamples) -> list[float | None]:
    """The task metric of every consumer seed; None where it is undefined.

    Raises:
      TrainingDivergedError: when a consumer's outputs are not finite.
    """
    outputs = self.outputs(tables, examples)
    if not np.all(np.isfinite(outputs)):
      raise TrainingDivergedError(
        f"the consumers of task {self.task.name} give non-finite outputs at "
        f"version {examples.version}"
      )
    return [evaluate_metric(self.task.metric, examples.labels, out) for out in outputs]

  def evaluate(self, tables, examples: TaskExamples) -> float | None:
    """The task metric averaged over seeds; None where any is undefined."""
    return mean_over_seeds(self.scores(tables, examples))


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
  train, selection = task.train, task.evaluation[task.selection_version]
  train_ids, train_labels = _ids(train), _labels(task, train)
  selection_ids = _ids(selection)
  dim = gather_inputs(
    task.input, train_tables, train_ids[0][:1], train_ids[1][:1]
  ).shape[-1]
  pairs = list(itertools.product(config.dropouts, range(config.seeds)))
  dropouts = jnp.asarray([p[0] for p in pairs], jnp.float32)
  best = None
  grid = {}
  for hidden in config.hidden_sizes:
    trainer = _Trainer(task, hidden, config, len(train))
    model_keys = [keys.consumer_model_key(key, hidden, seed) for _, seed in pairs]
    state = jax.vmap(trainer.init, in_axes=(0, None))(jnp.stack(model_keys), dim)
    kept = {"params": state["params"], "batch_stats": state["batch_stats"]}
    kept = jax.tree.map(jnp.copy, kept)

    def train_epoch(state, epoch, trainer=trainer, model_keys=model_keys):
      epoch_keys = jnp.stack([keys.epoch_key(k, epoch) for k in model_keys])
      state, losses = trainer.epoch(
        state, epoch_keys, dropouts, train_tables, train_ids, train_labels
      )
      return state, {"loss": losses}

    def evaluate(state, epoch, fetched, trainer=trainer, hidden=hidden):
      current = {"params": state["params"], "batch_stats": state["batch_stats"]}
      outputs = np.asarray(trainer.predict(current, selection_tables, selection_ids))
      # A model whose outputs are not finite has no selection metric.
      metric = np.array(
        [
          _or_nan(evaluate_metric(task.metric, selection.labels, o))
          if np.all(np.isfinite(o))
          else np.nan
          for o in outputs
        ]
      )
      if report is not None:
        curves = {
          f"selection/d{rate:g}_s{seed}": m
          for (rate, seed), m in zip(pairs, metric, strict=True)
          if np.isfinite(m)
        }
        loss = float(np.mean(fetched[-1]["loss"]))
        report(hidden, epoch, {"train_loss": loss, **curves})
      return metric, current

    def keep(state, epoch, current, taken):
      nonlocal kept
      kept = _keep_improved(kept, current, jnp.asarray(taken))

    best_epochs = BestEpochs.start(len(pairs))
    run_epochs(
      state,
      EpochParts(
        train_epoch, lambda epoch: True, evaluate, keep, stop_on_divergence=False
      ),
      best_epochs,
      epochs=config.epochs,
    )
    scores, epochs = best_epochs.scores, best_epochs.epochs
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
  return Consumer(
    task=task,
    hidden=best.hidden,
    dropout=best.dropout,
    variables=best.variables,
    selection=[float(s) if np.isfinite(s) else None for s in best.scores],
    best_epochs=[int(e) for e in best.epochs],
    grid=grid,
  )


def _or_nan(value):
  return np.nan if value is None else value
