"""A LanceDB table of old vectors migrated to the new model, on the real package.

The table's search along the way is checked against the backfilling curve
of :mod:`bcjax.align.backfill`; a migration killed with SIGKILL is rerun and
checked commit by commit; the rollback tag is checked to outlive
``optimize()``; bad input is checked to leave the table as it was.
"""

import datetime
import os
import signal
import subprocess
import sys
import time
import warnings

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from bcjax import align
from bcjax.align import backfill, lancedb_table
from bcjax.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 240
# The killed run's batches: 60 commits, so that after the fifth the run has
# over 50 left, far more than the moment the kill takes on a loaded machine.
BATCH = 4


@pytest.fixture(scope="module")
def pair():
  # Noisy enough that the forward-mapped index misses some own rows: the
  # curve rises as rows are backfilled, and the orders differ.
  rng = np.random.default_rng(0)
  new = rng.normal(size=(N, 12)).astype(np.float32)
  old = (new @ rng.normal(size=(12, 8)) + 1.5 * rng.normal(size=(N, 8))).astype(
    np.float32
  )
  return old, new


def _old_table(directory, old, ids=None):
  """The table a team keeps: ids, a column of its own and old vectors."""
  ids = np.arange(len(old)) if ids is None else ids
  data = pa.table(
    {
      "id": pa.array(ids),
      "title": pa.array([f"item {i}" for i in range(len(old))]),
      "vector": pa.FixedSizeListArray.from_arrays(pa.array(old.ravel()), old.shape[1]),
    }
  )
  return lancedb.connect(str(directory)).create_table("items", data)


def _column(table, name, order_by="id"):
  data = table.to_arrow().sort_by(order_by)
  column = data[name].combine_chunks()
  if pa.types.is_fixed_size_list(column.type):
    return column.flatten().to_numpy().reshape(len(column), -1)
  return column.to_numpy(zero_copy_only=False)


@pytest.mark.parametrize("order", lancedb_table.ORDERS)
def test_the_tables_cosine_search_along_the_way_is_the_backfilling_curve(
  tmp_path, pair, order
):
  old, new = pair
  _old_table(tmp_path, old)
  done = lancedb_table.migrate(
    str(tmp_path),
    "items",
    (np.arange(N), new),
    order=order,
    batch_size=60,
    max_batches=2,
    family="linear",
    seed=3,
    measure_queries=N,
    log=lambda line: None,
  )
  assert (done["migrated"], done["planned"], done["batches"]) == (120, N, 2)
  table = lancedb_table.open_table(str(tmp_path), "items")
  forwarded = backfill.fit_forward(old, new, family="linear").apply(old)
  want_order = {
    "bridge_residual": backfill.residual_order(
      backfill.residuals(align.fit(old=old, new=new, family="linear").apply(new), old)
    ),
    "forward_residual": backfill.residual_order(backfill.residuals(forwarded, new)),
    "random": backfill.random_order(N, 3),
  }[order]
  np.testing.assert_array_equal(np.argsort(_column(table, "rank")), want_order)
  migrated = _column(table, "migrated")
  assert sorted(np.flatnonzero(migrated)) == sorted(want_order[:120])
  vectors = _column(table, "vector")
  np.testing.assert_array_equal(vectors[migrated], new[migrated])
  np.testing.assert_allclose(vectors[~migrated], forwarded[~migrated], atol=1e-5)
  np.testing.assert_array_equal(_column(table, "old_vector"), old)
  assert _column(table, "title").tolist() == [f"item {i}" for i in range(N)]
  # Measured in the table at 0, a tenth crossed at 0.25 and 0.5: the curve.
  fractions = [f for f, _ in done["curve"]]
  assert fractions == [0.0, 0.25, 0.5]
  want = backfill.curve(new, forwarded, np.arange(N), want_order, fractions=fractions)
  got = np.array([v for _, v in done["curve"]])
  np.testing.assert_allclose(got, want, atol=1 / N)  # a near tie may swap one
  assert want[-1] > want[0] + 5 / N  # the curve rises: the check can fail
  assert lancedb_table.self_recall(table, np.arange(N), new, k=10) == pytest.approx(
    want[-1], abs=1 / N
  )
  first = want_order[0]  # migrated: its new vector finds itself, one query alone
  assert lancedb_table.self_recall(table, [first], new[[first]], k=1) == 1.0
  with pytest.raises(InputError, match=r"queries must have 12 dims, got shape"):
    lancedb_table.self_recall(table, [first], old[[first]])


def _migrated_per_version(table, since: int) -> list[int]:
  counts = []
  for version in [v["version"] for v in table.list_versions()]:
    if version > since:
      table.checkout(version)
      counts.append(table.count_rows("migrated"))
  table.checkout_latest()
  return counts


def test_a_migration_killed_mid_run_resumes_with_nothing_lost_or_twice(tmp_path, pair):
  old, new = pair
  ids = np.array([f"m{i}" for i in range(N)])
  _old_table(tmp_path / "db", old, ids)
  # The new file holds the ids in another order than the table.
  shuffle = np.random.default_rng(1).permutation(N)
  np.savez(tmp_path / "new.npz", ids=ids[shuffle], embeddings=new[shuffle])
  args = [
    "--db",
    str(tmp_path / "db"),
    "--table=items",
    f"--new={tmp_path / 'new.npz'}",
    f"--batch_size={BATCH}",
    "--family=linear",
    "--order=forward_residual",
    "--measure_queries=0",
  ]
  process = subprocess.Popen(
    [sys.executable, "-m", "experiments.align", "migrate", *args],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
  )
  said, times = [], []
  for line in process.stdout:
    said.append(line)
    times.append(time.monotonic())
    if line.startswith("batch 5:"):
      # Half a commit's time after batch 5 was said: inside batch 6's commit
      # (a commit is most of the time between two lines), or just before it.
      time.sleep((times[-1] - times[-2]) / 2)
      process.send_signal(signal.SIGKILL)
      break
  process.wait(timeout=60)
  assert process.returncode == -signal.SIGKILL, said
  table = lancedb_table.open_table(str(tmp_path / "db"), "items")
  tagged = table.tags.get_version(lancedb_table.TAG)
  killed_at = table.count_rows("migrated")
  assert 5 * BATCH <= killed_at < N  # stopped mid-way; no batch it said is lost
  lines = []
  done = lancedb_table.migrate(
    str(tmp_path / "db"),
    "items",
    str(tmp_path / "new.npz"),
    order="forward_residual",
    batch_size=BATCH,
    family="linear",
    log=lines.append,
  )
  assert done["migrated"] == N and done["batches"] == (N - killed_at) // BATCH
  assert not any(line.startswith("converted") for line in lines)  # resumed
  # Every commit after the conversion migrated exactly one batch of new rows:
  # none was redone (a count that rose by less) and none was lost.
  table = lancedb_table.open_table(str(tmp_path / "db"), "items")
  counts = _migrated_per_version(table, since=tagged)
  assert counts == list(range(0, N + 1, BATCH))
  assert table.count_rows() == N
  assert sorted(_column(table, "id").tolist()) == sorted(ids.tolist())
  np.testing.assert_array_equal(_column(table, "vector"), new[np.argsort(ids)])
  np.testing.assert_array_equal(_column(table, "old_vector"), old[np.argsort(ids)])
  # A third run has nothing left to do and commits nothing.
  version = table.version
  again = lancedb_table.migrate(
    str(tmp_path / "db"),
    "items",
    str(tmp_path / "new.npz"),
    order="forward_residual",
    family="linear",
    log=lines.append,
  )
  assert again["batches"] == 0 and again["version"] == version
  # Done, its bookkeeping dropped, the table of new vectors migrates to a
  # third model: a new plan, and the tag moves to the version before it.
  table.drop_columns(["old_vector", "migrated", "rank"])
  third = np.random.default_rng(2).normal(size=(N, 5)).astype(np.float32)
  quiet = {"family": "linear", "log": lines.append}
  lancedb_table.migrate(str(tmp_path / "db"), "items", (ids, third), **quiet)
  table = lancedb_table.open_table(str(tmp_path / "db"), "items")
  assert lancedb_table.plan_of(table)["d_old"] == 12
  np.testing.assert_array_equal(_column(table, "old_vector"), new[np.argsort(ids)])
  assert table.tags.get_version(lancedb_table.TAG) > tagged


def test_rollback_by_the_tag_after_optimize_deleted_the_other_versions(tmp_path, pair):
  old, new = pair
  before = _old_table(tmp_path, old).version
  lancedb_table.migrate(
    str(tmp_path),
    "items",
    (np.arange(N), new),
    batch_size=100,
    family="linear",
    log=lambda line: None,
  )
  table = lancedb_table.open_table(str(tmp_path), "items")
  middle = before + 2  # the conversion and the first batch: untagged
  table.checkout(middle)
  table.checkout_latest()
  # optimize() deletes versions older than its cleanup_older_than (7 days by
  # default); 0 deletes every old version the moment it runs.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # "removes every version"
    table.optimize(cleanup_older_than=datetime.timedelta(0))
  kept = [v["version"] for v in table.list_versions()]
  assert before in kept and middle not in kept, kept
  with pytest.raises(Exception, match=str(middle)):
    table.checkout(middle)
  table.checkout_latest()
  version = lancedb_table.rollback(str(tmp_path), "items")
  table = lancedb_table.open_table(str(tmp_path), "items")
  assert table.version == version
  assert table.schema.names == ["id", "title", "vector"]
  assert lancedb_table.plan_of(table) is None
  np.testing.assert_array_equal(_column(table, "vector"), old)
  # Rolled back, the table migrates again from the start.
  done = lancedb_table.migrate(
    str(tmp_path), "items", (np.arange(N), new), family="linear", log=lambda _: None
  )
  assert done["migrated"] == N


def _bad(tmp_path, pair, case):
  old, new = pair
  ids = np.arange(N)
  kwargs = {"family": "linear", "log": lambda line: None}
  if case == "ids":
    return (ids + 5, new), kwargs, r"new: 5 of its 240 ids are not in the table"
  if case == "types":
    return (ids.astype(str), new), kwargs, "ids differ in type"
  if case == "bridge":
    bridge = align.fit(old=old[:, :6], new=new, family="linear")
    return (ids, new), {**kwargs, "bridge": bridge}, "the bridge maps 12 -> 6 dims"
  if case == "repeated":
    return (
      (np.r_[ids[:-1], 0], new),
      kwargs,
      r"new ids must be distinct; repeated: \[0\]",
    )
  if case == "order":
    kwargs["order"] = "shuffled"
    return (ids, new), kwargs, "unknown order 'shuffled'; expected one of"
  raise AssertionError(case)


@pytest.mark.parametrize("case", ["ids", "types", "repeated", "bridge", "order"])
def test_bad_input_is_one_line_and_the_table_stays_as_it_was(tmp_path, pair, case):
  table = _old_table(tmp_path, pair[0])
  version = table.version
  new, kwargs, message = _bad(tmp_path, pair, case)
  with pytest.raises(InputError, match=message):
    lancedb_table.migrate(str(tmp_path), "items", new, **kwargs)
  table = lancedb_table.open_table(str(tmp_path), "items")
  assert table.version == version and table.tags.list() == {}
  assert table.schema.names == ["id", "title", "vector"]


def test_a_rerun_with_other_vectors_or_order_is_refused(tmp_path, pair):
  old, new = pair
  _old_table(tmp_path, old)
  quiet = {"family": "linear", "log": lambda line: None, "batch_size": 100}
  start = (str(tmp_path), "items")
  lancedb_table.migrate(*start, (np.arange(N), new), max_batches=1, **quiet)
  version = lancedb_table.open_table(*start).version
  with pytest.raises(InputError, match="is not the new vectors table 'items'"):
    lancedb_table.migrate(*start, (np.arange(N), new + 1), **quiet)
  with pytest.raises(InputError, match="in bridge_residual order, not random"):
    lancedb_table.migrate(*start, (np.arange(N), new), order="random", **quiet)
  with pytest.raises(InputError, match="the migration was planned with 240"):
    lancedb_table.migrate(*start, (np.arange(N - 1), new[:-1]), **quiet)
  with pytest.raises(InputError, match="is being migrated to 12 dims"):
    lancedb_table.migrate(*start, (np.arange(N), new[:, :10]), **quiet)
  assert lancedb_table.open_table(*start).version == version
  with pytest.raises(InputError, match="no tag 'other'"):
    lancedb_table.rollback(*start, tag="other")
  with pytest.raises(InputError, match="no LanceDB table 'nothing'"):
    lancedb_table.open_table(str(tmp_path), "nothing")
  with pytest.raises(InputError, match="absent: no such folder"):
    lancedb_table.open_table(str(tmp_path / "absent"), "items")
  assert not (tmp_path / "absent").exists()  # not made by the failed open


def test_without_lancedb_one_line_names_the_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "lancedb", None)  # import lancedb fails
  with pytest.raises(InputError, match=r"needs lancedb .*bcjax\[stores\]"):
    lancedb_table.open_table(str(tmp_path), "items")


def test_a_table_that_is_not_one_of_old_vectors_is_named(tmp_path, pair):
  old, new = pair
  connection = lancedb.connect(str(tmp_path))
  connection.create_table("plain", pa.table({"id": [1, 2], "name": ["a", "b"]}))
  twice = _old_table(tmp_path / "twice", old, np.r_[np.arange(N - 1), 0])
  quiet = {"family": "linear", "log": lambda line: None}
  with pytest.raises(InputError, match=r"expected an 'id' column and a 'vector'"):
    lancedb_table.migrate(str(tmp_path), "plain", (np.arange(2), new[:2]), **quiet)
  with pytest.raises(InputError, match="table 'items' has repeated ids"):
    lancedb_table.migrate(
      str(tmp_path / "twice"), "items", (np.arange(N - 1), new[:-1]), **quiet
    )
  assert (
    twice.version == lancedb_table.open_table(str(tmp_path / "twice"), "items").version
  )
