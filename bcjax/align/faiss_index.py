"""A bridge applied where the old vectors live: a FAISS index of old-model vectors.

New-model queries search an existing old-model index through the bridge,
with nothing re-embedded and nothing copied: :func:`write_transform` writes
the bridge alone as FAISS vector transforms (``write_VectorTransform``), and
:func:`wrap_index` wraps the old index at load time in an
``IndexPreTransform`` that applies them to every query:

- an L2 normalisation (``NormalizationTransform``) where the bridge
  normalises its inputs;
- the affine map ``x @ M + b`` (``LinearTransform``; a centred bridge's means
  are in ``b``, a reduced-rank bridge's two factors are multiplied out);
- for an inner-product index, an L2 normalisation of the bridged query, so
  that it scores cosines against the index's (normalised) old vectors.

Every affine family works (linear, orthogonal, reduced-rank,
soft-orthogonal); an ``mlp`` bridge has no matrix and is refused with one
line. FAISS comes with the ``stores`` extra (``faiss-cpu``).
"""

from __future__ import annotations

import json
import os

import numpy as np

from bcjax.align.bridge import Bridge
from bcjax.errors import InputError
from bcjax.storage.atomic_files import atomic_open

MANIFEST = "transform.json"
FORMAT = "bcjax-faiss-transform-1"


def _faiss():
  try:
    import faiss
  except ImportError as e:
    raise InputError(
      "the FAISS path needs faiss-cpu (pip install faiss-cpu, or bcjax[stores])"
    ) from e
  return faiss


def write_transform(bridge: Bridge, directory: str) -> str:
  """Writes ``bridge`` as FAISS vector transforms into ``directory``.

  One file per transform (``0.vt``, ``1.vt``: FAISS's own format, read by
  ``faiss.read_VectorTransform``) and ``transform.json`` naming them, the
  widths and the family.

  Args:
    bridge: an affine bridge (any family but ``mlp``).
    directory: the folder (created; files in it replaced).

  Returns:
    ``directory``.

  Raises:
    InputError: for an ``mlp`` bridge, which has no matrix and bias.
  """
  faiss = _faiss()
  matrix, bias = bridge.matrix_and_bias()  # refuses a bridge that is not affine
  transforms = []
  if bridge.normalize:
    transforms.append(faiss.NormalizationTransform(bridge.d_new, 2.0))
  linear = faiss.LinearTransform(bridge.d_new, bridge.d_old, True)
  # FAISS computes y = A x + b with A (d_out, d_in), row-major.
  faiss.copy_array_to_vector(
    np.ascontiguousarray(matrix.T, np.float32).ravel(), linear.A
  )
  faiss.copy_array_to_vector(np.asarray(bias, np.float32), linear.b)
  linear.is_trained = True
  transforms.append(linear)
  os.makedirs(directory, exist_ok=True)
  names = []
  for i, transform in enumerate(transforms):
    names.append(f"{i}.vt")
    faiss.write_VectorTransform(transform, os.path.join(directory, names[-1]))
  manifest = {
    "format": FORMAT,
    "family": bridge.family,
    "d_new": bridge.d_new,
    "d_old": bridge.d_old,
    "normalize": bridge.normalize,
    "transforms": names,
  }
  with atomic_open(os.path.join(directory, MANIFEST)) as f:
    json.dump(manifest, f, indent=2)
  return directory


def wrap_index(index, directory: str):
  """The old index, searched by new-model queries through the bridge.

  Args:
    index: a FAISS index of old-model vectors, or the path of one
      (``faiss.read_index``).
    directory: what :func:`write_transform` wrote.

  Returns:
    A ``faiss.IndexPreTransform`` over ``index`` (not a copy): its
    ``search`` takes ``(n, d_new)`` new-model queries and returns the old
    index's ids.

  Raises:
    InputError: for a folder that holds no transform, a file FAISS cannot
      read, or a bridge whose output width is not the index's.
  """
  faiss = _faiss()
  if isinstance(index, str):
    try:
      index = faiss.read_index(index)
    except RuntimeError as e:
      raise InputError(f"{index}: not a readable FAISS index ({e})") from e
  try:
    with open(os.path.join(directory, MANIFEST)) as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise InputError(f"{directory}: no FAISS transform of a bridge ({e})") from e
  if manifest.get("format") != FORMAT:
    raise InputError(
      f"{directory} has format {manifest.get('format')!r}, expected {FORMAT!r}"
    )
  if manifest["d_old"] != index.d:
    raise InputError(
      f"the bridge in {directory} maps {manifest['d_new']} -> {manifest['d_old']} "
      f"dims, but the index holds {index.d}-dim vectors"
    )
  transforms = []
  for name in manifest["transforms"]:
    try:
      transforms.append(faiss.read_VectorTransform(os.path.join(directory, name)))
    except RuntimeError as e:
      raise InputError(f"{directory}/{name}: not a readable transform ({e})") from e
  if index.metric_type == faiss.METRIC_INNER_PRODUCT:
    transforms.append(faiss.NormalizationTransform(index.d, 2.0))
  wrapped = faiss.IndexPreTransform(index)
  for transform in reversed(transforms):
    wrapped.prepend_transform(transform)
  # The Python objects own the transforms and the index; keep them alive as
  # long as the wrapper (FAISS holds raw pointers to them).
  wrapped.referenced_objects = [index, *transforms]
  return wrapped
