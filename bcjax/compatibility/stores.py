"""Opening a run's strategy folders: checks, saved tables, frozen models."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from bcjax import registry
from bcjax.components.transforms import from_spec
from bcjax.data.split import VersionSplit
from bcjax.errors import InputError
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.pinsage import PinSAGE, embed
from bcjax.storage.checkpoints import VersionStore

KINDS = ("user", "item")
RETRIEVAL_K = 50
Tables = tuple[np.ndarray, np.ndarray]


# -- opening and checking a run's strategies ----------------------------------


def check_strategy_folder(path: str) -> int:
  """Checks that ``path`` holds a bcjax chain; returns its latest version.

  Raises:
    InputError: a folder with fewer than two versions, or one whose versions
      lack a backward transform (a checkpoint not written by bcjax).
  """
  if not os.path.isdir(path):
    raise InputError(f"no strategy folder at {path}")
  with VersionStore(path, create=False) as store:
    versions = store.versions()
    if len(versions) < 2:
      raise InputError(
        f"{path} holds {len(versions)} version(s); compatibility analytics "
        "need at least two (versions 0 and 1)"
      )
    for k in versions[1:]:
      spec = store.metadata(k).get("transform")
      if not isinstance(spec, Mapping) or "name" not in spec:
        raise InputError(
          f"{path}: version {k} has no backward transform in its metadata "
          "(not a bcjax strategy folder?)"
        )
      family = from_spec(spec)
      learned = jax.tree.leaves(
        family.init(jax.random.key(0), spec["d_in"], spec["d_out"])
      )
      if learned and not os.path.isdir(os.path.join(path, str(k), "transform")):
        raise InputError(
          f"{path}: version {k} has no saved B_{k} parameters (a foreign "
          "checkpoint?); compatibility analytics need B_1..B_K"
        )
  return versions[-1]


def check_start_versions(starts: Sequence[int], num_versions: int) -> list[int]:
  """The start versions to analyse: all of ``0..K-2`` when ``starts`` is empty.

  Raises:
    InputError: a start version outside ``0..K-2``.
  """
  if num_versions < 2:
    raise InputError(
      f"compatibility analytics need at least two versions, got {num_versions}"
    )
  starts = list(starts) or list(range(num_versions - 1))
  for j in starts:
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)):
      raise InputError(f"start versions must be integers, got {j!r}")
    if not 0 <= j <= num_versions - 2:
      raise InputError(
        f"start version {j} is outside 0..{num_versions - 2}: a consumer "
        f"needs a later version to read among versions 0..{num_versions - 1}"
      )
  return sorted(set(int(j) for j in starts))


def digest(*arrays) -> str:
  """A short hash of arrays' shapes and bytes: equal only for equal arrays."""
  h = hashlib.sha256()
  for a in jax.tree.leaves(arrays):
    a = np.ascontiguousarray(np.asarray(a))
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


def saved_tables(reg: registry.EmbeddingRegistry, k: int, j: int) -> Tables:
  """``B_{j+1..k}(z_k)`` of users and items (the saved ``z_j`` when k == j)."""
  return tuple(reg.compatible_embeddings(k, j, kind=kind) for kind in KINDS)


class FrozenModels:
  """A strategy's saved ``M_j`` run on version ``k``'s graph, cached.

  Models are keyed by a hash of their variables, so strategies that share a
  model (fix-m0's M_0, nobc's M_k behind the post-hoc strategies) are run
  once per graph.
  """

  def __init__(self, splits: Sequence[VersionSplit], layout: str | None = None):
    self._splits = splits
    self._layout = layout
    self._graphs: dict[int, BipartiteGraph] = {}
    self._models: dict[tuple[str, int], tuple[PinSAGE, dict, str]] = {}
    self._tables: dict[tuple[str, int], Tables] = {}

  def _model(self, path: str, j: int):
    if (path, j) not in self._models:
      with VersionStore(path, create=False) as store:
        metadata = store.metadata(j)
        variables = store.restore(j, "model")
      model = PinSAGE(dim=int(metadata["dim"]), num_layers=int(metadata["layers"]))
      self._models[(path, j)] = (model, variables, digest(variables))
    return self._models[(path, j)]

  def __call__(self, path: str, j: int, k: int) -> Tables:
    """``(user, item)`` embeddings of ``path``'s ``M_j`` on ``G_k``."""
    model, variables, key = self._model(path, j)
    if (key, k) not in self._tables:
      if k not in self._graphs:
        self._graphs[k] = BipartiteGraph.from_split(self._splits[k], self._layout)
      out = embed(model, variables, self._graphs[k])
      self._tables[(key, k)] = tuple(np.asarray(t) for t in out)
    return self._tables[(key, k)]
