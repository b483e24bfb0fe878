"""Consumers on disk: one Orbax checkpoint per task, checked by fingerprint.

A task's consumers (:class:`~bcjax.fitting.consumers.Consumer`: the chosen grid
point's variables for every consumer seed, and how they were chosen) are
trained once on version 0 and reused by every strategy and by reruns; the
fingerprint of the config and data they were trained under travels with them.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from bcjax.errors import InputError
from bcjax.fitting.consumers import Consumer
from bcjax.fitting.tasks import Task
from bcjax.storage.checkpoints import JSON, TREE, checkpoint_manager


def save_consumer(path: str, consumer: Consumer, fingerprint: str) -> None:
  """Saves a task's consumers as one Orbax checkpoint (atomic).

  The calling process alone writes it (the main job's process 0).
  """
  metadata = {
    "task": consumer.task.name,
    "hidden": consumer.hidden,
    "dropout": consumer.dropout,
    "selection": consumer.selection,
    "best_epochs": consumer.best_epochs,
    "grid": consumer.grid,
    "fingerprint": fingerprint,
  }
  with _manager(path) as manager:
    manager.save(
      0,
      args=ocp.args.Composite(
        variables=ocp.args.StandardSave(consumer.variables),
        metadata=ocp.args.JsonSave(metadata),
      ),
      force=True,
    )
    manager.wait_until_finished()


def load_consumer(path: str, task: Task, fingerprint: str) -> Consumer | None:
  """The task's saved consumers, or None if absent or from another config."""
  if not os.path.isdir(path):
    return None
  with _manager(path) as manager:
    if 0 not in manager.all_steps():
      return None
    metadata = manager.restore(
      0, args=ocp.args.Composite(metadata=ocp.args.JsonRestore())
    )["metadata"]
    if metadata.get("fingerprint") != fingerprint:
      raise InputError(
        f"{path} holds consumers of another config (fingerprint "
        f"{metadata.get('fingerprint')} there, {fingerprint} now); use a "
        "fresh workdir"
      )
    variables = manager.restore(
      0, args=ocp.args.Composite(variables=ocp.args.StandardRestore())
    )["variables"]
  return Consumer(
    task=task,
    hidden=metadata["hidden"],
    dropout=metadata["dropout"],
    variables=jax.tree.map(np.asarray, variables),
    selection=metadata["selection"],
    best_epochs=metadata["best_epochs"],
    grid=metadata["grid"],
  )


def _manager(path: str) -> ocp.CheckpointManager:
  # Consumers are trained, saved and read by one process (process 0 of a
  # multi-process job): Orbax must not wait for the others.
  return checkpoint_manager(
    path, {"variables": TREE, "metadata": JSON}, this_process_only=True
  )
