"""Consumer MLPs: learning, selection over the grid, saving and loading."""

import jax
import numpy as np
import pytest

from bcjax.errors import InputError
from bcjax.fitting.consumers import (
  ConsumerConfig,
  fit_consumer,
)
from bcjax.fitting.tasks import Task, TaskExamples
from bcjax.storage.consumer_checkpoints import load_consumer, save_consumer


def _separable_task(rng, num_users=600):
  """Users whose label is the sign of their first embedding coordinate."""
  emb = rng.normal(size=(num_users, 4)).astype(np.float32)
  labels = (emb[:, 0] > 0).astype(np.int32)
  users = np.arange(num_users, dtype=np.int32)
  train = TaskExamples(0, users[:400], None, labels[:400])
  selection = TaskExamples(0, users[400:], None, labels[400:])
  task = Task("toy", "user", "binary", "rocauc", 1, 0, False, train, {0: selection})
  tables = (emb, np.zeros((1, 4), np.float32))
  return task, tables


def test_consumer_learns_and_selects_over_the_grid():
  task, tables = _separable_task(np.random.default_rng(0))
  config = ConsumerConfig(
    hidden_sizes=(8, 16),
    dropouts=(0.0, 0.5),
    seeds=2,
    epochs=15,
    batch_size=128,
    learning_rate=1e-2,
  )
  consumer = fit_consumer(task, tables, tables, config, jax.random.key(0))
  assert set(consumer.grid) == {"8/0.0", "8/0.5", "16/0.0", "16/0.5"}
  assert consumer.grid[f"{consumer.hidden}/{consumer.dropout}"] == max(
    consumer.grid.values()
  )
  assert len(consumer.selection) == 2 and min(consumer.selection) > 0.9
  assert all(1 <= e <= 15 for e in consumer.best_epochs)
  # The kept models reproduce their selection metric.
  assert consumer.evaluate(tables, task.evaluation[0]) == pytest.approx(
    np.mean(consumer.selection), abs=1e-6
  )


def test_consumer_metric_is_none_for_one_class():
  task, tables = _separable_task(np.random.default_rng(1))
  config = ConsumerConfig(
    hidden_sizes=(8,), dropouts=(0.0,), seeds=1, epochs=2, batch_size=128
  )
  consumer = fit_consumer(task, tables, tables, config, jax.random.key(0))
  one_class = TaskExamples(1, np.arange(5, dtype=np.int32), None, np.ones(5, np.int32))
  assert consumer.evaluate(tables, one_class) is None


def test_save_and_load_round_trip(tmp_path):
  task, tables = _separable_task(np.random.default_rng(2))
  config = ConsumerConfig(
    hidden_sizes=(8,), dropouts=(0.25,), seeds=2, epochs=3, batch_size=128
  )
  consumer = fit_consumer(task, tables, tables, config, jax.random.key(3))
  path = str(tmp_path / "toy")
  assert load_consumer(path, task, "abc") is None
  save_consumer(path, consumer, "abc")
  loaded = load_consumer(path, task, "abc")
  assert (loaded.hidden, loaded.dropout, loaded.grid) == (
    consumer.hidden,
    consumer.dropout,
    consumer.grid,
  )
  np.testing.assert_array_equal(
    loaded.outputs(tables, task.evaluation[0]),
    consumer.outputs(tables, task.evaluation[0]),
  )
  with pytest.raises(InputError, match="consumers of another config"):
    load_consumer(path, task, "other")
