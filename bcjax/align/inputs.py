"""Reading a team's own embedding versions and labels from files.

A version is an ``.npy`` ``(N, d)`` whose row ``i`` is id ``i``, or an
``.npz`` with ``embeddings`` ``(N, d)`` and ``ids`` ``(N,)`` (distinct integers
or strings; what ``experiments.export`` writes). Labels are a CSV of
``[id,]label`` keyed by those ids. Every bad file is one
:class:`~bcjax.errors.InputError` line naming the flag or line at fault.
"""

from __future__ import annotations

import csv

import numpy as np

from bcjax.align.bridge import check_rows
from bcjax.align.store import check_ids
from bcjax.errors import InputError


def load_array(flag: str, path: str) -> np.ndarray:  # flag: its name, e.g. "old"
  """The ``.npy`` array at ``path``, or one error line naming the flag."""
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise InputError(f"--{flag}={path}: not a readable .npy array ({e})") from e


def load_version(flag: str, path: str) -> tuple[np.ndarray, np.ndarray]:
  """``(ids (N,), rows (N, d))`` of one version's ``.npy`` (ids ``0..N-1``) or ``.npz``.

  Args:
    flag: the flag that named the file (``old``, ``new``, ``versions[k]``).
    path: the file.
  """
  if not path.endswith(".npz"):
    rows = check_rows(flag, load_array(flag, path))
    return np.arange(len(rows)), rows
  try:
    with np.load(path, allow_pickle=False) as f:
      names = list(f.files)
      if "ids" not in names or "embeddings" not in names:
        raise InputError(
          f"--{flag}={path}: an .npz needs arrays 'ids' and 'embeddings', has {names}"
        )
      ids, rows = f["ids"], f["embeddings"]
  except InputError:
    raise
  except (OSError, ValueError) as e:
    raise InputError(f"--{flag}={path}: not a readable .npz ({e})") from e
  rows = check_rows(flag, rows)
  return check_ids(flag, ids, len(rows)), rows


def load_labels(path: str, ids: list[np.ndarray]) -> dict[str, str]:
  """``{id: label}`` from a CSV with a ``label`` and maybe an ``id`` column.

  Args:
    path: the CSV. Its ``id`` column holds the versions' ids (row numbers of
      an ``.npy``); without one, line ``i`` labels the oldest version's row
      ``i``.
    ids: every version's ids, oldest first.

  Returns:
    Labels keyed by ``str(id)``.
  """
  try:
    with open(path, newline="") as f:
      lines = list(csv.reader(f))
  except OSError as e:
    raise InputError(f"--labels={path}: cannot be read ({e})") from e
  if not lines or "label" not in lines[0]:
    raise InputError(f"{path} line 1: expected a header with a 'label' column")
  header = lines[0]
  at_label = header.index("label")
  at_id = header.index("id") if "id" in header else None
  known = {str(key) for version in ids for key in version.tolist()}
  oldest = ids[0].tolist()
  labels = {}
  for number, line in enumerate(lines[1:], start=2):
    if len(line) != len(header):
      raise InputError(
        f"{path} line {number}: {len(line)} fields, header has {len(header)}"
      )
    if at_id is not None:
      key = line[at_id]
    elif number - 2 < len(oldest):
      key = str(oldest[number - 2])
    else:
      raise InputError(
        f"{path} line {number}: more lines than the oldest version's "
        f"{len(oldest)} rows (without an id column, line i labels row i)"
      )
    if key not in known:
      raise InputError(f"{path} line {number}: id {key!r} is in no version's file")
    labels[key] = line[at_label]
  return labels


def labels_of(labels: dict[str, str], ids: np.ndarray, path: str) -> np.ndarray:
  """``(n,)`` the labels of ``ids``, or one line naming the ids without one."""
  found = [labels.get(str(key)) for key in ids.tolist()]
  missing = [key for key, label in zip(ids.tolist(), found) if label is None]
  if missing:
    raise InputError(
      f"{path} labels {len(ids) - len(missing)} of {len(ids)} rows; every row "
      f"needs one (first missing ids: {missing[:5]})"
    )
  return np.asarray(found, str)
