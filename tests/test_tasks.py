"""Label builders of the unintended tasks on hand-made logs."""

import numpy as np
import pytest

from bcjax.data.graph import RaggedAttribute
from bcjax.data.split import split_version
from bcjax.errors import InputError
from bcjax.fitting.tasks import CORE_TASKS, _age_groups, available_tasks, build_task
from tests.conftest import graph_from_rows

TAUS = (0.5, 0.75, 1.0)


def _activity_log():
  # 9 interactions: slice 0.5 holds 0..4, window (0.5, 0.75] 5..6 and
  # (0.75, 1] 7..8. Users a, b, c, d are 0..3; items x, y, z are 0..2.
  rows = [
    ("a", "x", 0, 5.0),
    ("b", "y", 1, 2.0),
    ("a", "y", 2, 4.0),
    ("c", "x", 3, 3.0),
    ("b", "x", 4, 5.0),
    ("a", "z", 5, 4.0),  # existing a: validation of version 0
    ("d", "x", 6, 1.0),  # new d, single: training of version 0
    ("b", "z", 7, 2.0),  # existing b: validation of version 1
    ("c", "y", 8, 5.0),  # existing c: validation of version 1
  ]
  g = graph_from_rows(rows)
  return g, [split_version(g, k, TAUS) for k in range(2)]


def test_edge_rating_labels():
  g, splits = _activity_log()
  task = build_task("binary-edge-rating", g, splits)
  assert (task.input, task.metric, task.selection_version) == ("edge", "rocauc", 0)
  np.testing.assert_array_equal(task.train.labels, [1, 0, 1, 0, 1, 0])
  np.testing.assert_array_equal(task.train.item, [0, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(task.evaluation[0].labels, [1])
  np.testing.assert_array_equal(task.evaluation[1].user, [1, 2])
  np.testing.assert_array_equal(task.evaluation[1].labels, [0, 1])
  assert task.eval_versions == [1]


def test_activity_labels():
  g, splits = _activity_log()
  activity = build_task("user-activity", g, splits)
  assert activity.selection_version == 1 and activity.eval_versions == []
  np.testing.assert_array_equal(activity.train.user, [0, 1, 2, 3])
  np.testing.assert_array_equal(activity.train.labels, [1, 0, 0, 0])
  np.testing.assert_array_equal(activity.evaluation[1].labels, [0, 1, 1, 0])
  positive = build_task("user-positive-activity", g, splits)
  np.testing.assert_array_equal(positive.train.labels, [1, 0, 0, 0])
  np.testing.assert_array_equal(positive.evaluation[1].labels, [0, 0, 1, 0])


def _rating_log():
  rows = []
  for t in range(24):
    if t % 2 == 0:
      rows.append((f"u{t % 5}", "p", t, 5.0))
    else:
      rows.append((f"u{t % 5}", "q", t, 1.0 if (t // 2) % 2 == 0 else 5.0))
  rows += [(f"u{t}", "r", 24 + t, 3.0) for t in range(3)]
  rows += [("u3", "s", 27, 4.0), ("u4", "s", 28, 4.0), ("u0", "s", 29, 4.0)]
  g = graph_from_rows(rows)
  return g, [split_version(g, 0, (0.9, 1.0))]


def test_item_rating_labels():
  g, splits = _rating_log()
  p, q = 0, 1
  avg = build_task("binary-item-rating-avg", g, splits)
  # Items with >= 10 ratings: p (mean 5, std 0) and q (mean 3, std 2.09);
  # the median of the slice-0 means is 4.
  np.testing.assert_array_equal(avg.train.item, [p, q])
  np.testing.assert_array_equal(avg.train.labels, [1, 0])
  std = build_task("binary-item-rating-std", g, splits)
  np.testing.assert_array_equal(std.train.labels, [0, 1])
  np.testing.assert_array_equal(std.evaluation[0].item, [p, q])


def test_an_item_mean_equal_to_the_median_is_a_positive():
  # Means 5, 4 and 3 over 10 ratings each: the median is 4, and the
  # reference's binarisation (mean >= median) makes the middle item positive.
  rows = [
    (f"u{t % 10}", item, 3 * t + i, stars)
    for t in range(10)
    for i, (item, stars) in enumerate((("p", 5.0), ("q", 4.0), ("r", 3.0)))
  ]
  rows += [(f"u{t}", "z", 100 + t, 4.0) for t in range(4)]
  g = graph_from_rows(rows)
  task = build_task("binary-item-rating-avg", g, [split_version(g, 0, (0.9, 1.0))])
  np.testing.assert_array_equal(task.train.item, [0, 1, 2])
  np.testing.assert_array_equal(task.train.labels, [1, 1, 0])


def test_item_rating_task_without_rated_items_is_refused():
  g, splits = _activity_log()
  with pytest.raises(InputError, match="no item has 10 ratings"):
    build_task("binary-item-rating-avg", g, splits)


def test_attribute_task_splits_nodes_and_keeps_labels(small_graph):
  splits = [split_version(small_graph, k) for k in range(5)]
  task = build_task("user-segment", small_graph, splits, seed=1)
  attr = small_graph.user_attrs["segment"]
  train = set(task.train.user.tolist())
  assert train and all(u < splits[0].num_users for u in train)
  for k, examples in task.evaluation.items():
    users = examples.user
    assert not train & set(users.tolist())
    assert users.max() < splits[k].num_users
    np.testing.assert_array_equal(examples.labels, attr.values[attr.offsets[users]])
  assert task.kind == "multiclass" and task.num_outputs == len(attr.vocab)


def test_age_groups():
  ages = RaggedAttribute.from_lists(
    [[0], [1], [2], [3], [4], [5]], ["17", "18", "24", "25", "56", "60"]
  )
  groups = _age_groups(ages)
  np.testing.assert_array_equal(groups.values, [0, 1, 1, 2, 6, 6])


def test_task_names_and_errors(small_graph):
  names = available_tasks(small_graph)
  assert names[:5] == list(CORE_TASKS) and "user-segment" in names
  assert "user-gender" not in names
  splits = [split_version(small_graph, k) for k in range(5)]
  with pytest.raises(
    InputError, match="unknown task 'fraud'; valid task names: .*binary-edge-rating"
  ):
    build_task("fraud", small_graph, splits)
  with pytest.raises(InputError, match="needs an attribute"):
    build_task("user-gender", small_graph, splits)


def _odd(node: int, seed: int) -> bool:
  """SplitMix64's finaliser in Python integers: the report side's parity."""
  mask = 2**64 - 1
  z = (node + 0x9E3779B97F4A7C15 * (seed + 1)) & mask
  z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
  z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
  return bool((z ^ (z >> 31)) & 1)


@pytest.mark.parametrize(
  "name", ["binary-edge-rating", "user-activity", "binary-item-rating-avg"]
)
@pytest.mark.parametrize("seed", [0, 3])
def test_task_halves_split_examples_by_their_user_or_item(small_graph, name, seed):
  splits = [split_version(small_graph, k) for k in range(4)]
  task = build_task(name, small_graph, splits)
  by_item = task.input == "item"
  assert task.halves_by == ("item" if by_item else "user")
  for examples in task.evaluation.values():
    halves = task.halves(examples, "held_out", seed)
    ids = examples.item if by_item else examples.user
    expected = np.array([_odd(int(i), seed) for i in ids], bool)
    np.testing.assert_array_equal(halves["report"], expected)
    np.testing.assert_array_equal(halves["selection"], ~expected)
    # The reference's protocol: every example reports (and chose).
    assert set(task.halves(examples, "validation", seed)) == {"report"}
    assert task.halves(examples, "validation", seed)["report"].all()
  with pytest.raises(InputError, match="unknown report split 'test'"):
    task.halves(task.evaluation[task.selection_version], "test", seed)
