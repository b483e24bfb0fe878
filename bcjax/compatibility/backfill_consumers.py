"""Partial backfilling read by consumers: the unintended tasks' curves.

:mod:`bcjax.compatibility.serving` moves version ``j``'s item index to the
newest version ``k`` row by row (a backfilled item holds its ``z_k``, the
others ``F(z_j)``) and measures Recall@50. A consumer reading that index
must live in version ``k``'s space, where the index is headed, so here each
task's consumers start at ``k``: trained on the strategy's saved ``z_k``
with version ``k``'s labels (``build_task(..., start=k)``, fitted once and
cached by :func:`bcjax.compatibility.measures.start_consumer`; strategies
with the same ``z_k``, nobc and the post-hoc ones, share one fit). At a
backfilled fraction ``f`` they read the users' ``z_k`` (users are queries,
always the new model's) and the items as
:func:`bcjax.align.backfill.gallery_at` mixes them, in the orders and at the
fractions of the Recall@50 curves; items new since ``j`` are not in the
index and hold their ``z_k`` throughout. At ``f = 1`` the tables are the
pure ``z_k`` ones.

**Which examples.** A version-``k`` consumer has no version after ``k`` to
be evaluated on, so it is scored on its own selection examples at version
``k`` (``task.evaluation[task.selection_version]``): for the edge task
version ``k``'s validation interactions, for the item-rating tasks the items
with enough ratings labelled on version ``k``'s training and validation
interactions together (mostly the training items, relabelled), for the
attribute tasks the held-out 20 % of nodes. Those examples chose the
consumer's epoch and grid point, so the level is optimistic; every order and
fraction is scored on the same examples with the same consumer, so the
curves and their areas compare with each other. Only examples that read an
index item (``index_examples``) can change along a curve.

**Which tasks.** Tasks that cannot start at ``k`` are skipped with
``build_task``'s reason (the activity tasks select on version ``k + 1``);
user-only tasks (the attribute tasks of users) read no item and would give
flat curves, and are skipped too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bcjax import registry
from bcjax.align.backfill import FRACTIONS, area, gallery_at
from bcjax.compatibility.measures import start_consumer
from bcjax.compatibility.serving import backfill_index
from bcjax.compatibility.stores import saved_tables
from bcjax.data.split import VersionSplit
from bcjax.errors import InputError
from bcjax.fitting.consumers import Consumer, ConsumerConfig
from bcjax.fitting.tasks import Task, build_task

USER_ONLY = "a user-only task reads no item: its curves would be flat"


def newest_tasks(
  names: Sequence[str], graph, splits: Sequence[VersionSplit], seed: int
) -> dict[str, Task | str]:
  """Each task built to start at the newest version, or why it is skipped.

  Args:
    names: task names.
    graph: the run's ``DynamicGraph``.
    splits: its version splits ``0..K-1``.
    seed: the run's seed (attribute-task node splits).

  Returns:
    name -> the :class:`Task` with ``start = K-1``, or the reason it is
    skipped (text).
  """
  k = len(splits) - 1
  out = {}
  for name in names:
    try:
      task = build_task(name, graph, splits, seed=seed, start=k)
    except InputError as e:
      out[name] = f"cannot start at the newest version {k}: {e}"
      continue
    out[name] = USER_ONLY if task.input == "user" else task
  return out


def newest_consumers(
  reg: registry.EmbeddingRegistry,
  tasks: Mapping[str, Task | str],
  config: ConsumerConfig,
  seed: int,
  cache_dir: str,
) -> dict[str, Consumer | str]:
  """The consumers of :func:`newest_tasks`, fitted on the strategy's ``z_k``.

  Every task that can start at ``k`` selects there too, so training and
  selection read the same saved tables.

  Returns:
    name -> :class:`Consumer`, or the task's skip reason.
  """
  out = {}
  for name, task in tasks.items():
    if isinstance(task, str):
      out[name] = task
      continue
    tables = saved_tables(reg, task.selection_version, task.selection_version)
    out[name] = start_consumer(task, tables, tables, config, seed, cache_dir)
  return out


def consumer_backfill_curves(
  consumer: Consumer,
  task: Task,
  users: np.ndarray,
  items: np.ndarray,
  forwarded: np.ndarray,
  orders: Mapping[str, np.ndarray],
  fractions: Sequence[float] = FRACTIONS,
) -> dict:
  """A version-``k`` consumer's metric as version ``j``'s index is backfilled.

  Args:
    consumer: the consumers of ``task`` (started at ``k``).
    task: the task built with ``start = k``.
    users: ``(num_users_k, d_k)`` the users' ``z_k``.
    items: ``(num_items_k, d_k)`` the items' ``z_k``; the first ``n_j`` are
      the index.
    forwarded: ``(n_j, d_k)`` the index items' ``F(z_j)``.
    orders: name -> ``(n_j,)`` permutation, backfilled first to last.
    fractions: rising from 0 to 1.

  Returns:
    ``metric``, ``examples`` (the selection examples scored),
    ``index_examples`` (those reading an index item), ``curves`` (order ->
    metric per fraction, None where undefined) and ``area`` (order -> area
    under its curve; None where a point is undefined).
  """
  items = np.asarray(items)
  n = len(forwarded)
  if items.ndim != 2 or n > len(items) or forwarded.shape[1:] != items.shape[1:]:
    raise InputError(
      f"forwarded {forwarded.shape} must be the first rows of items {items.shape}"
    )
  examples = task.evaluation[task.selection_version]
  fractions = [float(f) for f in fractions]

  def value(order, fraction):
    mixed = items.copy()
    mixed[:n] = gallery_at(items[:n], forwarded, order, fraction)
    return consumer.evaluate((users, mixed), examples)

  curves = {
    name: [value(order, f) for f in fractions] for name, order in orders.items()
  }
  return {
    "metric": task.metric,
    "examples": len(examples),
    "index_examples": int(np.sum(examples.item < n)),
    "curves": curves,
    "area": {
      name: None if None in c else area(fractions, c) for name, c in curves.items()
    },
  }


def consumer_backfilling(
  reg: registry.EmbeddingRegistry,
  consumers: Mapping[str, Consumer | str],
  tasks: Mapping[str, Task | str],
  j: int,
  k: int,
  seed: int = 0,
  fractions: Sequence[float] = FRACTIONS,
) -> dict:
  """:func:`consumer_backfill_curves` of one strategy's index version ``j < k``.

  Args:
    reg: the strategy's registry.
    consumers: :func:`newest_consumers`.
    tasks: :func:`newest_tasks`.
    j: the index version.
    k: the newest version.
    seed: seeds the ``random`` order, as the Recall@50 curves'.
    fractions: rising from 0 to 1.

  Returns:
    ``fractions`` and ``tasks``: name -> the curves, or ``{"skipped":
    reason}``.
  """
  _, forwarded, orders = backfill_index(reg, j, k, seed)
  users, items = saved_tables(reg, k, k)
  out = {}
  for name, consumer in consumers.items():
    if isinstance(consumer, str):
      out[name] = {"skipped": consumer}
    else:
      out[name] = consumer_backfill_curves(
        consumer, tasks[name], users, items, forwarded, orders, fractions
      )
  return {"fractions": [float(f) for f in fractions], "tasks": out}
