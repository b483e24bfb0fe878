"""Time slicing and the paper's train/validation split on hand-made logs."""

import numpy as np
import pytest

from bcjax.data.split import split_version
from bcjax.errors import InputError
from tests.conftest import graph_from_rows


def _log():
  # 12 interactions at t = 0..11: edge i is in slice tau iff i / 11 <= tau,
  # so slice 0.5 holds edges 0..5 (users a, b) and we use taus (0.5, 1.0).
  rows = [
    ("a", "x", 0, 5.0),
    ("b", "y", 1, 4.0),
    ("a", "y", 2, 3.0),
    ("b", "z", 3, 2.0),
    ("a", "z", 4, 1.0),
    ("b", "x", 5, 5.0),
    # window (0.5, 1.0]: existing user a, new user c (one interaction),
    # new user d (three interactions), existing user b.
    ("a", "w", 6, 4.0),
    ("c", "x", 7, 4.0),
    ("d", "y", 8, 3.0),
    ("d", "w", 9, 5.0),
    ("b", "w", 10, 2.0),
    ("d", "z", 11, 1.0),
  ]
  return graph_from_rows(rows)


def test_slice_counts_follow_edge_fraction():
  g = _log()
  assert g.num_edges == 12
  # i / 11 <= 0.5  <=>  i <= 5.5
  assert g.num_edges_at(0.5) == 6
  assert g.num_edges_at(1.0) == 12
  assert g.num_users_at(0.5) == 2 and g.num_items_at(0.5) == 3
  sliced = g.slice(0.5)
  assert sliced.num_edges == 6 and sliced.item_attrs["kind"].num_nodes == 3
  assert np.shares_memory(sliced.user, g.user)


def test_split_semantics_existing_and_new_users():
  g = _log()
  split = split_version(g, 0, taus=(0.5, 1.0))
  a, b, c, d = 0, 1, 2, 3  # first-appearance ids
  x, y, z, w = 0, 1, 2, 3
  train = set(zip(split.train_user.tolist(), split.train_item.tolist()))
  val = list(zip(split.val_user.tolist(), split.val_item.tolist()))
  # Everything before tau is training.
  assert {(a, x), (b, y), (a, y), (b, z), (a, z), (b, x)} <= train
  # Existing users' window interactions are validation.
  assert (a, w) in val and (b, w) in val
  # A new user with one interaction trains on it.
  assert (c, x) in train and all(u != c for u, _ in val)
  # A new user with several trains on all but the last.
  assert (d, y) in train and (d, w) in train and (d, z) in val
  assert split.num_train + split.num_val == g.num_edges
  assert sorted(val) == sorted([(a, w), (b, w), (d, z)])
  assert split.num_users == 4 and split.num_items == 4


def test_split_node_counts_are_those_at_the_next_slice(small_graph):
  for k in range(5):
    split = split_version(small_graph, k)
    assert split.num_users == small_graph.num_users_at(split.tau_val)
    assert split.num_items == small_graph.num_items_at(split.tau_val)
    assert split.train_user.max() < split.num_users
    assert split.val_item.max() < split.num_items
    n_val_end = small_graph.num_edges_at(split.tau_val)
    assert split.num_train + split.num_val == n_val_end


def test_split_rejects_bad_versions_and_tiny_logs():
  g = _log()
  with pytest.raises(InputError, match="version 5 does not exist"):
    split_version(g, 5)
  with pytest.raises(InputError, match="increasing"):
    split_version(g, 0, taus=(0.6, 0.5))
  tiny = graph_from_rows([("a", "x", 0, 1.0), ("b", "y", 1, 2.0)])
  with pytest.raises(InputError, match="fewer than the 6 time slices"):
    split_version(tiny, 0)


def test_split_rejects_empty_validation_window():
  # All window interactions belong to new single-interaction users.
  rows = [("a", "x", t, 3.0) for t in range(5)]
  rows += [(f"new{t}", "x", 5 + t, 3.0) for t in range(5)]
  g = graph_from_rows(rows)
  with pytest.raises(InputError, match="no validation interactions"):
    split_version(g, 0, taus=(0.5, 1.0))
