"""Epoch-level checkpoints of a fit in progress, so a killed run resumes.

A fit saves, at its evaluation epochs, everything it needs to go on as if it
had never stopped: the train state (parameters, Adam and batch-norm state),
the best model so far and the bookkeeping (best epoch, history). Epoch ``e``
draws its randomness from ``fold_in(epochs_key, e)``, so a resumed fit replays the
uninterrupted one exactly. One Orbax step per saved epoch, only the newest
kept; Orbax commits each step by renaming a finished temporary folder, so a
kill during a save leaves the previous step intact.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

from bcjax.storage.checkpoints import JSON, TREE, abstract, checkpoint_manager


class FitProgress:
  """The newest epoch checkpoint of one fit under ``directory``."""

  def __init__(self, directory: str):
    self.directory = os.path.abspath(directory)

  def _manager(self) -> ocp.CheckpointManager:
    return checkpoint_manager(
      self.directory, {"state": TREE, "best": TREE, "meta": JSON}, keep_latest=1
    )

  def latest_epoch(self) -> int | None:
    """The epoch of the newest complete checkpoint, or None."""
    if not os.path.isdir(self.directory):
      return None
    with self._manager() as manager:
      return manager.latest_step()

  def save(self, epoch: int, state: Any, best: Any, meta: dict) -> None:
    """Saves the fit as of the end of ``epoch``."""
    items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
    if jax.tree.leaves(best):
      items["best"] = ocp.args.StandardSave(best)
    with self._manager() as manager:
      manager.save(epoch, args=ocp.args.Composite(**items), force=True)
      manager.wait_until_finished()

  def restore(self, epoch: int, state: Any, best: Any) -> tuple[Any, Any, dict]:
    """Restores epoch ``epoch`` into the structures of ``state`` and ``best``.

    Args:
      epoch: a saved epoch.
      state: a train state of the right structure (e.g. a fresh one).
      best: the best-model pytree of the right structure.

    Returns:
      ``(state, best, meta)`` as saved.
    """
    items = {
      "state": ocp.args.StandardRestore(abstract(state)),
      "meta": ocp.args.JsonRestore(),
    }
    if jax.tree.leaves(best):
      items["best"] = ocp.args.StandardRestore(abstract(best))
    with self._manager() as manager:
      restored = manager.restore(epoch, args=ocp.args.Composite(**items))
    return restored["state"], restored.get("best", best), restored["meta"]

  def clear(self) -> None:
    """Removes the checkpoints (once the fit's result is saved elsewhere)."""
    shutil.rmtree(self.directory, ignore_errors=True)
