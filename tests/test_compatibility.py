"""Compatibility analytics: hand-made chains with known answers, and compare.

The hand-made stores are real Orbax checkpoints written by ``VersionStore``
with chosen embeddings and transforms, so the registry serves them exactly as
it serves a trained run.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import bcjax.jobs.comparison as comparison
from bcjax import compatibility, registry
from bcjax.data.split import split_version
from bcjax.errors import InputError
from bcjax.fitting.consumers import ConsumerConfig, fit_consumer
from bcjax.fitting.tasks import CORE_TASKS, build_task
from bcjax.jobs import analytics
from bcjax.jobs.config import validate
from bcjax.storage.checkpoints import VersionStore
from experiments.configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_VERSIONS = 3


def _metadata(k, dim, transform):
  return {"strategy": "hand-made", "version": k, "dim": dim, "layers": 1,
          "transform": transform}  # fmt: skip


def _store(path, tables, kernels):
  """Saves versions with ``tables[k] = (user, item)`` and linear ``B_k``.

  Args:
    path: the strategy folder.
    tables: per version, ``(num_users_k, d_k)`` and ``(num_items_k, d_k)``.
    kernels: per version ``k >= 1``, B_k's ``(d_k, d_{k-1})`` matrix.
  """
  with VersionStore(path) as store:
    for k, (user, item) in enumerate(tables):
      dim = user.shape[1]
      if k == 0:
        transform, spec = None, {"name": "none", "d_in": dim, "d_out": dim}
      else:
        kernel = kernels[k - 1]
        transform = {"kernel": kernel}
        spec = {"name": "linear", "d_in": kernel.shape[0], "d_out": kernel.shape[1]}
      store.save(
        k,
        model={"params": {"w": np.zeros(1, np.float32)}},
        transform=transform,
        embeddings=(user, item),
        metadata=_metadata(k, dim, spec),
      )


@pytest.fixture(scope="module")
def splits(small_graph):
  return [split_version(small_graph, k) for k in range(NUM_VERSIONS)]


def _grown(splits, dim, seed):
  """Embeddings whose version k extends version k-1 with its new nodes' rows."""
  rng = np.random.default_rng(seed)
  last = splits[-1]
  user = rng.normal(size=(last.num_users, dim)).astype(np.float32)
  item = rng.normal(size=(last.num_items, dim)).astype(np.float32)
  return [(user[: s.num_users], item[: s.num_items]) for s in splits]


def test_identity_chain_has_zero_drift(tmp_path, splits):
  tables = _grown(splits, 8, 0)
  eye = np.eye(8, dtype=np.float32)
  _store(str(tmp_path / "s"), tables, [eye, eye])
  reg = registry.open(str(tmp_path / "s"))
  drift = compatibility.chain_drift(reg)
  reg.close()
  assert set(drift) == {(0, 1), (0, 2), (1, 2)}
  assert all(d == 0.0 for d in drift.values()), drift


def test_drift_is_relative_to_the_norm_of_the_old_version():
  saved = np.array([[3.0, 4.0], [0.0, 5.0]])  # norms 5 and 5
  mapped = saved + np.array([[1.0, 0.0], [0.0, 3.0]])  # distances 1 and 3
  assert compatibility.relative_drift(mapped, saved) == pytest.approx(2.0 / 5.0)


def test_random_orthogonal_chain_retrieves_as_the_same_version(tmp_path, splits):
  """z_k = z_{k-1} Q_k and B_k = Q_k^T: every score is the same-version one."""
  rng = np.random.default_rng(1)
  base = _grown(splits, 16, 2)
  tables, kernels, rotations = [base[0]], [], [np.eye(16)]
  for k in range(1, NUM_VERSIONS):
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    rotations.append(rotations[-1] @ q)
    tables.append(tuple((t @ rotations[k]).astype(np.float32) for t in base[k]))
    kernels.append(q.T.astype(np.float32))
  _store(str(tmp_path / "s"), tables, kernels)
  reg = registry.open(str(tmp_path / "s"))

  def frozen(j, k):  # M_j on G_k: version k's rows in version j's space
    return tuple((t @ rotations[j]).astype(np.float32) for t in base[k])

  drift = compatibility.chain_drift(reg)
  assert max(drift.values()) < 1e-5
  for j, k in ((0, 1), (0, 2), (1, 2)):
    out = compatibility.retrieval(reg, frozen, splits, j, k)
    assert out["num_users"] > 0 and out["num_targets"] > 0
    assert out["new_old"] == out["new_new"] == out["old_old"], out
    assert out["compatible"] is False  # equal is not better (BCT is strict)
  reg.close()


def test_retrieval_scores_only_the_old_index(splits):
  """Targets outside the old index are dropped; training items excluded."""
  j, k = 0, 2
  n = splits[j].num_items
  restricted = compatibility.index_split(splits[k], n)
  assert restricted.num_items == n
  assert restricted.val_item.max() < n and restricted.train_item.max() < n
  assert len(restricted.val_item) < len(splits[k].val_item)
  # A query that scores each user's targets 1 finds them; one that scores
  # them -1 ranks them last, behind at least 5 other index items.
  users = np.zeros((splits[k].num_users, n), np.float32)
  users[restricted.val_user, restricted.val_item] = 1.0
  index = np.eye(n, dtype=np.float32)
  out = compatibility.retrieval_recalls(
    restricted, users, users, -users, index, index, top=5
  )
  assert out["new_old"] == out["new_new"] > 0.5
  assert out["old_old"] == 0.0 and out["compatible"] is True
  assert out["num_users"] == len(np.unique(restricted.val_user))


def test_consumer_on_equal_embeddings_scores_the_same_at_every_version(
  tmp_path, small_graph, splits
):
  tables = _grown(splits, 8, 3)
  eye = np.eye(8, dtype=np.float32)
  _store(str(tmp_path / "s"), tables, [eye, eye])
  reg = registry.open(str(tmp_path / "s"))
  task = build_task("binary-edge-rating", small_graph, splits, start=0)
  config = ConsumerConfig(hidden_sizes=(8,), dropouts=(0.0,), seeds=1, epochs=2)
  consumer = fit_consumer(task, tables[0], tables[0], config, jax.random.key(0))
  scores = [
    consumer.outputs(compatibility.saved_tables(reg, k, 0), task.train)
    for k in range(NUM_VERSIONS)
  ]
  for k in range(1, NUM_VERSIONS):
    np.testing.assert_array_equal(scores[k], scores[0])
  row = compatibility.consumer_row(
    consumer,
    task,
    lambda k: compatibility.saved_tables(reg, k, 0),
    lambda k: tables[k],
  )
  reg.close()
  assert row["values"] == row["frozen"] and set(row["values"]) == {1, 2}
  summary = compatibility.summarize_consumers({task.name: {0: row}})
  assert summary["relative"] == 0.0


def test_tasks_shift_with_the_start_version(small_graph, splits):
  edge = build_task("binary-edge-rating", small_graph, splits, start=1)
  assert edge.selection_version == 1 and sorted(edge.evaluation) == [1, 2]
  assert len(edge.train) == splits[1].num_train
  activity = build_task("user-activity", small_graph, splits, start=1)
  assert activity.selection_version == 2 and activity.eval_versions == []
  np.testing.assert_array_equal(
    activity.train.labels,
    np.isin(np.arange(splits[1].num_users), splits[1].val_user).astype(np.int32),
  )
  with pytest.raises(InputError, match="selects on version 3 and needs >= 4"):
    build_task("user-activity", small_graph, splits, start=2)


# -- bad input ---------------------------------------------------------------------


def test_fewer_than_two_versions_is_one_line(tmp_path, splits):
  _store(str(tmp_path / "s"), _grown(splits, 4, 0)[:1], [])
  with pytest.raises(InputError, match=r"holds 1 version\(s\); .* at least two"):
    compatibility.check_strategy_folder(str(tmp_path / "s"))
  config = test_config.get_config()
  config.num_versions = 1
  config.compatibility.enabled = True
  with pytest.raises(InputError, match="need at least two versions, got 1"):
    validate(config)


def test_strategy_folder_without_transforms_is_named(tmp_path, splits):
  path = str(tmp_path / "foreign")
  with VersionStore(path) as store:
    for k, (user, item) in enumerate(_grown(splits, 4, 0)[:2]):
      spec = {"name": "linear", "d_in": 4, "d_out": 4}
      store.save(
        k,
        model={"w": np.zeros(1, np.float32)},
        transform=None,  # B_1 learned but not saved: a foreign checkpoint
        embeddings=(user, item),
        metadata=_metadata(k, 4, spec),
      )
  with pytest.raises(InputError, match=f"{path}: version 1 has no saved B_1"):
    compatibility.check_strategy_folder(path)


def test_start_version_outside_the_range_is_one_line():
  assert compatibility.check_start_versions((), 4) == [0, 1, 2]
  with pytest.raises(InputError, match=r"start version 3 is outside 0\.\.2"):
    compatibility.check_start_versions((3,), 4)
  config = test_config.get_config()
  config.compatibility.enabled = True
  config.compatibility.start_versions = (-1,)
  with pytest.raises(InputError, match=r"start version -1 is outside 0\.\.0"):
    validate(config)


# -- the main job ------------------------------------------------------------------


def _compare_config():
  config = test_config.get_config()
  config.num_versions = NUM_VERSIONS
  config.dims = (16, 24, 32)
  config.layers = (1, 2, 2)
  # Fewer strategies than the paper's eight keep the test fast; fix-m0 is the
  # table's reference, nobc and the post-hoc one share their models.
  config.strategy = "fix-m0,nobc,posthoc-linear-mloss,joint-linear-mloss"
  config.compatibility.enabled = True
  return config


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("compat"))
  return workdir, comparison.run(_compare_config(), workdir)


def test_start_zero_row_is_the_tables_unintended_column(compared):
  _, results = compared
  consumers = results["compatibility"]["consumers"]
  for row in results["table"]["rows"]:
    start0 = consumers[row["strategy"]]["per_start"]["0"]
    assert start0["relative"] == pytest.approx(row["unintended"], abs=1e-9)
    assert start0["mean"] == pytest.approx(row["mean_unintended"], abs=1e-12)
  # fix-m0's chain is the identity and its M_j is M_0: no difference anywhere.
  fix = consumers["fix-m0"]
  assert fix["relative"] == 0.0
  assert fix["matrix"] == fix["frozen_matrix"]
  assert set(fix["per_start"]) == {"0", "1"}


def test_compare_writes_the_analytics(compared):
  workdir, results = compared
  compat = results["compatibility"]
  on_disk = json.load(open(os.path.join(workdir, "compatibility.json")))
  assert on_disk["drift"] == compat["drift"]
  assert json.load(open(os.path.join(workdir, "results.json")))["compatibility"]
  for name in compat["plots"]:
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  assert {"compat_retrieval.png", "compat_drift.png"} <= set(compat["plots"])
  assert "compat_consumers_joint-linear-mloss.png" in compat["plots"]
  table_md = open(os.path.join(workdir, "table.md")).read()
  assert "## Compatibility: drift along the chain" in table_md
  pairs = [
    (p["index_version"], p["query_version"]) for p in compat["retrieval"]["nobc"]
  ]
  assert pairs == [(0, 1), (0, 2), (1, 2)]
  # fix-m0 serves M_0 through the identity: the new query is the old one.
  for p in compat["retrieval"]["fix-m0"]:
    assert p["new_old"] == p["old_old"] and p["compatible"] is False


def test_compare_writes_blending_and_backfilling(compared):
  workdir, results = compared
  compat = results["compatibility"]
  newest = NUM_VERSIONS - 1
  assert {"compat_blend.png", "compat_backfill.png"} <= set(compat["plots"])
  table_md = open(os.path.join(workdir, "table.md")).read()
  assert "## Compatibility: blending toward the newest version" in table_md
  assert "## Compatibility: partial backfilling to the newest version" in table_md
  for strategy, rows in compat["backfilling"].items():
    assert [(r["index_version"], r["query_version"]) for r in rows] == [
      (j, newest) for j in range(newest)
    ]
    retrieval = {
      (p["index_version"], p["query_version"]): p for p in compat["retrieval"][strategy]
    }
    for r in rows:
      # Fully backfilled, the index is M_k's: retrieval's new query / new index.
      new_new = retrieval[(r["index_version"], newest)]["new_new"]
      for order, curve in r["curves"].items():
        assert curve[-1] == pytest.approx(new_new, abs=1e-12), (strategy, order)
        assert curve[0] == r["curves"]["random"][0]
      # The newest version's consumers read the same index; the activity
      # tasks select on version k + 1 and are skipped.
      tasks = r["consumers"]["tasks"]
      assert set(tasks) == set(CORE_TASKS)
      for name in ("user-activity", "user-positive-activity"):
        assert "needs >= 4 versions" in tasks[name]["skipped"], tasks[name]
      edge = tasks["binary-edge-rating"]
      assert edge["index_examples"] > 0
      for curve in edge["curves"].values():
        assert len(curve) == len(r["consumers"]["fractions"])
        assert curve[0] == edge["curves"]["random"][0]
        assert curve[-1] == edge["curves"]["random"][-1]
  # nobc and its post-hoc strategy share z_j and z_k, hence F, the consumers
  # (one fit) and the orders that do not read B_k.
  for r, p in zip(
    compat["backfilling"]["nobc"],
    compat["backfilling"]["posthoc-linear-mloss"],
    strict=True,
  ):
    for name in ("binary-edge-rating", "binary-item-rating-avg"):
      a, b = r["consumers"]["tasks"][name], p["consumers"]["tasks"][name]
      assert a["curves"]["forward residual"] == b["curves"]["forward residual"]
      assert a["curves"]["random"] == b["curves"]["random"]
  assert "index version 0:" in table_md
  for strategy, rows in compat["blending"].items():
    assert [r["index_version"] for r in rows] == list(range(newest))
    for r in rows:
      assert "skipped" not in r, (strategy, r)
      assert r["stored"] == r["test"]["0"] and r["bridged"] == r["test"]["1"]
      assert r["blended"] == r["test"][f"{r['alpha']:g}"]


def test_rerun_refits_no_consumer(compared, monkeypatch):
  workdir, results = compared

  def fail(*args, **kwargs):
    raise AssertionError("a finished consumer was refitted")

  monkeypatch.setattr(compatibility.measures, "fit_consumer", fail)
  again = analytics.analyze_workdir(workdir)
  again.pop("plots")
  again.pop("seconds")
  expected = dict(results["compatibility"])
  expected.pop("plots")
  expected.pop("seconds")
  assert again == expected


def test_analyze_binary_reports_bad_start_version_in_one_line(compared):
  workdir, _ = compared
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.analyze",
      f"--workdir={workdir}",
      "--start_versions=0,2",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith("error: start version 2")
  assert "Traceback" not in proc.stderr
