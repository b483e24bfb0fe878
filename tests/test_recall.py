"""Recall@K against a brute-force NumPy version on random embeddings."""

import dataclasses

import numpy as np
import pytest

from bcjax.data.split import split_version
from bcjax.evaluation.recall import (
  RecallEvaluator,
  held_out_halves,
  most_popular_recall,
  version_evaluators,
)


def brute_force_recall(split, user_emb, item_emb, ks):
  train = {}
  for u, i in zip(split.train_user, split.train_item):
    train.setdefault(int(u), set()).add(int(i))
  val = {}
  for u, i in zip(split.val_user, split.val_item):
    val.setdefault(int(u), set()).add(int(i))
  out = {k: [] for k in ks}
  for u, items in val.items():
    scores = user_emb[u].astype(np.float64) @ item_emb.T.astype(np.float64)
    for i in train.get(u, ()):
      scores[i] = -np.inf
    ranking = np.argsort(-scores, kind="stable")
    for k in ks:
      out[k].append(len(set(ranking[:k].tolist()) & items) / len(items))
  return {k: float(np.mean(v)) for k, v in out.items()}


@pytest.mark.parametrize("version,chunk_size", [(0, 7), (2, 64), (4, 1000)])
def test_recall_matches_brute_force(small_graph, version, chunk_size):
  split = split_version(small_graph, version)
  rng = np.random.default_rng(version)
  user_emb = rng.normal(size=(split.num_users, 8)).astype(np.float32)
  item_emb = rng.normal(size=(split.num_items, 8)).astype(np.float32)
  ks = (1, 5, 10, 20, 50)
  evaluator = RecallEvaluator(split, ks=ks, chunk_size=chunk_size)
  got = evaluator(user_emb, item_emb)
  want = brute_force_recall(split, user_emb, item_emb, ks)
  for k in ks:
    assert got[k] == pytest.approx(want[k], abs=1e-6), k
  assert evaluator.num_eval_users == len(np.unique(split.val_user))


def test_recall_is_independent_of_the_chunk_size_and_breaks_ties_by_item_id(
  small_graph,
):
  split = split_version(small_graph, 2)
  rng = np.random.default_rng(3)
  # Coarse values: many exactly equal scores, all exact in float32, so the
  # brute force's stable ranking (lower item id first) is the reference.
  user_emb = rng.integers(-2, 3, size=(split.num_users, 4)).astype(np.float32)
  item_emb = rng.integers(-2, 3, size=(split.num_items, 4)).astype(np.float32)
  ks = (1, 5, 10, 50)
  got = {
    chunk: RecallEvaluator(split, ks=ks, chunk_size=chunk)(user_emb, item_emb)
    for chunk in (1, 7, 64, 10_000)
  }
  assert all(recalls == got[1] for recalls in got.values()), got
  want = brute_force_recall(split, user_emb, item_emb, ks)
  for k in ks:
    assert got[1][k] == pytest.approx(want[k], rel=1e-12), k


def test_recall_counts_only_users_with_validation_and_excludes_training():
  from tests.conftest import graph_from_rows

  # User a trained on x and validates on y; the best-scored item x must be
  # skipped, so recall@1 is 1 when y is the next best.
  rows = [("a", "x", 0, 5.0), ("b", "y", 1, 5.0), ("b", "z", 2, 5.0)]
  rows += [("a", "y", 3, 5.0)]
  split = split_version(graph_from_rows(rows), 0, taus=(0.7, 1.0))
  user_emb = np.ones((split.num_users, 1), np.float32)
  item_emb = np.array([[3.0], [2.0], [1.0]], np.float32)  # x > y > z
  got = RecallEvaluator(split, ks=(1, 2))(user_emb, item_emb)
  assert got == {1: 1.0, 2: 1.0}


def test_evaluator_compiles_once(small_graph):
  split = split_version(small_graph, 1)
  evaluator = RecallEvaluator(split, chunk_size=32)
  rng = np.random.default_rng(0)
  for _ in range(3):
    evaluator(
      rng.normal(size=(split.num_users, 4)).astype(np.float32),
      rng.normal(size=(split.num_items, 4)).astype(np.float32),
    )
  assert evaluator.compilations() == 1


def test_most_popular_ranks_by_training_degree(small_graph):
  split = split_version(small_graph, 0)
  popularity = np.bincount(split.train_item, minlength=split.num_items)
  ones = np.ones((split.num_users, 1), np.float32)
  want = brute_force_recall(split, ones, popularity[:, None].astype(np.float32), (50,))
  assert most_popular_recall(split, ks=(50,))[50] == pytest.approx(want[50], abs=1e-6)


def test_held_out_halves_split_ids_by_a_seeded_hash():
  users = np.arange(10_000)
  select, report = held_out_halves(users)
  assert len(np.intersect1d(select, report)) == 0
  np.testing.assert_array_equal(np.union1d(select, report), users)
  assert 0.47 < len(select) / len(users) < 0.53
  # A user's half depends on its id and the seed alone, not on its company.
  again, _ = held_out_halves(users[::-1][:5000])
  np.testing.assert_array_equal(np.sort(again), np.intersect1d(select, users[5000:]))
  other, _ = held_out_halves(users, seed=1)
  assert 0.4 < len(np.intersect1d(select, other)) / len(select) < 0.6


def test_held_out_evaluators_report_on_the_other_half(small_graph):
  split = split_version(small_graph, 1)
  rng = np.random.default_rng(3)
  user_emb = rng.normal(size=(split.num_users, 8)).astype(np.float32)
  item_emb = rng.normal(size=(split.num_items, 8)).astype(np.float32)
  select, report = version_evaluators(split, "held_out", ks=(10,))
  val_users = np.unique(split.val_user)
  halves = held_out_halves(val_users)
  for evaluator, half in zip((select, report), halves):
    np.testing.assert_array_equal(evaluator.eval_users, half)
    keep = np.isin(split.val_user, half)
    sub = dataclasses.replace(
      split, val_user=split.val_user[keep], val_item=split.val_item[keep]
    )
    want = brute_force_recall(sub, user_emb, item_emb, (10,))
    assert evaluator(user_emb, item_emb)[10] == pytest.approx(want[10], abs=1e-6)
  same_a, same_b = version_evaluators(split, "validation")
  assert same_a is same_b and same_a.num_eval_users == len(val_users)
  with pytest.raises(ValueError, match="unknown report_split 'test'"):
    version_evaluators(split, "test")
