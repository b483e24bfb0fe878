"""Unintended tasks: label builders from a graph and its version splits.

Consumer models are trained once on version-0 embeddings and then read every
later version's version-0-compatible embeddings. Each :class:`Task` holds its
training examples (version 0) and its evaluation examples per version, as in
the reference implementation of Hu et al. (KDD 2022):

* ``binary-edge-rating`` (user || item): rating >= 4. Trains on version 0's
  training interactions; version ``k`` evaluates on its validation window.
* ``user-activity`` / ``user-positive-activity`` (user): the user has a
  validation interaction (with rating >= 4) in the version's window. Trains
  on version 0's labels, so model selection uses version 1's window.
* ``binary-item-rating-avg`` / ``binary-item-rating-std`` (item): items with
  >= 10 ratings; mean rating at least the median at slice 0 / standard deviation
  >= 1. Trains on version 0's training interactions; version ``k`` evaluates
  on its training and validation interactions together.
* Attribute tasks where the data has them (``user-gender``,
  ``user-age-group``, ``user-occupation``, ``item-genre``, ``user-segment``):
  static labels; a seeded 80/20 split of the nodes present at version 0
  gives the training and selection nodes, and version ``k >= 1`` evaluates on
  its nodes outside the training set. Any other user attribute (a RecBole
  dataset's user field) gives ``user-<attribute>`` in the same way.

``build_task(..., start=j)`` builds the task of a consumer that starts at
version ``j`` (:mod:`bcjax.compatibility`): every "version 0" above reads
"version j", every "version 1" reads "version j + 1".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from bcjax.data.graph import DynamicGraph, RaggedAttribute
from bcjax.data.split import VersionSplit
from bcjax.errors import InputError, unknown_name
from bcjax.evaluation.recall import REPORT_SPLITS, held_out_halves

CORE_TASKS = (
  "binary-edge-rating",
  "user-activity",
  "user-positive-activity",
  "binary-item-rating-avg",
  "binary-item-rating-std",
)
_MIN_RATINGS = 10
# MovieLens-1M's age groups, used for MovieLens-100K's raw ages.
_AGE_EDGES = (18, 25, 35, 45, 50, 56)


@dataclasses.dataclass(frozen=True)
class TaskExamples:
  """Examples of a task at one version.

  Attributes:
    version: the embedding version whose embeddings the inputs read.
    user: ``(n,)`` int32 user ids (user and edge tasks), else None.
    item: ``(n,)`` int32 item ids (item and edge tasks), else None.
    labels: ``(n,)`` int32 classes, or ``(n, num_labels)`` {0, 1} for
      multi-label tasks.
  """

  version: int
  user: np.ndarray | None
  item: np.ndarray | None
  labels: np.ndarray

  def __len__(self):
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class Task:
  """An unintended task.

  Attributes:
    name: the task name.
    input: ``"user"``, ``"item"`` or ``"edge"`` (user || item).
    kind: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
    metric: ``"rocauc"``, ``"accuracy"`` or ``"mean-rocauc"``.
    num_outputs: logits of the consumer model.
    selection_version: the version whose examples select the consumer.
    core: one of the paper's five tasks (they make the table's mean).
    train: the training examples (the start version, 0 by default).
    evaluation: version -> examples, for the selection version and later.
  """

  name: str
  input: str
  kind: str
  metric: str
  num_outputs: int
  selection_version: int
  core: bool
  train: TaskExamples
  evaluation: dict[int, TaskExamples]

  @property
  def eval_versions(self) -> list[int]:
    """Versions after the selection version: the ones the table averages."""
    return sorted(k for k in self.evaluation if k > self.selection_version)

  @property
  def halves_by(self) -> str:
    """Which node's id puts an example in a half: ``"item"`` for item tasks,
    else ``"user"`` (user and edge tasks: the intended recall's halves)."""
    return "item" if self.input == "item" else "user"

  def halves(
    self, examples: TaskExamples, report_split: str, seed: int
  ) -> dict[str, np.ndarray]:
    """The rows of ``examples`` in each half of ``report_split``.

    Under ``"held_out"`` an example's half is its user's (user and edge
    tasks) or its item's (item tasks) by
    :func:`~bcjax.evaluation.recall.held_out_halves` with ``seed``: a user
    is on the same side here as in the intended recall. Under
    ``"validation"`` every row reports (and so also chose).

    Returns:
      ``{"selection": mask, "report": mask}`` (``{"report": all}`` under
      ``"validation"``), each a ``(len(examples),)`` boolean array.

    Raises:
      InputError: for an unknown ``report_split``.
    """
    if report_split == "validation":
      return {"report": np.ones(len(examples), bool)}
    if report_split != "held_out":
      raise unknown_name("report split", report_split, REPORT_SPLITS)
    ids = self.half_ids(examples)
    selection, _ = held_out_halves(np.unique(ids), seed)
    chosen = np.isin(ids, selection)
    return {"selection": chosen, "report": ~chosen}

  def half_ids(self, examples: TaskExamples) -> np.ndarray:
    """``(len(examples),)`` the ids that place each example in a half."""
    return examples.item if self.halves_by == "item" else examples.user

  def halves_record(self, report_split: str, seed: int) -> dict:
    """Per evaluated version, the ids of the examples each half holds
    (results.json's ``halves.tasks[name]``): an outsider checks from them
    that the halves are disjoint and that a user sits on one side in every
    task and in the intended recall."""
    versions = {}
    for k, examples in self.evaluation.items():
      ids = self.half_ids(examples)
      versions[str(k)] = {
        f"{half}_ids": np.unique(ids[mask]).tolist()
        for half, mask in self.halves(examples, report_split, seed).items()
      }
    return {"by": self.halves_by, "versions": versions}


def _binary(name, input_, selection_version, train, evaluation) -> Task:
  return Task(
    name,
    input_,
    "binary",
    "rocauc",
    1,
    selection_version,
    name in CORE_TASKS,
    train,
    evaluation,
  )


def _edge_rating(graph, splits, seed, start) -> Task:
  def examples(k, user, item, rating):
    return TaskExamples(k, user, item, (rating >= 4).astype(np.int32))

  s0 = splits[start]
  train = examples(start, s0.train_user, s0.train_item, s0.train_rating)
  evaluation = {
    s.version: examples(s.version, s.val_user, s.val_item, s.val_rating)
    for s in splits[start:]
  }
  return _binary("binary-edge-rating", "edge", start, train, evaluation)


def _activity(name: str, positive: bool):
  def build(graph, splits, seed, start) -> Task:
    def examples(s: VersionSplit):
      active = s.val_user[s.val_rating >= 4] if positive else s.val_user
      labels = np.zeros(s.num_users, np.int32)
      labels[active] = 1
      return TaskExamples(
        s.version, np.arange(s.num_users, dtype=np.int32), None, labels
      )

    evaluation = {s.version: examples(s) for s in splits[start + 1 :]}
    return _binary(name, "user", start + 1, examples(splits[start]), evaluation)

  return build


def _item_ratings(item, rating, num_items):
  """Items with >= 10 ratings, their mean and (unbiased) standard deviation."""
  count = np.bincount(item, minlength=num_items)
  total = np.bincount(item, weights=rating, minlength=num_items)
  squares = np.bincount(
    item, weights=rating.astype(np.float64) ** 2, minlength=num_items
  )
  items = np.flatnonzero(count >= _MIN_RATINGS).astype(np.int32)
  n = count[items]
  mean = total[items] / n
  var = np.maximum(squares[items] - n * mean**2, 0.0) / (n - 1)
  return items, mean, np.sqrt(var)


def _item_rating_task(name: str, statistic: str):
  def build(graph, splits, seed, start) -> Task:
    s0 = splits[start]
    items0, mean0, _ = _item_ratings(s0.train_item, s0.train_rating, s0.num_items)
    if len(items0) == 0:
      raise InputError(
        f"task {name}: no item has {_MIN_RATINGS} ratings at slice {start} of "
        f"{graph.name}"
      )
    threshold = float(np.median(mean0))

    def examples(k, item, rating, num_items):
      items, mean, std = _item_ratings(item, rating, num_items)
      # At least the median, as the reference's binarisation.
      labels = mean >= threshold if statistic == "avg" else std >= 1.0
      return TaskExamples(k, None, items, labels.astype(np.int32))

    train = examples(start, s0.train_item, s0.train_rating, s0.num_items)
    evaluation = {
      s.version: examples(
        s.version,
        np.concatenate([s.train_item, s.val_item]),
        np.concatenate([s.train_rating, s.val_rating]),
        s.num_items,
      )
      for s in splits[start:]
    }
    return _binary(name, "item", start, train, evaluation)

  return build


def _age_groups(attr: RaggedAttribute) -> RaggedAttribute:
  ages = np.array([int(v) if v.isdigit() else -1 for v in attr.vocab])
  groups = np.searchsorted(_AGE_EDGES, ages, side="right")
  names = [f"<{_AGE_EDGES[0]}"] + [f">={e}" for e in _AGE_EDGES]
  return RaggedAttribute(groups[attr.values], attr.offsets, names)


def _attribute_task(name: str, side: str, kind: str, transform=None):
  """A static-label task on the user or item attribute ``kind``."""

  def build(graph, splits, seed, start) -> Task:
    attrs = graph.user_attrs if side == "user" else graph.item_attrs
    attr = attrs[kind] if transform is None else transform(attrs[kind])
    counts = np.diff(attr.offsets)
    multilabel = counts.max() > 1
    num_nodes = [s.num_users if side == "user" else s.num_items for s in splits]
    first = np.zeros(attr.num_nodes, np.int64)
    has = counts > 0
    first[has] = attr.values[attr.offsets[:-1][has]]
    if multilabel:
      labels = np.zeros((attr.num_nodes, len(attr.vocab)), np.int32)
      rows = np.repeat(np.arange(attr.num_nodes), counts)
      labels[rows, attr.values] = 1
    else:
      labels = first.astype(np.int32)
    rng = np.random.default_rng(seed)
    nodes0 = np.flatnonzero(has[: num_nodes[start]])
    is_train = np.zeros(attr.num_nodes, bool)
    is_train[rng.permutation(nodes0)[: int(0.8 * len(nodes0))]] = True

    def examples(k, nodes):
      nodes = nodes.astype(np.int32)
      ids = (nodes, None) if side == "user" else (None, nodes)
      return TaskExamples(k, *ids, labels[nodes])

    train = examples(start, np.flatnonzero(is_train))
    evaluation = {
      k: examples(k, np.flatnonzero(has[:n] & ~is_train[:n]))
      for k, n in enumerate(num_nodes)
      if k >= start
    }
    if multilabel:
      kind_, metric, outputs = "multilabel", "mean-rocauc", len(attr.vocab)
    elif len(attr.vocab) == 2:
      kind_, metric, outputs = "binary", "rocauc", 1
    else:
      kind_, metric, outputs = "multiclass", "accuracy", len(attr.vocab)
    return Task(name, side, kind_, metric, outputs, start, False, train, evaluation)

  return build


_BUILDERS: dict[str, tuple[Callable, Callable[[DynamicGraph], bool]]] = {
  "binary-edge-rating": (_edge_rating, lambda g: True),
  "user-activity": (_activity("user-activity", False), lambda g: True),
  "user-positive-activity": (_activity("user-positive-activity", True), lambda g: True),
  "binary-item-rating-avg": (
    _item_rating_task("binary-item-rating-avg", "avg"),
    lambda g: True,
  ),
  "binary-item-rating-std": (
    _item_rating_task("binary-item-rating-std", "std"),
    lambda g: True,
  ),
  "user-gender": (
    _attribute_task("user-gender", "user", "gender"),
    lambda g: "gender" in g.user_attrs,
  ),
  "user-age-group": (
    _attribute_task("user-age-group", "user", "age", _age_groups),
    lambda g: "age" in g.user_attrs,
  ),
  "user-occupation": (
    _attribute_task("user-occupation", "user", "occupation"),
    lambda g: "occupation" in g.user_attrs,
  ),
  "item-genre": (
    _attribute_task("item-genre", "item", "genre"),
    lambda g: "genre" in g.item_attrs,
  ),
  "user-segment": (
    _attribute_task("user-segment", "user", "segment"),
    lambda g: "segment" in g.user_attrs,
  ),
}
TASK_NAMES = tuple(_BUILDERS)


# The user attributes that have a named task above.
_NAMED_USER_ATTRS = ("gender", "age", "occupation", "segment")


def _user_attribute_tasks(graph: DynamicGraph) -> dict[str, str]:
  """Task name -> user attribute, for the attributes without a named task.

  A RecBole dataset's user fields (say ``country``) become attributes under
  their own names; each gets the task ``user-<attribute>``, or
  ``user-<attribute>-attribute`` where that name is a core task's.
  """
  tasks = {}
  for kind in graph.user_attrs:
    if kind not in _NAMED_USER_ATTRS:
      name = f"user-{kind}"
      tasks[f"{name}-attribute" if name in _BUILDERS else name] = kind
  return tasks


def available_tasks(graph: DynamicGraph) -> list[str]:
  """The tasks ``graph`` has data for: the core five plus attribute tasks."""
  named = [name for name, (_, applies) in _BUILDERS.items() if applies(graph)]
  return named + list(_user_attribute_tasks(graph))


def build_task(
  name: str,
  graph: DynamicGraph,
  splits: Sequence[VersionSplit],
  seed: int = 0,
  start: int = 0,
) -> Task:
  """Builds task ``name`` on ``graph``'s version splits.

  Args:
    name: the task name.
    graph: the dynamic graph.
    splits: the version splits ``0..K-1``.
    seed: seeds the node split of attribute tasks.
    start: the version the consumer starts at: it trains on version
      ``start``'s labels and embeddings, and selection and evaluation shift
      by ``start`` (selection at ``start``, at ``start + 1`` for the
      activity tasks, whose labels at ``start`` are the training labels).

  Raises:
    InputError: for an unknown task name (listing the valid ones), one the
      data has no attribute for, or a start version without the versions the
      task needs.
  """
  generic = _user_attribute_tasks(graph)
  if name in generic:
    builder, applies = _attribute_task(name, "user", generic[name]), lambda g: True
  elif name in _BUILDERS:
    builder, applies = _BUILDERS[name]
  else:
    raise unknown_name("task", name, TASK_NAMES + ("user-<attribute>",))
  if not applies(graph):
    raise InputError(
      f"task {name!r} needs an attribute {graph.name} does not have; tasks "
      f"available here: {', '.join(available_tasks(graph))}"
    )
  if not isinstance(start, (int, np.integer)) or not 0 <= start < len(splits):
    raise InputError(
      f"task {name!r}: start version must be in 0..{len(splits) - 1}, got {start!r}"
    )
  if start + 1 >= len(splits) and name in ("user-activity", "user-positive-activity"):
    raise InputError(
      f"task {name!r} selects on version {start + 1} and needs >= {start + 2} versions"
    )
  return builder(graph, splits, seed, start)
