"""How long the paper's whole protocol would take, from measured parts.

The paper's comparison (DESIGN §2, §5) trains, per run: M_0 for 500 epochs
(shared by every strategy), nobc's M_1..M_4 (500 each; the post-hoc
strategies reuse them), finetune-m0's four updates (250 each), and the three
joint strategies' M_1..M_4 (500 each): 9,500 model epochs, each evaluated
every 10 epochs. Then the five core tasks' consumers, each a grid of
4 hidden sizes x 3 dropouts x 10 seeds trained for 300 epochs. The
projection multiplies measured times by these counts, at the measured graph
and model size for every version (an upper bound: earlier versions have
smaller graphs and, in the paper, smaller models). Post-hoc fits of B_k
(2 strategies x 4 versions x 200 epochs of a batch-sized matmul) and the
consumers' evaluation at later versions are left out: both are matmuls on
small batches, seconds beside the rest.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from bcjax.fitting.consumers import ConsumerConfig, fit_consumer
from bcjax.fitting.tasks import Task, TaskExamples

MODEL_EPOCHS = 500 + 4 * 500 + 4 * 250 + 3 * 4 * 500
EVAL_EVERY = 10
CONSUMER_EPOCHS = 300
CONSUMER_GRID = dict(hidden_sizes=(128, 256, 512, 1024), dropouts=(0.0, 0.25, 0.5))
CONSUMER_SEEDS = 10


@dataclasses.dataclass(frozen=True)
class Projection:
  """Projected seconds of each part of the paper's protocol.

  Attributes:
    model_s: every model epoch (training steps).
    eval_s: every evaluation (Recall@K over all validation users).
    consumer_s: every core task's consumer grid.
    consumer_epoch_s_per_example: measured grid epoch time per example.
  """

  model_s: float
  eval_s: float
  consumer_s: float
  consumer_epoch_s_per_example: float

  @property
  def total_s(self) -> float:
    return self.model_s + self.eval_s + self.consumer_s


def consumer_epoch_seconds(
  num_examples: int, dim: int, *, seeds: int = CONSUMER_SEEDS, epochs: int = 4
) -> float:
  """Measured seconds of one epoch of the whole consumer grid.

  An edge task (the largest input, user || item) on random embeddings and
  labels, fitted for 1 epoch to compile, then timed for 1 and ``1 + epochs``
  epochs: the difference leaves out compilation and set-up. (Without the
  first fit, the first timed one also compiles and the difference is
  meaningless: an H200 run at 9f904a2 gave 0.)

  Args:
    num_examples: training (and selection) examples.
    dim: embedding width.
    seeds: models per grid point.
    epochs: extra epochs of the second fit.
  """
  rng = np.random.default_rng(0)
  num_nodes = max(num_examples // 4, 2)

  def examples():
    return TaskExamples(
      0,
      rng.integers(0, num_nodes, num_examples).astype(np.int32),
      rng.integers(0, num_nodes, num_examples).astype(np.int32),
      rng.integers(0, 2, num_examples).astype(np.int32),
    )

  task = Task("bench", "edge", "binary", "rocauc", 1, 0, True, examples(), {})
  task = dataclasses.replace(task, evaluation={0: examples()})
  tables = tuple(
    jax.numpy.asarray(rng.normal(size=(num_nodes, dim)), jax.numpy.float32)
    for _ in range(2)
  )
  seconds = []
  for count in (1, 1, 1 + epochs):
    config = ConsumerConfig(**CONSUMER_GRID, seeds=seeds, epochs=count)
    tick = time.perf_counter()
    fit_consumer(task, tables, tables, config, jax.random.key(0))
    seconds.append(time.perf_counter() - tick)
  return max(seconds[2] - seconds[1], 0.0) / epochs


def project(
  *,
  epoch_s: float,
  eval_s: float,
  consumer_epoch_s_per_example: float,
  consumer_examples: int,
) -> Projection:
  """The paper's protocol from measured epoch, evaluation and consumer times.

  Args:
    epoch_s: one training epoch of the intended task.
    eval_s: one Recall@K evaluation.
    consumer_epoch_s_per_example: grid epoch seconds per training example.
    consumer_examples: training examples of the five core tasks together.
  """
  return Projection(
    model_s=MODEL_EPOCHS * epoch_s,
    eval_s=MODEL_EPOCHS // EVAL_EVERY * eval_s,
    consumer_s=CONSUMER_EPOCHS * consumer_examples * consumer_epoch_s_per_example,
    consumer_epoch_s_per_example=consumer_epoch_s_per_example,
  )
