"""The consumer model: the paper's MLP, its inputs, and its trained form.

A task's consumers are several MLPs of one shape (one per consumer seed)
whose variables are stacked on a leading axis; :func:`predict` runs them
all at once, and :class:`Consumer` is what training leaves (see
:mod:`bcjax.fitting.consumers`) and what is saved, served and scored.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bcjax.errors import TrainingDivergedError
from bcjax.evaluation.metrics import evaluate_metric
from bcjax.evaluation.unintended import mean_over_seeds
from bcjax.fitting.tasks import Task, TaskExamples


class ConsumerMLP(nn.Module):
  """The paper's consumer MLP.

  Linear -> BatchNorm -> ReLU -> Dropout, Linear -> BatchNorm -> Dropout,
  then a Linear output of logits.

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


def example_ids(examples: TaskExamples) -> tuple[jax.Array, jax.Array]:
  """``(user, item)`` ids of examples, ``(n,)`` each; zeros for a missing side."""
  zeros = np.zeros(len(examples), np.int32)
  user = zeros if examples.user is None else examples.user
  item = zeros if examples.item is None else examples.item
  return jnp.asarray(user), jnp.asarray(item)


_STATIC = ("task_input", "hidden", "num_outputs")


def _predict(variables, tables, ids, *, task_input, hidden, num_outputs):
  model = ConsumerMLP(hidden, num_outputs)
  x = gather_inputs(task_input, tables, ids[0], ids[1])
  return jax.vmap(lambda v: model.apply(v, x, 0.0, train=False))(variables)


@functools.partial(jax.jit, static_argnames=_STATIC)
def predict(variables, tables, ids, *, task_input, hidden, num_outputs):
  """Logits ``(models, n, num_outputs)`` of models stacked on a leading axis.

  Module-level and keyed by static settings, so every evaluation of a task's
  consumers at one size of inputs shares one compilation.
  """
  return _predict(
    variables,
    tables,
    ids,
    task_input=task_input,
    hidden=hidden,
    num_outputs=num_outputs,
  )


@functools.partial(jax.jit, static_argnames=_STATIC)
def predict_stacked(variables, tables, ids, *, task_input, hidden, num_outputs):
  """Logits ``(seeds, models, n, num_outputs)``: :func:`predict` per seed.

  ``variables`` and ``tables`` have a leading axis of embedding seeds.
  """
  one = functools.partial(
    _predict, task_input=task_input, hidden=hidden, num_outputs=num_outputs
  )
  return jax.vmap(one, in_axes=(0, 0, None))(variables, tables, ids)


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
      example_ids(examples),
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
    everything = np.ones(len(examples), bool)
    return self.scores_of_rows(tables, examples, {"all": everything})["all"]

  def scores_of_rows(
    self, tables, examples: TaskExamples, rows: Mapping[str, np.ndarray]
  ) -> dict[str, list[float | None]]:
    """Every seed's metric on each named subset of the examples, from one
    prediction (e.g. the selection and report halves).

    Args:
      tables: ``(user, item)`` embeddings the consumers read.
      examples: the examples.
      rows: name -> ``(len(examples),)`` boolean mask of the rows it scores.

    Returns:
      name -> the metric of every consumer seed (None where undefined, as for
      a subset whose labels have one class).

    Raises:
      TrainingDivergedError: when a consumer's outputs are not finite.
    """
    outputs = self.outputs(tables, examples)
    if not np.all(np.isfinite(outputs)):
      raise TrainingDivergedError(
        f"the consumers of task {self.task.name} give non-finite outputs at "
        f"version {examples.version}"
      )
    return {
      name: [
        evaluate_metric(self.task.metric, examples.labels[mask], out[mask])
        for out in outputs
      ]
      for name, mask in rows.items()
    }

  def evaluate(self, tables, examples: TaskExamples) -> float | None:
    """The task metric averaged over seeds; None where any is undefined."""
    return mean_over_seeds(self.scores(tables, examples))
