"""Every embedding version of a strategy on disk, as Orbax checkpoints.

One :class:`VersionStore` per (run, strategy), one ``CheckpointManager`` step
per version, every version kept. A step holds named items:

* ``model``: M_k's variables ``{"params", "batch_stats"}``;
* ``transform``: B_k's parameters (absent when B_k has none to learn);
* ``embeddings``: ``{"user": (num_users, d_k), "item": (num_items, d_k)}``,
  z_k on the version's graph, so versions can be served without the data;
* ``metadata``: JSON (strategy, dims, layers, transform, slice, metrics,
  dataset fingerprint).

Orbax writes each step into a temporary folder and renames it when complete,
so a step is either entirely there or not at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from bcjax.components import transforms
from bcjax.components.transforms import BackwardTransform
from bcjax.errors import InputError

# What a named item holds: a pytree of arrays, or JSON.
TREE, JSON = "tree", "json"
ITEMS = {"model": TREE, "transform": TREE, "embeddings": TREE, "metadata": JSON}


def _handler_registry(
  items: Mapping[str, str], multiprocessing: ocp.options.MultiprocessingOptions
) -> ocp.handlers.DefaultCheckpointHandlerRegistry:
  """Each named item's handler, for saving and for restoring.

  Registered up front, so Orbax knows every item of a step: a restore of one
  item then reads the others' metadata without warning that it cannot.
  """
  registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
  for name, kind in items.items():
    if kind == TREE:
      handler = ocp.StandardCheckpointHandler(multiprocessing_options=multiprocessing)
      save, restore = ocp.args.StandardSave, ocp.args.StandardRestore
    elif kind == JSON:
      handler = ocp.JsonCheckpointHandler(multiprocessing_options=multiprocessing)
      save, restore = ocp.args.JsonSave, ocp.args.JsonRestore
    else:
      raise ValueError(f"item {name!r} is of kind {kind!r}; expected {TREE} or {JSON}")
    registry.add(name, save, handler)
    registry.add(name, restore, handler)
  return registry


def checkpoint_manager(
  directory: str,
  items: Mapping[str, str],
  *,
  keep_latest: int | None = None,
  create: bool = True,
  this_process_only: bool = False,
) -> ocp.CheckpointManager:
  """The one way bcjax opens an Orbax ``CheckpointManager``.

  Saves are synchronous (a version, an epoch or a consumer is on disk when
  ``save`` returns, so a kill right after it loses nothing), and old steps are
  kept by a preservation policy.

  Args:
    directory: the manager's folder.
    items: the named items of every step, each ``TREE`` or ``JSON``.
    keep_latest: keep only this many newest steps (None: keep every step).
    create: create the folder if missing.
    this_process_only: the calling process alone uses the manager (a reader,
      or process 0's consumer stage of a multi-process job): it is its own
      primary host, and Orbax's barriers wait for no other process. Else
      every process of the job takes part in every call, as saves of global
      arrays need.
  """
  policy = (
    ocp.checkpoint_managers.preservation_policy.PreserveAll()
    if keep_latest is None
    else ocp.checkpoint_managers.preservation_policy.LatestN(keep_latest)
  )
  multiprocessing = ocp.options.MultiprocessingOptions()
  if this_process_only:
    me = jax.process_index()
    multiprocessing = ocp.options.MultiprocessingOptions(
      primary_host=me, active_processes={me}
    )
    if create:
      # Orbax refuses create=True for a subset of processes.
      os.makedirs(directory, exist_ok=True)
      create = False
  options = ocp.CheckpointManagerOptions(
    preservation_policy=policy,
    create=create,
    enable_async_checkpointing=False,
    multiprocessing_options=multiprocessing,
  )
  return ocp.CheckpointManager(
    directory,
    options=options,
    handler_registry=_handler_registry(items, multiprocessing),
  )


def abstract(tree: Any) -> Any:
  """``tree``'s shapes and dtypes: the target a restore fills in."""
  return jax.tree.map(ocp.tree.to_shape_dtype_struct, tree)


class VersionStore:
  """The versions of one strategy under ``directory``."""

  def __init__(self, directory: str, *, create: bool = True):
    """Opens (or creates) the store.

    A store that may create its folder is a writer: every process of a
    multi-process job opens it and takes part in each save. One opened with
    ``create=False`` is a reader, used by the calling process alone (the
    registry, the analytics), so a reader on one process waits for no other.

    Args:
      directory: the folder of this strategy's versions.
      create: create the folder if missing; else a missing folder is an error.
    """
    self.directory = os.path.abspath(directory)
    if not create and not os.path.isdir(self.directory):
      raise InputError(f"no checkpoint folder at {self.directory}")
    self._manager = checkpoint_manager(
      self.directory, ITEMS, create=create, this_process_only=not create
    )

  def close(self):
    self._manager.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def versions(self) -> list[int]:
    """The versions saved completely, in increasing order."""
    self._manager.reload()
    return sorted(self._manager.all_steps())

  def save(
    self,
    version: int,
    *,
    model: dict,
    transform: Any,
    embeddings: tuple[jax.Array, jax.Array],
    metadata: dict,
  ) -> None:
    """Saves version ``version`` (replacing nothing: versions are immutable)."""
    if version in self.versions():
      raise InputError(
        f"version {version} already exists in {self.directory}; saved versions "
        "are never overwritten"
      )
    items = {
      "model": ocp.args.StandardSave(model),
      "embeddings": ocp.args.StandardSave(
        {"user": embeddings[0], "item": embeddings[1]}
      ),
      "metadata": ocp.args.JsonSave(metadata),
    }
    if jax.tree.leaves(transform):
      items["transform"] = ocp.args.StandardSave(transform)
    self._manager.save(version, args=ocp.args.Composite(**items), force=True)
    self._manager.wait_until_finished()

  def metadata(self, version: int) -> dict:
    """The JSON metadata of ``version``."""
    return self._restore(version, "metadata", ocp.args.JsonRestore())

  def restore(self, version: int, item: str) -> Any:
    """Restores ``item`` (``model``, ``transform`` or ``embeddings``) as NumPy.

    Returns:
      The pytree as saved, with NumPy leaves; None for a ``transform`` that
      was not saved (a transform without parameters).
    """
    trees = [name for name, kind in ITEMS.items() if kind == TREE]
    if item not in trees:
      raise InputError(f"unknown checkpoint item {item!r}; valid: {', '.join(trees)}")
    self._check_exists(version)
    try:
      listed = self._manager.metadata(version).item_metadata
    except (FileNotFoundError, ValueError, OSError) as e:
      raise InputError(
        f"checkpoint item {item!r} of version {version} in {self.directory} "
        f"is missing or corrupt: {type(e).__name__}: {e}"
      ) from e
    # An item that was not saved has no metadata: Orbax lists it as None or,
    # before 0.12, not at all.
    try:
      saved = listed[item]
    except KeyError:
      saved = None
    if saved is None:
      # A transform without parameters is never saved; an item folder whose
      # metadata cannot be read is damaged.
      step = os.path.join(self.directory, str(version), item)
      if item == "transform" and not os.path.exists(step):
        return None
      raise InputError(
        f"checkpoint item {item!r} of version {version} in {self.directory} "
        "is missing or corrupt"
      )
    # Host arrays as the target: the saved sharding may name devices of
    # other processes (a multi-process save), which a reader cannot use.
    target = jax.tree.map(lambda a: np.empty(a.shape, a.dtype), saved)
    tree = self._restore(version, item, ocp.args.StandardRestore(target))
    return jax.tree.map(np.asarray, tree)

  def transform(self, version: int) -> tuple[BackwardTransform, Any]:
    """B_version's family (from the metadata) and its parameters.

    A transform without learned parameters (a truncation) is rebuilt by its
    family's ``init``, which is deterministic for it.
    """
    spec = self.metadata(version)["transform"]
    transform = transforms.from_spec(spec)
    params = self.restore(version, "transform")
    if params is None:
      params = transform.init(jax.random.key(0), spec["d_in"], spec["d_out"])
    return transform, params

  def _check_exists(self, version: int) -> None:
    if version not in self.versions():
      raise InputError(
        f"version {version} does not exist in {self.directory}; saved "
        f"versions: {self.versions()}"
      )

  def _restore(self, version: int, item: str, args) -> Any:
    self._check_exists(version)
    try:
      restored = self._manager.restore(version, args=ocp.args.Composite(**{item: args}))
    except (FileNotFoundError, ValueError, OSError, KeyError) as e:
      raise InputError(
        f"checkpoint item {item!r} of version {version} in {self.directory} "
        f"is missing or corrupt: {type(e).__name__}: {e}"
      ) from e
    return restored[item]
