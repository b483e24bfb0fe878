"""A fitted bridge: new-version embeddings into an old version's space.

A :class:`Bridge` holds its family, hyper-parameters, parameters and the
preprocessing it was fitted with (normalisation, centring means). It applies
itself in bucketed chunks through one jitted function per family (the
serving path of :class:`bcjax.components.chains.BackwardChain`), saves to and loads
from one ``.npz`` file (:meth:`Bridge.save`, :func:`load`), and exports an
affine bridge as the matrix and bias a vector store can apply
(:meth:`Bridge.export_npz`).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
from typing import Any

import jax
import numpy as np

from bcjax import extensions
from bcjax.align.families import FAMILIES, get_family
from bcjax.align.moments import Preprocessing, normalize_rows
from bcjax.components.chains import BackwardChain
from bcjax.errors import InputError
from bcjax.storage.atomic_files import atomic_open

FORMAT = "bcjax.align.bridge/1"
EXPORT_FORMAT = "bcjax.align.affine/1"


def check_rows(name: str, z, width: int | None = None) -> np.ndarray:
  """``z`` as a float32 ``(rows, dims)`` array of finite values, or one error line.

  Args:
    name: what the array is called in the message (``"new"``, ``"old"``).
    z: the array.
    width: the dims it must have (None: any).
  """
  z = np.asarray(z)
  if z.ndim != 2:
    raise InputError(f"{name} must be a 2-d (rows, dims) array, got shape {z.shape}")
  if z.shape[0] == 0 or z.shape[1] == 0:
    raise InputError(f"{name} is empty (shape {z.shape}); a bridge needs rows")
  if not (np.issubdtype(z.dtype, np.floating) or np.issubdtype(z.dtype, np.integer)):
    raise InputError(f"{name} must hold numbers, got dtype {z.dtype}")
  if width is not None and z.shape[1] != width:
    raise InputError(f"{name} must have {width} dims, got shape {z.shape}")
  z = z.astype(np.float32, copy=False)
  bad = ~np.isfinite(z).all(axis=1)
  if bad.any():
    where = np.flatnonzero(bad)
    raise InputError(
      f"{name} has NaN or infinite values in {len(where)} of {len(z)} rows "
      f"(first: {where[:5].tolist()})"
    )
  return z


@dataclasses.dataclass(frozen=True, eq=False)
class Bridge:
  """``B``: new ``(n, d_new)`` -> old space ``(n, d_old)``.

  ``B(z) = f((z / ||z|| if normalize) - mean_new) + mean_old`` with ``f`` the
  family's map (affine overall for the linear families).

  Attributes:
    family: the family name.
    hparams: its hyper-parameter dataclass.
    params: the family's parameters (NumPy arrays).
    d_new: input width.
    d_old: output width.
    prep: normalisation and means (zero means: not centred).
    selection: for ``family="auto"``, the :class:`bcjax.align.selection.Selection`
      (every candidate's validation score, the rule's choice); else None.
  """

  family: str
  hparams: Any
  params: Any
  d_new: int
  d_old: int
  prep: Preprocessing
  selection: Any = None

  @property
  def center(self) -> bool:
    return self.prep.center

  @property
  def normalize(self) -> bool:
    return self.prep.normalize

  @property
  def num_params(self) -> int:
    """Free parameters: the family's, plus ``d_old`` for a centred affine bridge.

    Centring makes a linear family affine, ``z W + b`` with the bias
    ``b = mu_old - mu_new W`` free; an ``mlp`` has biases of its own, which
    absorb the means.
    """
    count = get_family(self.family).num_params(self.hparams, self.d_new, self.d_old)
    return count + (self.d_old if self.center and self.affine else 0)

  @property
  def affine(self) -> bool:
    return get_family(self.family).as_matrix is not None

  def apply(self, new) -> np.ndarray:
    """``(n, d_new) -> (n, d_old)`` float32, jitted, in bucketed chunks."""
    new = check_rows("new", new, self.d_new)
    weights = (self.params, self.prep.mean_new, self.prep.mean_old)
    return BackwardChain(_applier(self.family, self.normalize), weights)(new)

  __call__ = apply

  def apply_jax(self, z: jax.Array) -> jax.Array:
    """The bridge as a traceable function of device rows (no checks)."""
    if self.normalize:
      z = normalize_rows(z)
    out = get_family(self.family).apply(self.params, z - self.prep.mean_new)
    return out + self.prep.mean_old

  def matrix_and_bias(self) -> tuple[np.ndarray, np.ndarray]:
    """``(M, b)`` with ``B(z) = z' @ M + b`` (``z'`` normalised if so); float64.

    Raises:
      InputError: for a family that is not affine (``mlp``).
    """
    as_matrix = get_family(self.family).as_matrix
    if as_matrix is None:
      raise InputError(
        f"a {self.family} bridge is not affine: it has no matrix and bias to "
        "export or collapse (fit a linear family, or serve it with apply)"
      )
    matrix = np.asarray(as_matrix(self.params), np.float64)
    bias = self.prep.mean_old - self.prep.mean_new.astype(np.float64) @ matrix
    return matrix, bias

  def export_npz(self, path: str) -> None:
    """Writes what a vector store needs to apply an affine bridge.

    Arrays: ``matrix`` ``(d_new, d_old)``, ``bias`` ``(d_old,)``,
    ``mean_new``, ``mean_old`` (zeros when not centred), ``normalize`` (a
    bool: L2-normalise input rows first), ``family`` and ``format``.
    ``old ~= normalize?(new) @ matrix + bias``, which is
    ``(normalize?(new) - mean_new) @ matrix + mean_old``.

    Raises:
      InputError: for an ``mlp`` bridge (not affine).
    """
    matrix, bias = self.matrix_and_bias()
    _write_npz(
      path,
      matrix=matrix.astype(np.float32),
      bias=bias.astype(np.float32),
      mean_new=self.prep.mean_new,
      mean_old=self.prep.mean_old,
      normalize=np.asarray(self.normalize),
      family=np.asarray(self.family),
      format=np.asarray(EXPORT_FORMAT),
    )

  def save(self, path: str) -> None:
    """Writes the whole bridge (any family) to one ``.npz``; :func:`load` reads it.

    The family's source is recorded: :func:`load` in a fresh process loads a
    user's family from it, or fails with one line naming the module.
    """
    flat = jax.tree_util.tree_flatten_with_path(self.params)[0]
    arrays = {"param:" + jax.tree_util.keystr(p): np.asarray(v) for p, v in flat}
    meta = {
      "format": FORMAT,
      "family": self.family,
      "source": get_family(self.family).source,
      "hparams": dataclasses.asdict(self.hparams),
      "d_new": self.d_new,
      "d_old": self.d_old,
      "normalize": self.normalize,
      "param_keys": sorted(arrays),
      "selection": None if self.selection is None else self.selection.summary(),
    }
    _write_npz(
      path,
      meta=np.asarray(json.dumps(meta)),
      mean_new=self.prep.mean_new,
      mean_old=self.prep.mean_old,
      **arrays,
    )


def load(path: str) -> Bridge:
  """The bridge :meth:`Bridge.save` wrote to ``path`` (its selection as a dict)."""
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
  except (OSError, ValueError, KeyError) as e:
    raise InputError(f"{path} is not a saved bridge ({type(e).__name__}: {e})") from e
  if meta.get("format") != FORMAT:
    raise InputError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
  if meta["family"] not in FAMILIES and meta.get("source"):
    # A family of the user's own: its module registers it.
    extensions.load_sources(
      [meta["source"]], f"{path} (bridge family {meta['family']!r})"
    )
  family = get_family(meta["family"])
  try:
    hparams = family.hparams(**meta["hparams"])
  except TypeError as e:
    raise InputError(
      f"{path}: hparams {meta['hparams']} do not fit {family.name}"
    ) from e
  params = _unflatten({k[len("param:") :]: arrays[k] for k in meta["param_keys"]})
  return Bridge(
    family=meta["family"],
    hparams=hparams,
    params=params,
    d_new=int(meta["d_new"]),
    d_old=int(meta["d_old"]),
    prep=Preprocessing(bool(meta["normalize"]), arrays["mean_new"], arrays["mean_old"]),
    selection=meta["selection"],
  )


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
  """Nested dicts from ``keystr`` paths such as ``['layer0']['kernel']``."""
  out: dict = {}
  for path, value in flat.items():
    keys = [k.strip("'\"") for k in path.strip("[]").split("][")]
    node = out
    for key in keys[:-1]:
      node = node.setdefault(key, {})
    node[keys[-1]] = value
  return out


def _write_npz(path: str, **arrays) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  with atomic_open(path, "wb") as f:
    f.write(buffer.getvalue())


@functools.cache
def _applier(family: str, normalize: bool):
  apply = get_family(family).apply

  @jax.jit
  def fn(z, weights):
    params, mean_new, mean_old = weights
    if normalize:
      z = normalize_rows(z)
    return apply(params, z - mean_new) + mean_old

  return fn
