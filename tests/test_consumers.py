"""Consumer MLPs: learning, selection over the grid, saving and loading."""

import jax
import numpy as np
import pytest

from bcjax.errors import InputError
from bcjax.fitting.consumer_checkpoints import load_consumer, save_consumer
from bcjax.fitting.consumers import (
  ConsumerConfig,
  fit_consumer,
  fit_consumers,
)
from bcjax.fitting.tasks import Task, TaskExamples


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


def _seed_tables(rng, task_emb, num_seeds):
  """Each embedding seed's tables: the task's latent rotated, plus noise."""
  out = []
  for _ in range(num_seeds):
    rotation, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    user = task_emb @ rotation + 0.5 * rng.normal(size=task_emb.shape)
    out.append((user.astype(np.float32), np.zeros((1, 4), np.float32)))
  return out


def test_seeds_batched_are_each_seed_alone():
  rng = np.random.default_rng(4)
  task, (emb, _) = _separable_task(rng)
  tables = _seed_tables(rng, emb, 3)
  config = ConsumerConfig(
    hidden_sizes=(8, 16), dropouts=(0.0, 0.5), seeds=2, epochs=6, batch_size=128
  )
  key = jax.random.key(5)
  reported = [[], [], []]
  batched = fit_consumers(
    task,
    tables,
    tables,
    config,
    key,
    reports=[lambda h, e, s, i=i: reported[i].append((h, e, s)) for i in range(3)],
  )
  again = fit_consumers(task, tables, tables, config, key)
  for i, t in enumerate(tables):
    alone_reported = []
    alone = fit_consumer(
      task,
      t,
      t,
      config,
      key,
      report=lambda h, e, s, out=alone_reported: out.append((h, e, s)),
    )
    got = batched[i]
    # The seed's own selection: same grid point and kept epochs as alone.
    assert (got.hidden, got.dropout, got.best_epochs) == (
      alone.hidden,
      alone.dropout,
      alone.best_epochs,
    )
    # Batched matmuls may round otherwise than alone. The Dense biases before
    # a batch norm get gradients of rounding size, which Adam turns into
    # steps of the learning rate's size, and the running means follow them:
    # the models agree in what they compute, to about 1e-3 on logits of a
    # few units after 6 epochs (6e-4 seen), not bit for bit.
    evaluation = task.evaluation[0]
    np.testing.assert_allclose(
      got.outputs(t, evaluation), alone.outputs(t, evaluation), atol=2e-3
    )
    np.testing.assert_allclose(got.selection, alone.selection, atol=2e-3)
    assert set(got.grid) == set(alone.grid)
    np.testing.assert_allclose(
      [got.grid[k] for k in sorted(got.grid)],
      [alone.grid[k] for k in sorted(alone.grid)],
      atol=2e-3,
    )
    # Each seed's report gets its own curves, epoch by epoch.
    assert [(h, e) for h, e, _ in reported[i]] == [(h, e) for h, e, _ in alone_reported]
    assert reported[i][-1][2]["train_loss"] == pytest.approx(
      alone_reported[-1][2]["train_loss"], rel=1e-4
    )
    # A batched run is bit-identical to itself.
    jax.tree.map(np.testing.assert_array_equal, again[i].variables, got.variables)
  # The seeds' tables differ, so their consumers do.
  assert not np.allclose(
    batched[0].outputs(tables[0], task.train), batched[1].outputs(tables[0], task.train)
  )


def test_seeds_batched_need_one_table_and_report_per_seed():
  task, tables = _separable_task(np.random.default_rng(6))
  config = ConsumerConfig(hidden_sizes=(8,), dropouts=(0.0,), seeds=1, epochs=1)
  with pytest.raises(ValueError, match="2 training tables, 1 selection tables"):
    fit_consumers(task, [tables, tables], [tables], config, jax.random.key(0))


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
