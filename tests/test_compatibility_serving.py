"""Blending and partial backfilling in the compatibility analytics, on
hand-made chains, cross-checked against brute-force NumPy recall and, for
the consumers' backfilling curves, against the consumers evaluated by hand on
tables mixed in NumPy.

The stores are real Orbax checkpoints (``tests.test_compatibility._store``),
served by the registry as a trained run is.
"""

import os

import numpy as np
import pytest

from bcjax import compatibility, registry
from bcjax.align.blend import ALPHAS
from bcjax.compatibility.analysis import settings_from_config
from bcjax.data.split import split_version
from bcjax.errors import InputError
from bcjax.evaluation.compatibility_plots import serving_figures
from bcjax.evaluation.recall import held_out_halves
from bcjax.fitting.consumers import ConsumerConfig
from bcjax.fitting.tasks import CORE_TASKS
from experiments.configs import test as test_config
from tests.test_compatibility import NUM_VERSIONS, _store

TOP = 10
DIMS = (8, 10, 12)


@pytest.fixture(scope="module")
def splits(small_graph):
  return [split_version(small_graph, k) for k in range(NUM_VERSIONS)]


def brute_recall(split, queries, items, users, top=TOP):
  """Recall@top by sorting every score (float64), ties to the lower item."""
  out = []
  for u in users:
    scores = np.asarray(queries[u], np.float64) @ np.asarray(items, np.float64).T
    scores[split.train_item[split.train_user == u]] = -np.inf
    targets = set(split.val_item[split.val_user == u].tolist())
    best = np.argsort(-scores, kind="stable")[:top]
    out.append(len(targets & set(best.tolist())) / len(targets))
  return float(np.mean(out))


def brute_slerp(a, b, alpha):
  u = a / np.linalg.norm(a, axis=1, keepdims=True)
  v = b / np.linalg.norm(b, axis=1, keepdims=True)
  theta = np.arccos(np.clip(np.sum(u * v, axis=1, keepdims=True), -1, 1))
  return (np.sin((1 - alpha) * theta) * u + np.sin(alpha * theta) * v) / np.sin(theta)


def _random_store(path, splits, seed):
  """Independent embeddings per version and random linear B_k: every version,
  its stored rows and its bridged ones disagree."""
  rng = np.random.default_rng(seed)
  tables = [
    (
      rng.normal(size=(s.num_users, d)).astype(np.float32),
      rng.normal(size=(s.num_items, d)).astype(np.float32),
    )
    for s, d in zip(splits, DIMS, strict=True)
  ]
  kernels = [
    (rng.normal(size=(DIMS[k], DIMS[k - 1])) / np.sqrt(DIMS[k])).astype(np.float32)
    for k in range(1, NUM_VERSIONS)
  ]
  _store(path, tables, kernels)
  return tables, kernels


@pytest.fixture(scope="module")
def random_chain(tmp_path_factory, splits):
  path = str(tmp_path_factory.mktemp("serving") / "s")
  tables, kernels = _random_store(path, splits, 7)
  reg = registry.open(path)
  yield reg, tables, kernels
  reg.close()


def test_blending_ends_are_the_stored_and_bridged_queries(random_chain, splits):
  reg, tables, kernels = random_chain
  j, k = 0, 2
  row = compatibility.blending(reg, splits, j, k, top=TOP, seed=3)
  assert set(row["validation"]) == set(row["test"]) == {f"{a:g}" for a in ALPHAS}
  # alpha is the validation argmax, ties to the smaller alpha.
  best = max(row["validation"].values())
  assert row["alpha"] == min(
    float(a) for a, v in row["validation"].items() if v == best
  )
  assert row["blended"] == row["test"][f"{row['alpha']:g}"]

  stored_users, old_index = tables[j]
  bridged = tables[k][0].astype(np.float64) @ kernels[1] @ kernels[0]
  split = compatibility.index_split(splits[k], len(old_index))
  users = np.unique(split.val_user)
  choose, test = held_out_halves(users[users < len(stored_users)], 3)
  assert (row["validation_users"], row["test_users"]) == (len(choose), len(test))
  stored = bridged.copy()
  stored[: len(stored_users)] = stored_users
  assert row["stored"] == row["test"]["0"]
  assert row["stored"] == pytest.approx(brute_recall(split, stored, old_index, test))
  assert row["bridged"] == row["test"]["1"]
  assert row["bridged"] == pytest.approx(brute_recall(split, bridged, old_index, test))
  assert row["stored"] != row["bridged"]  # the two ends differ: not vacuous
  half = bridged.copy()
  n = len(stored_users)
  half[:n] = brute_slerp(stored_users, bridged[:n], 0.5)
  assert row["test"]["0.5"] == pytest.approx(brute_recall(split, half, old_index, test))
  again = compatibility.blending(reg, splits, j, k, top=TOP, seed=3)
  assert again == row


def test_blending_without_stored_users_is_no_row(random_chain, splits):
  reg, tables, _ = random_chain
  split = compatibility.index_split(splits[2], len(tables[0][1]))
  bridged = reg.compatible_embeddings(2, 0, kind="user")
  out = compatibility.blending_recalls(
    split, tables[0][0][:0], bridged, tables[0][1], top=TOP
  )
  assert out == {"skipped": compatibility.serving.NO_STORED_USERS}
  with pytest.raises(InputError, match="must hold 0 and 1"):
    compatibility.blending_recalls(
      split, tables[0][0], bridged, tables[0][1], alphas=(0.0, 0.5), top=TOP
    )


def test_backfill_curve_ends_and_orders_match_brute_force(random_chain, splits):
  reg, tables, kernels = random_chain
  j, k = 0, 2
  row = compatibility.backfilling(reg, splits, j, k, top=TOP, seed=5)
  assert set(row["curves"]) == set(compatibility.BACKFILL_ORDERS)
  assert row["fractions"] == pytest.approx([i / 10 for i in range(11)])

  (old_users, old_items), (new_users, new_items) = tables[j], tables[k]
  n_items = len(old_items)
  old = np.concatenate([old_users, old_items]).astype(np.float64)
  new = np.concatenate([new_users[: len(old_users)], new_items[:n_items]])
  forward, *_ = np.linalg.lstsq(old, new.astype(np.float64), rcond=None)
  forwarded = old_items @ forward
  split = compatibility.index_split(splits[k], n_items)
  users = np.unique(split.val_user)
  none = brute_recall(split, new_users, forwarded, users)
  full = brute_recall(split, new_users, new_items[:n_items], users)
  assert none != full
  for order, curve in row["curves"].items():
    assert curve[0] == pytest.approx(none), order
    assert curve[-1] == pytest.approx(full), order
    trapezoids = sum((curve[i] + curve[i + 1]) / 20 for i in range(10))
    assert row["area"][order] == pytest.approx(trapezoids, abs=1e-12)
  # Half way in the chain-residual order: the items B(z_k) serves worst first.
  bridged = new_items[:n_items].astype(np.float64) @ kernels[1] @ kernels[0]
  worst = np.argsort(-np.linalg.norm(bridged - old_items, axis=1), kind="stable")
  half = forwarded.copy()
  half[worst[: round(n_items / 2)]] = new_items[worst[: round(n_items / 2)]]
  assert row["curves"]["bridge residual"][5] == pytest.approx(
    brute_recall(split, new_users, half, users)
  )


def test_exact_forward_map_gives_flat_curves(tmp_path, splits):
  """z_k = z_j Q on version j's nodes: F(z_j) = z_k, so backfilling changes
  nothing and every area is the full re-index value."""
  rng = np.random.default_rng(4)
  d = 8
  user = rng.normal(size=(splits[-1].num_users, d))
  item = rng.normal(size=(splits[-1].num_items, d))
  tables, kernels, rotation = [], [], np.eye(d)
  for k, s in enumerate(splits):
    if k:
      q, _ = np.linalg.qr(rng.normal(size=(d, d)))
      rotation = rotation @ q
      kernels.append(q.T.astype(np.float32))
    tables.append(
      tuple(
        (t[:n] @ rotation).astype(np.float32)
        for t, n in ((user, s.num_users), (item, s.num_items))
      )  # fmt: skip
    )
  _store(str(tmp_path / "s"), tables, kernels)
  reg = registry.open(str(tmp_path / "s"))
  row = compatibility.backfilling(reg, splits, 0, 2, top=TOP)
  reg.close()
  full = row["curves"]["random"][-1]
  assert full > 0
  for order, curve in row["curves"].items():
    assert curve == pytest.approx([full] * 11), order
    assert row["area"][order] == pytest.approx(full)


def test_serving_rows_follow_the_config():
  config = test_config.get_config()
  settings = settings_from_config(config)
  assert settings.blending and settings.backfilling
  config.compatibility.blending = False
  config.compatibility.backfilling = False
  settings = settings_from_config(config)
  assert not settings.blending and not settings.backfilling


def test_markdown_and_plots_of_the_serving_rows(tmp_path):
  fractions = [i / 10 for i in range(11)]
  result = {
    "blending": {
      "s": [
        {"index_version": 0, "query_version": 2, "alpha": 0.3,
         "validation_users": 4, "test_users": 5,
         "validation": {f"{a:g}": a for a in ALPHAS},
         "test": {f"{a:g}": 1 - a for a in ALPHAS},
         "stored": 1.0, "bridged": 0.0, "blended": 0.7},
        {"index_version": 1, "query_version": 2,
         "skipped": compatibility.serving.NO_STORED_USERS},
      ]
    },
    "backfilling": {
      "s": [
        {"index_version": 0, "query_version": 2, "fractions": fractions,
         "curves": {o: fractions for o in compatibility.BACKFILL_ORDERS},
         "area": {o: 0.5 for o in compatibility.BACKFILL_ORDERS},
         "consumers": {"fractions": fractions, "tasks": {
           "binary-edge-rating": {
             "metric": "rocauc", "examples": 9, "index_examples": 7,
             "curves": {o: [0.6] * 10 + [0.8]
                        for o in compatibility.BACKFILL_ORDERS},
             "area": {o: 0.61 for o in compatibility.BACKFILL_ORDERS}},
           "user-activity": {"skipped": "needs version 3"}}}},
      ]
    },
  }  # fmt: skip
  lines = compatibility.to_markdown(result).splitlines()
  blend = lines.index("## Compatibility: blending toward the newest version")
  backfill = lines.index("## Compatibility: partial backfilling to the newest version")
  # Each table follows its own heading.
  assert lines[blend + 4 : blend + 6] == [
    "| strategy | j <- k | users (choose / test) | alpha | stored | bridged | "
    "blended |",
    "|---|---|---|---|---|---|---|",
  ]
  assert lines[blend + 6 : blend + 8] == [
    "| s | 0 <- 2 | 4 / 5 | 0.3 | 1.0000 | 0.0000 | 0.7000 |",
    "| s | 1 <- 2 | 0 | n/a | n/a | n/a | n/a |",
  ]
  assert backfill > blend + 8
  assert lines[backfill + 6] == (
    "| s | 0 <- 2 | 0.0000 | 1.0000 | 0.5000 | 0.5000 | 0.5000 |"
  )
  consumers = next(i for i, x in enumerate(lines) if x.startswith("Consumers of"))
  assert consumers > backfill + 6
  assert lines[consumers + 2 : consumers + 8] == [
    "s, index version 0:",
    "",
    "| task | order | f = 0 | f = 0.5 | f = 1 | area |",
    "|---|---|---|---|---|---|",
    "| binary-edge-rating | bridge residual | 0.6000 | 0.6000 | 0.8000 | 0.6100 |",
    "| binary-edge-rating | forward residual | 0.6000 | 0.6000 | 0.8000 | 0.6100 |",
  ]
  assert lines[consumers + 10] == "Skipped: user-activity (needs version 3)."
  written = compatibility.write_outputs(result, str(tmp_path))
  assert {"compat_blend.png", "compat_backfill.png"} <= set(written["plots"])
  # The consumers' panels below the Recall@50 ones: twice the height.
  both = serving_figures(result)["compat_backfill.png"]
  del result["backfilling"]["s"][0]["consumers"]
  recall_only = serving_figures(result)["compat_backfill.png"]
  assert len(both.axes) == 2 * len(recall_only.axes) == 2
  assert both.get_figheight() == 2 * recall_only.get_figheight()
  for name in written["plots"]:
    assert (tmp_path / name).stat().st_size > 0


# -- the consumers' backfilling curves ---------------------------------------------

TINY_CONSUMERS = ConsumerConfig(hidden_sizes=(8,), dropouts=(0.0,), seeds=1, epochs=2)


def brute_forward(tables, j, k):
  """``F(z_j)`` of version j's items by ``numpy.linalg.lstsq`` on its nodes."""
  (old_users, old_items), (new_users, new_items) = tables[j], tables[k]
  old = np.concatenate([old_users, old_items]).astype(np.float64)
  new = np.concatenate([new_users[: len(old_users)], new_items[: len(old_items)]])
  forward, *_ = np.linalg.lstsq(old, new.astype(np.float64), rcond=None)
  return (old_items @ forward).astype(np.float32)


def test_consumer_backfill_ends_and_midpoint_match_by_hand(
  random_chain, splits, small_graph, tmp_path
):
  reg, tables, kernels = random_chain
  j, k = 0, 2
  tasks = compatibility.newest_tasks(
    (*CORE_TASKS, "user-segment"), small_graph, splits, seed=0
  )
  for name in ("user-activity", "user-positive-activity"):
    assert tasks[name] == (
      f"cannot start at the newest version {k}: task {name!r} selects on "
      f"version {k + 1} and needs >= {k + 2} versions"
    )
  assert tasks["user-segment"] == compatibility.USER_ONLY
  fitted = [n for n, t in tasks.items() if not isinstance(t, str)]
  assert fitted == ["binary-edge-rating", *CORE_TASKS[3:]]
  consumers = compatibility.newest_consumers(
    reg, tasks, TINY_CONSUMERS, 0, str(tmp_path)
  )
  row = compatibility.consumer_backfilling(reg, consumers, tasks, j, k, seed=5)
  assert row["fractions"] == pytest.approx([i / 10 for i in range(11)])
  for name in ("user-activity", "user-positive-activity", "user-segment"):
    assert row["tasks"][name] == {"skipped": tasks[name]}

  new_users, new_items = tables[k]
  n = len(tables[j][1])
  forwarded = brute_forward(tables, j, k)
  bridged = new_items[:n].astype(np.float64) @ kernels[1] @ kernels[0]
  worst = np.argsort(-np.linalg.norm(bridged - tables[j][1], axis=1), kind="stable")
  moved = 0
  for name in fitted:
    consumer, task, out = consumers[name], tasks[name], row["tasks"][name]
    examples = task.evaluation[k]
    assert task.selection_version == k
    assert (out["examples"], out["index_examples"]) == (
      len(examples),
      int(np.sum(examples.item < n)),
    )
    unfilled = new_items.copy()
    unfilled[:n] = forwarded
    none = consumer.evaluate((new_users, unfilled), examples)
    full = consumer.evaluate((new_users, new_items), examples)
    moved += none != full
    assert set(out["curves"]) == set(compatibility.BACKFILL_ORDERS)
    for order, curve in out["curves"].items():
      assert curve[0] == pytest.approx(none, abs=1e-6), (name, order)
      # Fully backfilled, the tables are the pure z_k ones: exactly.
      assert curve[-1] == full, (name, order)
      trapezoids = sum((curve[i] + curve[i + 1]) / 20 for i in range(10))
      assert out["area"][order] == pytest.approx(trapezoids, abs=1e-12)
    half = unfilled.copy()
    half[worst[: round(n / 2)]] = new_items[worst[: round(n / 2)]]
    assert out["curves"]["bridge residual"][5] == pytest.approx(
      consumer.evaluate((new_users, half), examples), abs=1e-6
    ), name
  assert moved  # backfilling changes some consumer's score: not vacuous


def test_consumer_backfill_is_off_with_the_consumers(tmp_path, splits, small_graph):
  tables, _ = _random_store(str(tmp_path / "checkpoints" / "s"), splits, 8)
  off = dict(consumers=False, retrieval=False, drift=False, blending=False)
  result = compatibility.analyze(
    str(tmp_path),
    ["s"],
    small_graph,
    splits,
    TINY_CONSUMERS,
    0,
    compatibility.AnalyticsConfig(**off),
  )
  rows = result["backfilling"]["s"]
  assert [r["index_version"] for r in rows] == [0, 1]
  assert all(r["curves"] and "consumers" not in r for r in rows)
  assert not os.path.exists(tmp_path / "compatibility" / "consumers")
  lines = compatibility.to_markdown(result).splitlines()
  assert not any(line.startswith("Consumers of the newest") for line in lines)
