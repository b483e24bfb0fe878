"""Serving any embedding version from the latest one and the backward chain.

``registry.open(path)`` opens the checkpoints of one strategy's run and
answers ``embeddings(version=j)``: the latest embeddings ``z_K`` mapped to
version ``j`` by ``B_{j+1} o ... o B_K``. When every transform of the chain is
linear (``BackwardTransform.as_matrix``; truncations included), the chain
collapses into one matrix, computed once per ``(K, j)`` and cached, and
serving costs one matmul per chunk.

Checkpoints record where their strategy's method, transform and loss were
registered; :func:`open` loads the extensions among them by itself, so a
fresh process serves an extension's checkpoints without importing it by
hand (or says, in one line, which module it cannot import).

Example::

  reg = registry.open("workdir/checkpoints/bc-aligner")
  z0 = reg.embeddings(version=0, kind="user")          # (num_users, d_0)
  to_v1 = reg.transform(from_version=reg.latest_version, to_version=1)
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from bcjax import extensions, sharding
from bcjax.components.chains import BackwardChain, collapse_linear
from bcjax.errors import InputError
from bcjax.storage.checkpoints import VersionStore

KINDS = ("user", "item")


def open(path: str, mesh: Mesh | None = None):  # noqa: A001
  """Opens the versions saved under ``path``.

  Args:
    path: one strategy's checkpoint folder, or an align store
      (:mod:`bcjax.align.store`: the folder, or the ``experiments.align``
      workdir holding it), served by an
      :class:`bcjax.align.store.AlignRegistry` with the same ``embeddings``.
    mesh: serve with embedding rows sharded over this mesh (None: one device;
      an align store is served on one device).

  Returns:
    An :class:`EmbeddingRegistry`, or an ``AlignRegistry`` for an align store.
  """
  # Imported here: serving a strategy's checkpoints needs none of bcjax.align.
  from bcjax.align import store

  if store.store_path(path) is not None:
    if mesh is not None:
      raise InputError(f"{path} is an align store, served on one device; pass no mesh")
    return store.AlignRegistry(path)
  return EmbeddingRegistry(path, mesh)


class EmbeddingRegistry:
  """Every version of one strategy, served from the latest one.

  Attributes:
    latest_version: the newest saved version ``K``.
    dims: ``d_k`` of each version ``0..K``.
    strategy: the strategy name stored with the checkpoints.
  """

  def __init__(self, path: str, mesh: Mesh | None = None):
    self._mesh = mesh
    self._store = VersionStore(path, create=False)
    versions = self._store.versions()
    if not versions:
      raise InputError(f"no saved version in {self._store.directory}")
    if versions != list(range(len(versions))):
      raise InputError(
        f"versions in {self._store.directory} are {versions}; expected "
        f"0..{max(versions)} without gaps"
      )
    self._metadata = [self._store.metadata(k) for k in versions]
    for metadata in self._metadata:
      _load_components(metadata.get("components", {}), self._store.directory)
    self.latest_version = versions[-1]
    self.dims = tuple(int(m["dim"]) for m in self._metadata)
    self.strategy = self._metadata[-1].get("strategy", "")
    self._transforms: dict[int, tuple] = {}
    self._chains: dict[tuple[int, int, bool], BackwardChain] = {}
    self._embeddings: dict[int, dict[str, np.ndarray]] = {}
    self._checked: dict[tuple[int, int], Callable] = {}
    for k in range(1, len(versions)):
      spec = self._metadata[k]["transform"]
      if (spec["d_in"], spec["d_out"]) != (self.dims[k], self.dims[k - 1]):
        raise InputError(
          f"B_{k} of {self._store.directory} maps {spec['d_in']} -> "
          f"{spec['d_out']} dims, which does not chain version {k} "
          f"(dim {self.dims[k]}) to version {k - 1} (dim {self.dims[k - 1]})"
        )

  def close(self):
    self._store.close()

  def metadata(self, version: int) -> dict:
    """The metadata saved with ``version``."""
    self._check_version(version, "version")
    return self._metadata[version]

  def _saved_embeddings(self, version: int) -> dict[str, np.ndarray]:
    if version not in self._embeddings:
      self._embeddings[version] = self._store.restore(version, "embeddings")
    return self._embeddings[version]

  def _transform_params(self, version: int):
    if version not in self._transforms:
      transform, params = self._store.transform(version)
      spec = self._metadata[version]["transform"]
      self._transforms[version] = (transform, params, spec)
    return self._transforms[version]

  def chain(
    self, from_version: int, to_version: int, *, collapse: bool = True
  ) -> BackwardChain:
    """The chain ``B_{to+1} o ... o B_from`` as a :class:`BackwardChain`.

    Built once per request kind and cached. The matrix or parameters are
    arguments of the jitted function, not constants baked into it, and host
    rows are padded to a few bucket sizes, so requests of any size share a
    handful of compilations. Unlike :meth:`transform`, it does not check its
    input: it is the fast path for rows already validated or on devices.

    Args:
      from_version: ``k``, the newer version.
      to_version: ``j <= k``.
      collapse: multiply a chain of linear transforms into one matrix (else
        apply the transforms one by one, as for non-linear chains).
    """
    self._check_versions(from_version, to_version)
    key = (from_version, to_version, collapse)
    if key not in self._chains:
      self._chains[key] = self._build_chain(from_version, to_version, collapse)
    return self._chains[key]

  def _build_chain(self, from_version, to_version, collapse) -> BackwardChain:
    steps = [self._transform_params(k) for k in range(from_version, to_version, -1)]
    matrices = [
      None if t.as_matrix is None else np.asarray(t.as_matrix(p)) for t, p, _ in steps
    ]
    if collapse and steps and all(m is not None for m in matrices):
      # matrices[i] maps version from-i to from-i-1; the product is z @ M.
      weights = jnp.asarray(collapse_linear(matrices[::-1]))
      fn = _matmul
    else:
      transforms = tuple(t for t, _, _ in steps)
      weights = tuple(p for _, p, _ in steps)

      def apply(z, params):
        for transform, p in zip(transforms, params, strict=True):
          z = transform.apply(p, z)
        return z

      fn = jax.jit(apply)
    return BackwardChain(fn, weights)

  def transform(self, from_version: int, to_version: int) -> Callable:
    """The map from version ``from_version``'s space to ``to_version``'s.

    Args:
      from_version: ``k``, the newer version.
      to_version: ``j <= k``.

    Returns:
      A function ``(n, d_k) -> (n, d_j)`` that rejects embeddings of another
      width or with NaN or infinite values.
    """
    self._check_versions(from_version, to_version)
    key = (from_version, to_version)
    if key not in self._checked:
      chain, width = self.chain(*key), self.dims[from_version]

      def checked(z):
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != width:
          raise InputError(
            f"embeddings of version {from_version} have shape (n, {width}); "
            f"got {z.shape}"
          )
        bad = ~np.all(np.isfinite(z), axis=1)
        if bad.any():
          raise InputError(
            f"embeddings contain NaN or infinite values in rows "
            f"{np.flatnonzero(bad)[:5].tolist()}"
          )
        if z.shape[0] == 0:
          return np.zeros((0, self.dims[to_version]), np.float32)
        return chain(z)

      self._checked[key] = checked
    return self._checked[key]

  def embeddings(
    self,
    version: int | None = None,
    ids=None,
    kind: str = "user",
    blend: float | None = None,
  ) -> np.ndarray:
    """The latest embeddings of ``kind``, transformed to ``version``.

    Args:
      version: the version ``j`` to serve; the latest when None.
      ids: node ids to serve; all when None.
      kind: ``"user"`` or ``"item"``.
      blend: None: the chain's output ``B(z_K)``. ``alpha`` in ``[0, 1]``:
        a node that version ``j`` saved a vector ``z_j`` for is served
        ``slerp(z_j, B(z_K), alpha)`` (unit rows; SLERP backward
        compatibility, :func:`bcjax.align.blend.slerp`), a node new since
        ``j`` its ``B(z_K)``.

    Returns:
      ``(len(ids), d_j)`` float32 embeddings.
    """
    version = self.latest_version if version is None else version
    out = self.compatible_embeddings(self.latest_version, version, ids=ids, kind=kind)
    if blend is None:
      return out
    # Imported here: serving without a blend needs none of bcjax.align.
    from bcjax.align.blend import check_alpha, slerp

    alpha = check_alpha(blend)
    stored = self._saved_embeddings(version)[kind]
    rows = np.arange(len(out)) if ids is None else np.asarray(ids)
    has = rows < len(stored)
    if np.any(has):
      out = np.array(out)
      out[has] = slerp(stored[rows[has]], out[has], alpha)
    return out

  def compatible_embeddings(
    self, from_version: int, to_version: int, ids=None, kind: str = "user"
  ) -> np.ndarray:
    """Version ``from_version``'s saved embeddings, served as ``to_version``.

    What a consumer of version ``to_version`` read while ``from_version`` was
    the newest; with ``from_version`` the latest, this is :meth:`embeddings`.

    Args:
      from_version: ``k``, the version whose embeddings ``z_k`` are read.
      to_version: ``j <= k``, the space they are mapped to.
      ids: node ids to serve; all when None.
      kind: ``"user"`` or ``"item"``.

    Returns:
      ``(len(ids), d_j)`` float32 embeddings.
    """
    if kind not in KINDS:
      raise InputError(f"kind must be one of {KINDS}, got {kind!r}")
    chain = self.chain(from_version, to_version)
    source = self._saved_embeddings(from_version)[kind]
    if ids is not None:
      ids = np.asarray(ids)
      if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(
          f"ids must be a 1-d array of integers, got {ids.dtype} {ids.shape}"
        )
      bad = (ids < 0) | (ids >= len(source))
      if np.any(bad):
        raise InputError(
          f"{kind} ids out of range: {ids[bad][:5].tolist()}; version "
          f"{from_version} has {len(source)} {kind}s (ids 0..{len(source) - 1})"
        )
      source = source[ids]
    if self._mesh is not None:
      rows, n = sharding.shard_rows(source, self._mesh)
      return np.asarray(chain.on_device(rows))[:n]
    if len(source) == 0:
      return np.zeros((0, self.dims[to_version]), np.float32)
    return chain(source)

  def _check_versions(self, from_version, to_version):
    self._check_version(from_version, "from_version")
    self._check_version(to_version, "to_version")
    if to_version > from_version:
      raise InputError(
        f"backward transforms map newer to older versions; to_version "
        f"{to_version} is newer than from_version {from_version}"
      )

  def _check_version(self, version, name):
    if not isinstance(version, (int, np.integer)) or isinstance(version, bool):
      raise InputError(f"{name} must be an integer, got {version!r}")
    if version < 0:
      raise InputError(f"{name} must be >= 0, got {version}")
    if version > self.latest_version:
      raise InputError(
        f"{name} {version} does not exist; saved versions are 0..{self.latest_version}"
      )


def _load_components(components: dict, directory: str) -> None:
  """Loads the extensions that defined a checkpoint's components.

  A component already registered here is left alone (its extension may have
  been loaded by hand, or by another version's metadata).

  Raises:
    InputError: one line naming the extension that cannot be loaded.
  """
  # Imported here: serving alone needs no method, and most checkpoints name
  # only bcjax's own components.
  from bcjax.components import losses, transforms
  from bcjax.methods import base

  registered = {
    "method": base.METHODS,
    "transform": transforms.TRANSFORMS,
    "loss": losses.LOSSES,
  }
  for kind, info in sorted(components.items()):
    if info["name"] not in registered.get(kind, {}):
      extensions.load_sources(
        [info["source"]], f"{directory} ({kind} {info['name']!r})"
      )


@jax.jit
def _matmul(z, matrix):
  return z @ matrix
