"""A chain of fitted bridges on disk, served by ``bcjax.registry.open``.

An align store is what :mod:`experiments.align` leaves in ``WORKDIR/store``:
the bridges of versions ``0..K`` (``bridge_1.npz`` .. ``bridge_K.npz``, as
:meth:`bcjax.align.Chain.save` writes them), the newest version's embeddings
with the user's ids (``embeddings.npz``: ``ids`` ``(N,)`` and ``embeddings``
``(N, d_K)``) and a manifest (``align_store.json``: format, dims, the kind
of node, the source files, the stored versions, the blending alphas). It may
keep older versions' own rows too (``stored_<j>.npz``, ids and embeddings of
version ``j``) for blending (below). The whole folder is written beside its
place and renamed into it, so a reader sees a complete store or none.

A bridge may be affine with a bias or not affine at all (``mlp``), which the
backward transforms of :mod:`bcjax.components.transforms` that a trained run's Orbax
store rebuilds do not carry; so the store keeps bridges in their own format
and :func:`bcjax.registry.open` hands a folder holding a manifest (or a
workdir whose ``store/`` holds one) to :class:`AlignRegistry`, which answers
like :class:`bcjax.registry.EmbeddingRegistry`: ``embeddings(version=j,
ids=None)`` is the newest rows through the chain to version ``j``.

Blending (:mod:`bcjax.align.blend`): ``embeddings(version=j, ids=...,
blend=alpha)`` serves ``slerp(z_j, B(z_K), alpha)`` (unit rows) for the rows
whose version-``j`` vector the store keeps, and ``B(z_K)`` for the others
(rows new since version ``j``, with nothing to blend); ``blend=True`` takes
the ``alpha`` chosen when the store was written (``experiments.align``
chooses one, with labels, for version ``K - 1``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np

from bcjax.align.blend import check_alpha, slerp
from bcjax.align.bridge import check_rows
from bcjax.align.chain import Chain, load_chain
from bcjax.errors import InputError

FORMAT = "bcjax.align.store/1"
MANIFEST = "align_store.json"
STORE_DIR = "store"


def store_path(path: str) -> str | None:
  """The align store at ``path`` (the store or a workdir holding one), or None."""
  for folder in (path, os.path.join(path, STORE_DIR)):
    if os.path.isfile(os.path.join(folder, MANIFEST)):
      return folder
  return None


def check_ids(name: str, ids, rows: int) -> np.ndarray:
  """``ids`` as a 1-d array of ``rows`` distinct integers or strings, or one error line."""
  ids = np.asarray(ids)
  if ids.ndim != 1 or len(ids) != rows:
    raise InputError(
      f"{name} ids must be a 1-d array of {rows} ids, got shape {ids.shape}"
    )
  if not (np.issubdtype(ids.dtype, np.integer) or ids.dtype.kind == "U"):
    raise InputError(f"{name} ids must be integers or strings, got dtype {ids.dtype}")
  unique, counts = np.unique(ids, return_counts=True)
  if len(unique) != len(ids):
    raise InputError(
      f"{name} ids must be distinct; repeated: {unique[counts > 1][:5].tolist()}"
    )
  return ids


def write(
  directory: str,
  chain: Chain,
  ids,
  embeddings,
  *,
  kind: str = "item",
  sources: Sequence[str] = (),
  stored: Mapping[int, tuple] | None = None,
  blend_alphas: Mapping[int, float] | None = None,
) -> str:
  """Writes a complete store to ``directory`` (replacing one that is there).

  Args:
    directory: the store's folder.
    chain: the bridges of versions ``0..K``.
    ids: ``(N,)`` the ids of the newest version's rows (integers or strings).
    embeddings: ``(N, d_K)`` the newest version's rows.
    kind: what the rows are (``"item"`` or ``"user"``), checked when served.
    sources: the files version ``0..K`` came from, recorded in the manifest.
    stored: version ``j < K`` -> ``(ids (N_j,), embeddings (N_j, d_j))``, its
      own rows, kept for blending.
    blend_alphas: version ``j`` (one of ``stored``) -> the ``alpha``
      ``blend=True`` serves it with.

  Returns:
    ``directory``, absolute.
  """
  embeddings = check_rows("embeddings", embeddings, chain.dims[-1])
  ids = check_ids("embeddings", ids, len(embeddings))
  stored = {_stored_version(chain, j): rows for j, rows in dict(stored or {}).items()}
  for j, (ids_j, rows_j) in stored.items():
    rows_j = check_rows(f"stored version {j}", rows_j, chain.dims[j])
    stored[j] = (check_ids(f"stored version {j}", ids_j, len(rows_j)), rows_j)
  alphas = {int(j): check_alpha(a) for j, a in dict(blend_alphas or {}).items()}
  if set(alphas) - set(stored):
    raise InputError(
      f"blend alphas for versions {sorted(set(alphas) - set(stored))} whose rows "
      f"are not stored (stored: {sorted(stored)})"
    )
  directory = os.path.abspath(directory)
  parent = os.path.dirname(directory)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(directory)}.")
  try:
    chain.save(tmp)
    np.savez(os.path.join(tmp, "embeddings.npz"), ids=ids, embeddings=embeddings)
    for j, (ids_j, rows_j) in stored.items():
      np.savez(os.path.join(tmp, f"stored_{j}.npz"), ids=ids_j, embeddings=rows_j)
    manifest = {
      "format": FORMAT,
      "kind": kind,
      "dims": list(chain.dims),
      "latest_version": chain.latest_version,
      "rows": len(ids),
      "families": [b.family for b in chain.bridges],
      "sources": [os.path.abspath(s) for s in sources],
      "stored_versions": sorted(stored),
      "blend_alphas": {str(j): a for j, a in sorted(alphas.items())},
    }
    with open(os.path.join(tmp, MANIFEST), "w") as f:
      json.dump(manifest, f, indent=2)
    os.chmod(tmp, 0o755)
    # A rename cannot replace a non-empty folder: move the old store aside
    # first, so a reader sees the old store or the new one, never a mix.
    old = None
    if os.path.exists(directory):
      old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(directory)}.old.")
      os.replace(directory, os.path.join(old, "store"))
    os.replace(tmp, directory)
    if old is not None:
      shutil.rmtree(old)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      shutil.rmtree(tmp)
    raise
  return directory


def _stored_version(chain: Chain, version) -> int:
  version = chain._check_version(version)
  if version == chain.latest_version:
    raise InputError(
      f"version {version} is the newest: its rows are the store's embeddings, "
      "not stored ones"
    )
  return int(version)


class AlignRegistry:
  """The newest embeddings of an align store, served at any version.

  Attributes:
    latest_version: ``K``.
    dims: ``d_k`` of each version ``0..K``.
    strategy: ``"align"``.
    kind: what the rows are (``"item"`` or ``"user"``).
    ids: ``(N,)`` the user's ids of the rows.
    chain: the :class:`bcjax.align.Chain` of bridges.
  """

  strategy = "align"

  def __init__(self, path: str):
    folder = store_path(path)
    if folder is None:
      raise InputError(f"no {MANIFEST} in {path} or {os.path.join(path, STORE_DIR)}")
    self.directory = folder
    try:
      with open(os.path.join(folder, MANIFEST)) as f:
        self._manifest = json.load(f)
      with np.load(os.path.join(folder, "embeddings.npz"), allow_pickle=False) as f:
        self.ids, self._rows = f["ids"], f["embeddings"]
    except (OSError, ValueError, KeyError) as e:
      raise InputError(
        f"{folder} is not a complete align store ({type(e).__name__}: {e})"
      ) from e
    if self._manifest.get("format") != FORMAT:
      raise InputError(
        f"{folder} has format {self._manifest.get('format')!r}, expected {FORMAT!r}"
      )
    self.chain = load_chain(folder)
    self.dims = self.chain.dims
    self.latest_version = self.chain.latest_version
    self.kind = self._manifest["kind"]
    self._where = {key: row for row, key in enumerate(self.ids.tolist())}
    self._stored_rows: dict[int, tuple[dict, np.ndarray]] = {}

  def close(self):
    """Nothing to release (the store is read whole); for the registry's interface."""

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def metadata(self, version: int) -> dict:
    """The manifest, with the bridge that maps ``version`` to ``version - 1``."""
    version = self.chain._check_version(version)
    bridge = self.chain.bridges[version - 1] if version else None
    return {
      **self._manifest,
      "version": version,
      "dim": self.dims[version],
      "bridge": None if bridge is None else bridge.family,
    }

  def rows_of(self, ids) -> np.ndarray:
    """The row of each of the user's ``ids``, or one error line naming unknown ones."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
      raise InputError(f"ids must be a 1-d array, got shape {ids.shape}")
    rows = [self._where.get(key) for key in ids.tolist()]
    unknown = [key for key, row in zip(ids.tolist(), rows, strict=True) if row is None]
    if unknown:
      raise InputError(
        f"{len(unknown)} ids are not in the store's {len(self.ids)} {self.kind}s "
        f"(first: {unknown[:5]})"
      )
    return np.asarray(rows, np.int64)

  def embeddings(
    self,
    version: int | None = None,
    ids=None,
    kind: str | None = None,
    *,
    rows=None,
    blend: bool | float | None = None,
  ) -> np.ndarray:
    """The newest rows, through the chain to ``version``, maybe blended.

    Args:
      version: the version ``j`` to serve; the latest when None.
      ids: the user's ids of the rows to serve; all when None (and no rows).
      kind: the store's kind, if given (a check: a store holds one kind).
      rows: row numbers ``(n,)`` to serve instead of ids.
      blend: None or False: the bridged rows ``B(z_K)``. ``alpha`` in
        ``[0, 1]``: ``slerp(z_j, B(z_K), alpha)`` for the rows whose stored
        version-``j`` vector ``z_j`` the store keeps (unit rows), ``B(z_K)``
        for the others. True: the ``alpha`` chosen for ``j`` when the store
        was written.

    Returns:
      ``(n, d_j)`` float32 embeddings, in the order asked.
    """
    if kind is not None and kind != self.kind:
      raise InputError(f"this align store holds {self.kind}s, not {kind}s")
    if ids is not None and rows is not None:
      raise InputError("ask for ids or for rows, not both")
    version = self.latest_version if version is None else version
    alpha = None if blend is None or blend is False else self._alpha(version, blend)
    if ids is not None:
      rows = self.rows_of(ids)
    elif rows is not None:
      rows = np.asarray(rows)
      if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise InputError(
          f"rows must be a 1-d array of integers, got {rows.dtype} {rows.shape}"
        )
      bad = (rows < 0) | (rows >= len(self._rows))
      if bad.any():
        raise InputError(
          f"rows out of range: {rows[bad][:5].tolist()}; the store has rows "
          f"0..{len(self._rows) - 1}"
        )
    source = self._rows if rows is None else self._rows[rows]
    if len(source) == 0:
      self.chain._check_version(version)
      return np.zeros((0, self.dims[version]), np.float32)
    out = self.chain.apply(source, version)
    if alpha is None:
      return out
    out = np.array(out)  # the chain's rows may be read-only
    keys = self.ids if rows is None else self.ids[rows]
    where, stored = self._stored(version)
    found = [where.get(key, -1) for key in keys.tolist()]
    found = np.asarray(found, np.int64)
    has = found >= 0
    if has.any():
      out[has] = slerp(stored[found[has]], out[has], alpha)
    return out

  def _alpha(self, version, blend) -> float:
    """The ``alpha`` that ``blend`` asks for at ``version``, or one error line."""
    version = _stored_version(self.chain, version)
    kept = self._manifest.get("stored_versions", [])
    if version not in kept:
      raise InputError(
        f"this align store keeps no version-{version} rows to blend with "
        f"(it keeps versions {kept})"
      )
    if blend is not True:
      return check_alpha(blend)
    chosen = self._manifest.get("blend_alphas", {})
    if str(version) not in chosen:
      raise InputError(
        f"no alpha was chosen for version {version} when this store was written "
        f"(chosen for versions {sorted(int(j) for j in chosen)}); pass "
        "blend=alpha in [0, 1]"
      )
    return float(chosen[str(version)])

  def _stored(self, version: int) -> tuple[dict, np.ndarray]:
    """``({id: row}, rows)`` of the stored version-``version`` rows, read once."""
    if version not in self._stored_rows:
      path = os.path.join(self.directory, f"stored_{version}.npz")
      try:
        with np.load(path, allow_pickle=False) as f:
          ids, rows = f["ids"], f["embeddings"]
      except (OSError, ValueError, KeyError) as e:
        raise InputError(
          f"{path} is missing or unreadable ({type(e).__name__}: {e})"
        ) from e
      where = {key: row for row, key in enumerate(ids.tolist())}
      self._stored_rows[version] = (where, rows)
    return self._stored_rows[version]

  def transform(self, from_version: int, to_version: int):
    """``(n, d_K) -> (n, d_j)``: the chain, from the newest version only."""
    if from_version != self.latest_version:
      raise InputError(
        f"an align store bridges from its newest version {self.latest_version}, "
        f"not from version {from_version}"
      )
    self.chain._check_version(to_version)
    return lambda z: self.chain.apply(z, to_version)
