"""Reading a team's own embedding versions and labels from files.

A version is one of:

- an ``.npy`` ``(N, d)`` whose row ``i`` is id ``i``;
- an ``.npz`` with ``embeddings`` ``(N, d)`` and ``ids`` ``(N,)`` (distinct
  integers or strings; what ``experiments.export`` writes);
- a ``.csv`` with a header: an id column (``id_column``, default ``id``) and
  the numeric columns of the vector, every other column or those named by
  ``columns`` (what pandas' ``to_csv(index=False)`` or a vector store's dump
  writes);
- a ``.parquet`` (read by pyarrow): an id column and either numeric columns
  or one list / fixed-size-list column holding each row's vector.

Ids that are all canonical integers (``7``, not ``07``) are read as integers,
so a CSV matches an ``.npz`` of integer ids; others stay strings. Labels are a
CSV of ``[id,]label`` keyed by those ids. Every bad file is one
:class:`~bcjax.errors.InputError` line naming the flag or file and, where
there is one, the line (CSV, 1 the header) or row (Parquet, from 0) and the
column at fault.
"""

from __future__ import annotations

import csv
import os
import zipfile
from collections.abc import Sequence

import numpy as np

from bcjax.align.bridge import check_rows
from bcjax.align.store import check_ids
from bcjax.errors import InputError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def _where(flag: str | None, path: str) -> str:
  return f"--{flag}={path}" if flag else path


def load_array(flag: str, path: str) -> np.ndarray:  # flag: its name, e.g. "old"
  """The ``.npy`` array at ``path``, or one error line naming the flag."""
  _check_not_empty(flag, path)
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise InputError(f"--{flag}={path}: not a readable .npy array ({e})") from e


def _check_not_empty(flag: str | None, path: str, where: str = "") -> None:
  where = where or _where(flag, path)
  try:
    size = os.path.getsize(path)
  except OSError as e:
    raise InputError(f"{where}: cannot be read ({e})") from e
  if size == 0:
    raise InputError(f"{where}: the file is empty (0 bytes)")


def load_version(
  flag: str | None,
  path: str,
  *,
  id_column: str = "id",
  columns: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
  """``(ids (N,), rows (N, d))`` of one version's file, by its suffix.

  Args:
    flag: the flag that named the file (``old``, ``new``, ``versions[k]``),
      for messages; None: the path alone.
    path: an ``.npy`` (ids ``0..N-1``), ``.npz``, ``.csv`` or ``.parquet``.
    id_column: a table's id column.
    columns: a table's vector columns (empty: every other column, or a
      Parquet file's one list column).

  Returns:
    The ids and the rows, C-contiguous whatever the file's layout (FAISS
    refuses other arrays).
  """
  where = _where(flag, path)
  if path.endswith(".csv"):
    ids, rows = read_csv(path, id_column=id_column, columns=columns, where=where)
    return ids, np.ascontiguousarray(rows)
  if path.endswith((".parquet", ".pq")):
    ids, rows = read_parquet(path, id_column=id_column, columns=columns, where=where)
    return ids, np.ascontiguousarray(rows)
  name = flag or path
  if not path.endswith(".npz"):
    rows = check_rows(name, load_array(flag, path) if flag else _npy(path))
    return np.arange(len(rows)), rows
  _check_not_empty(flag, path)
  try:
    with np.load(path, allow_pickle=False) as f:
      names = list(f.files)
      if "ids" not in names or "embeddings" not in names:
        raise InputError(
          f"{where}: an .npz needs arrays 'ids' and 'embeddings', has {names}"
        )
      ids, rows = f["ids"], f["embeddings"]
  except InputError:
    raise
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise InputError(f"{where}: not a readable .npz ({e})") from e
  rows = check_rows(name, rows)
  return check_ids(name, ids, len(rows)), rows


def _npy(path: str) -> np.ndarray:
  _check_not_empty(None, path)
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise InputError(f"{path}: not a readable .npy array ({e})") from e


def read_csv(
  path: str, *, id_column: str = "id", columns: Sequence[str] = (), where: str = ""
) -> tuple[np.ndarray, np.ndarray]:
  """``(ids, rows)`` of a CSV with a header, an id column and number columns.

  Args:
    path: the file.
    id_column: the id column's name.
    columns: the vector's columns in order (empty: every other column).
    where: how messages name the file (default: its path).

  Raises:
    InputError: one line for an empty file, a header without rows, a missing
      column, a ragged line, a repeated id, a cell that is not a number, NaN
      or infinity, naming the line and column.
  """
  where = where or path
  _check_not_empty(None, path, where)
  try:
    with open(path, newline="") as f:
      numbered = [(i, line) for i, line in enumerate(csv.reader(f), 1) if line]
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise InputError(f"{where}: not a readable CSV ({e})") from e
  if not numbered:
    raise InputError(f"{where}: no header line; expected a header and a row per id")
  header = [name.strip() for name in numbered[0][1]]
  if len(set(header)) != len(header):
    raise InputError(f"{where} line 1: a column name repeats in {header}")
  wanted = _vector_columns(f"{where} line 1", header, id_column, columns)
  lines = numbered[1:]
  if not lines:
    raise InputError(f"{where}: a header and no rows; expected a row per id")
  for number, line in lines:
    if len(line) != len(header):
      raise InputError(
        f"{where} line {number}: {len(line)} fields, the header has {len(header)}"
      )
  cells = np.asarray([line for _, line in lines], dtype=str)
  ids = np.char.strip(cells[:, header.index(id_column)])
  _check_distinct(where, ids, [f"line {n}" for n, _ in lines])
  at = [header.index(name) for name in wanted]
  try:
    rows = cells[:, at].astype(np.float64)
  except ValueError:
    for (number, _), values in zip(lines, cells[:, at]):
      for name, value in zip(wanted, values):
        try:
          float(value)
        except ValueError:
          raise InputError(
            f"{where} line {number}, column {name!r}: {str(value)!r} is not a number"
          ) from None
    raise
  _check_finite(where, rows, wanted, [f"line {n}" for n, _ in lines])
  return _typed_ids(ids), rows.astype(np.float32)


def read_parquet(
  path: str, *, id_column: str = "id", columns: Sequence[str] = (), where: str = ""
) -> tuple[np.ndarray, np.ndarray]:
  """``(ids, rows)`` of a Parquet file: an id column and a vector per row.

  The vector is one list or fixed-size-list column (the only column besides
  the ids, or the one ``columns`` names) or several number columns.

  Args:
    path: the file.
    id_column: the id column's name.
    columns: the vector's columns (empty: every other column).
    where: how messages name the file (default: its path).

  Raises:
    InputError: as :func:`read_csv`, rows numbered from 0; also for a file
      pyarrow cannot read and for pyarrow missing.
  """
  where = where or path
  _check_not_empty(None, path, where)
  try:
    import pyarrow as pa
    import pyarrow.parquet as pq
  except ImportError as e:
    raise InputError(
      f"{where}: reading Parquet needs pyarrow (pip install pyarrow, or bcjax[stores])"
    ) from e
  try:
    table = pq.read_table(path)
  except (OSError, pa.ArrowException) as e:
    raise InputError(f"{where}: not a readable Parquet file ({e})") from e
  names = table.column_names
  wanted = _vector_columns(where, names, id_column, columns)
  if table.num_rows == 0:
    raise InputError(f"{where}: a schema and no rows; expected a row per id")
  labels = [f"row {i}" for i in range(table.num_rows)]
  id_values = table[id_column]
  if id_values.null_count:
    row = id_values.to_pylist().index(None)
    raise InputError(f"{where} row {row}, column {id_column!r}: no id (null)")
  ids = np.asarray([str(v) for v in id_values.to_pylist()])
  _check_distinct(where, ids, labels)
  vector_types = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
  if len(wanted) == 1 and any(t(table[wanted[0]].type) for t in vector_types):
    rows = _list_column(where, wanted[0], table[wanted[0]].to_pylist())
  else:
    for name in wanted:
      kind = table[name].type
      if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise InputError(
          f"{where}, column {name!r}: type {kind} is not numeric (expected number "
          "columns or one list column)"
        )
      if table[name].null_count:
        row = table[name].to_pylist().index(None)
        raise InputError(f"{where} row {row}, column {name!r}: no value (null)")
    rows = np.stack([table[name].to_numpy().astype(np.float64) for name in wanted], 1)
  _check_finite(where, rows, wanted if rows.shape[1] == len(wanted) else None, labels)
  return _typed_ids(ids), rows.astype(np.float32)


def _vector_columns(
  where: str, names: list[str], id_column: str, columns: Sequence[str]
) -> list[str]:
  """The vector's column names of a table with columns ``names``.

  Raises:
    InputError: for a missing id column or asked-for column, or no column
      besides the ids.
  """
  if id_column not in names:
    raise InputError(
      f"{where}: no id column {id_column!r} among the columns {names[:8]}; "
      "name it with --id_column"
    )
  wanted = list(columns) or [name for name in names if name != id_column]
  missing = [name for name in wanted if name not in names]
  if missing:
    raise InputError(f"{where}: no column {missing[0]!r} among the columns {names[:8]}")
  if not wanted:
    raise InputError(f"{where}: only the id column; expected vector columns too")
  return wanted


def _list_column(where: str, name: str, values: list) -> np.ndarray:
  """``(N, d)`` from a list column's rows, or the first null or ragged row."""
  width = None
  for row, value in enumerate(values):
    if value is None:
      raise InputError(f"{where} row {row}, column {name!r}: no vector (null)")
    if width is None:
      width = len(value)
    elif len(value) != width:
      raise InputError(
        f"{where} row {row}, column {name!r}: {len(value)} values, row 0 has {width}"
      )
    if any(v is None for v in value):
      raise InputError(f"{where} row {row}, column {name!r}: a null in the vector")
  if not width:
    raise InputError(f"{where}, column {name!r}: empty vectors")
  try:
    return np.asarray(values, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise InputError(f"{where}, column {name!r}: not a list of numbers ({e})") from e


def _check_distinct(where: str, ids: np.ndarray, labels: list[str]) -> None:
  """One line naming the first repeated id and both of its lines (rows)."""
  first = {}
  for label, key in zip(labels, ids.tolist()):
    if key in first:
      raise InputError(f"{where} {label}: id {key!r} repeats {first[key]}")
    first[key] = label


def _check_finite(where, rows: np.ndarray, names, labels: list[str]) -> None:
  bad = np.argwhere(~np.isfinite(rows))
  if len(bad):
    row, col = bad[0]
    column = f"column {names[col]!r}" if names else f"value {col}"
    raise InputError(
      f"{where} {labels[row]}, {column}: {rows[row, col]} (NaN or infinity); "
      "expected finite numbers"
    )


def _typed_ids(ids: np.ndarray) -> np.ndarray:
  """Integers when every id is a canonical integer, else the strings."""
  try:
    numbers = ids.astype(np.int64)
  except (ValueError, OverflowError):
    return ids
  if all(str(n) == s for n, s in zip(numbers.tolist(), ids.tolist())):
    return numbers
  return ids


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
