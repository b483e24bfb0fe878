"""Negative sampling on device: never a known positive, users uniform."""

import jax
import numpy as np

from bcjax.data.split import split_version
from bcjax.models.device_graph import BipartiteGraph, is_positive, sample_bpr_triples


def _positives(split):
  return set(zip(split.train_user.tolist(), split.train_item.tolist()))


def test_is_positive_matches_a_python_set(small_graph):
  split = split_version(small_graph, 1)
  graph = BipartiteGraph.from_split(split)
  rng = np.random.default_rng(0)
  users = rng.integers(0, split.num_users, 4000)
  items = rng.integers(0, split.num_items, 4000)
  # Include every true positive too, so both answers are exercised.
  users = np.concatenate([users, split.train_user])
  items = np.concatenate([items, split.train_item])
  got = np.asarray(is_positive(graph, users, items))
  positives = _positives(split)
  want = np.array([(u, i) in positives for u, i in zip(users, items)])
  np.testing.assert_array_equal(got, want)


def test_triples_positive_pos_and_never_positive_neg(small_graph):
  split = split_version(small_graph, 0)
  graph = BipartiteGraph.from_split(split)
  positives = _positives(split)
  users, pos, neg = jax.device_get(
    jax.jit(sample_bpr_triples, static_argnums=2)(graph, jax.random.key(1), 20000)
  )
  assert all((u, i) in positives for u, i in zip(users, pos))
  assert not any((u, i) in positives for u, i in zip(users, neg))
  assert neg.min() >= 0 and neg.max() < split.num_items


def test_users_are_drawn_uniformly_not_by_degree(small_graph):
  split = split_version(small_graph, 0)
  graph = BipartiteGraph.from_split(split)
  users, _, _ = sample_bpr_triples(graph, jax.random.key(2), 200_000)
  counts = np.bincount(np.asarray(users), minlength=split.num_users)
  active = np.unique(split.train_user)
  expected = len(users) / len(active)
  # Every active user is drawn about equally often, heavy users included.
  assert np.all(np.abs(counts[active] - expected) < 6 * np.sqrt(expected))
  inactive = np.setdiff1d(np.arange(split.num_users), active)
  assert counts[inactive].sum() == 0


def test_dense_user_still_gets_valid_negatives():
  # One user has interacted with all items but one: the only valid negative.
  from tests.conftest import graph_from_rows

  rows = [("heavy", f"i{j}", j, 4.0) for j in range(30) if j != 7]
  rows += [("other", "i7", 50, 4.0), ("other", "i3", 60, 4.0)]
  g = graph_from_rows(rows)
  split = split_version(g, 0, taus=(0.95, 1.0))
  graph = BipartiteGraph.from_split(split)
  heavy = 0
  users, _, neg = sample_bpr_triples(graph, jax.random.key(3), 4000)
  users, neg = np.asarray(users), np.asarray(neg)
  positives = _positives(split)
  assert not any((u, i) in positives for u, i in zip(users, neg))
  assert len(positives) == split.num_items  # heavy misses one item only
  only_negative = {i for i in range(split.num_items) if (heavy, i) not in positives}
  assert len(only_negative) == 1
  assert set(neg[users == heavy].tolist()) == only_negative
