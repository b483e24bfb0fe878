"""Versions as teams keep them: CSV and Parquet beside .npy/.npz, bad files in one line.

Files are written by pandas and by pyarrow, as a team's export would be.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bcjax import align
from bcjax.align import inputs, protocol
from bcjax.errors import InputError
from experiments import align as binary
from tests.conftest import ROOT, run_module


@pytest.fixture
def pair():
  rng = np.random.default_rng(0)
  new = rng.normal(size=(60, 6)).astype(np.float32)
  old = (new @ rng.normal(size=(6, 4))).astype(np.float32)
  return np.arange(500, 560), old, new


def test_pandas_csv_reads_back_its_ids_and_rows(tmp_path, pair):
  ids, old, _ = pair
  frame = pd.DataFrame({"name": [f"n{i}" for i in ids]})
  for j in range(4):
    frame[f"f{j}"] = old[:, j]
  frame.insert(0, "id", ids)
  frame.to_csv(tmp_path / "old.csv", index=False)
  got_ids, rows = inputs.load_version(
    "old", str(tmp_path / "old.csv"), columns=("f0", "f1", "f2", "f3")
  )
  assert got_ids.dtype == np.int64 and got_ids.tolist() == ids.tolist()
  np.testing.assert_array_equal(rows, old)
  assert rows.flags.c_contiguous  # as FAISS needs them
  # Another id column, and ids that are no canonical integers stay strings.
  got_ids, _ = inputs.load_version(
    None, str(tmp_path / "old.csv"), id_column="name", columns=("f0",)
  )
  assert got_ids.tolist() == [f"n{i}" for i in ids]


@pytest.mark.parametrize("layout", ["list", "fixed_size_list", "columns", "pandas"])
def test_parquet_reads_a_list_column_or_number_columns(tmp_path, pair, layout):
  ids, old, _ = pair
  path = str(tmp_path / "old.parquet")
  if layout == "pandas":
    pd.DataFrame({"id": ids, "vector": list(old)}).to_parquet(path)
  elif layout == "columns":
    pq.write_table(
      pa.table({"id": ids, **{f"c{j}": old[:, j] for j in range(4)}}), path
    )
  else:
    kind = pa.list_(pa.float32(), 4 if layout == "fixed_size_list" else -1)
    pq.write_table(
      pa.table({"id": ids, "vector": pa.array(list(old), type=kind)}), path
    )
  got_ids, rows = inputs.load_version("old", path)
  assert got_ids.tolist() == ids.tolist()
  np.testing.assert_array_equal(rows, old)
  assert rows.flags.c_contiguous


BAD_CSV = [
  ("", "--old={path}: the file is empty (0 bytes)"),
  ("id,a,b\n", "--old={path}: a header and no rows; expected a row per id"),
  (
    "key,a\n1,0.5\n",
    "--old={path} line 1: no id column 'id' among the columns ['key', 'a']",
  ),
  (
    "id,a,b\n1,0.5,0.1\n2,x,0.3\n",
    "--old={path} line 3, column 'a': 'x' is not a number",
  ),
  ("id,a,b\n1,0.5,0.1\n2,0.3\n", "--old={path} line 3: 2 fields, the header has 3"),
  ("id,a\n1,0.5\n\n1,0.2\n", "--old={path} line 4: id '1' repeats line 2"),
  ("id,a,b\n1,0.5,0.1\n2,0.3,inf\n", "--old={path} line 3, column 'b': inf (NaN or"),
  ("id\n1\n", "--old={path} line 1: only the id column; expected vector columns too"),
]


@pytest.mark.parametrize("text,message", BAD_CSV)
def test_a_bad_csv_is_one_line_naming_line_and_column(tmp_path, text, message):
  path = tmp_path / "old.csv"
  path.write_text(text)
  with pytest.raises(InputError) as error:
    inputs.load_version("old", str(path))
  assert str(error.value).startswith(message.format(path=path))


def test_a_bad_parquet_is_one_line_naming_row_and_column(tmp_path):
  def message(table):
    path = tmp_path / "v.parquet"
    pq.write_table(table, path)
    with pytest.raises(InputError) as error:
      inputs.load_version("new", str(path))
    return str(error.value).replace(f"--new={path}", "F")

  vec = pa.list_(pa.float32())
  assert message(pa.table({"id": [1, 2], "v": pa.array([[1.0], [1.0, 2.0]], vec)})) == (
    "F row 1, column 'v': 2 values, row 0 has 1"
  )
  assert (
    message(pa.table({"id": [1, 1], "a": [0.1, 0.2]}))
    == "F row 1: id '1' repeats row 0"
  )
  assert message(pa.table({"id": [1, None], "a": [0.1, 0.2]})) == (
    "F row 1, column 'id': no id (null)"
  )
  assert message(pa.table({"id": [1, 2], "a": ["x", "y"]})).startswith(
    "F, column 'a': type string is not numeric"
  )
  assert message(pa.table({"id": [1, 2], "a": [0.1, float("nan")]})).startswith(
    "F row 1, column 'a': nan (NaN or infinity)"
  )
  assert message(
    pa.table({"id": pa.array([], pa.int64()), "a": pa.array([], pa.float64())})
  ) == ("F: a schema and no rows; expected a row per id")
  (tmp_path / "junk.parquet").write_text("not parquet")
  with pytest.raises(InputError, match="not a readable Parquet file"):
    inputs.load_version("new", str(tmp_path / "junk.parquet"))


def test_an_empty_npy_or_npz_is_one_line(tmp_path):
  for name in ("old.npy", "old.npz"):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(InputError, match=f"--old={tmp_path / name}: the file is empty"):
      inputs.load_version("old", str(tmp_path / name))


@pytest.mark.parametrize(
  "family,k,fraction",
  [("auto", 10, 0.2), ("linear", 1, 0.2), ("mlp", 1, 0.5), ("auto", 2, 0.9)],
)
def test_matched_rows_needed_is_the_least_that_splits_and_searches(family, k, fraction):
  needed, _ = protocol.matched_rows_needed(family, fraction, k)

  def works(n):  # by hand: test rows as split_ids takes them, fit rows, index
    if n < 2:
      return False
    train, test = protocol.split_ids(n, fraction, 0)
    return (
      len(test) >= 1 and len(train) >= protocol.FIT_ROWS.get(family, 1) and n - 1 >= k
    )

  assert works(needed) and not works(needed - 1)


@pytest.mark.parametrize("rows", [1, 3, 6])
def test_too_few_matched_rows_say_how_many_are_needed(tmp_path, pair, rows):
  ids, old, new = pair
  for name, rows_of in (("old", old), ("new", new)):
    np.savez(tmp_path / f"{name}.npz", ids=ids[:rows], embeddings=rows_of[:rows])
  with pytest.raises(InputError) as error:
    binary.run(
      str(tmp_path / "w"), str(tmp_path / "old.npz"), str(tmp_path / "new.npz")
    )
  assert str(error.value) == (
    f"--old and --new match {rows} ids; a bridge here needs at least 11 matched "
    "rows (--k=10 searches an index of every other row: 11 rows)"
  )


def test_fit_takes_old_and_new_by_name_only(pair):
  _, old, new = pair
  with pytest.raises(TypeError):
    align.fit(old, new)  # swapped, this would fit the other direction
  assert align.fit(old=old, new=new, family="linear").params["kernel"].shape == (6, 4)


def test_the_binary_reads_a_csv_and_a_parquet_version(tmp_path, pair):
  ids, old, new = pair
  frame = pd.DataFrame({"id": ids, **{f"o{j}": old[:, j] for j in range(4)}})
  frame.sample(frac=1.0, random_state=0).to_csv(tmp_path / "old.csv", index=False)
  pq.write_table(pa.table({"id": ids, "vector": list(new)}), tmp_path / "new.parquet")
  done = run_module(
    "experiments.align",
    f"--workdir={tmp_path / 'w'}",
    f"--old={tmp_path / 'old.csv'}",
    f"--new={tmp_path / 'new.parquet'}",
    "--family=linear",
    "--nobackfill",
    cwd=ROOT,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert "ids: 60 in both versions" in done.stdout
  # An exact linear pair, matched by id although the CSV's rows are shuffled.
  assert "| self-retrieval Recall@10 | 1.0000 |" in done.stdout
