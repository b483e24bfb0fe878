"""The paper's train/validation split of each embedding version.

Version ``k`` trains on the graph up to ``taus[k]`` and is validated on the
interactions in ``(taus[k], taus[k + 1]]``. Inside that window, as in the
reference implementation of Hu et al. (KDD 2022):

* every interaction of a user who existed at ``taus[k]`` is validation;
* a new user with a single interaction in the window trains on it;
* a new user with several trains on all but the last, which is validation.

Node counts are those at ``taus[k + 1]``, so new users and items of the window
have embeddings (new users reach the model through their training edges, new
items through their attributes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from bcjax.data.graph import TAUS, DynamicGraph, RaggedAttribute
from bcjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class VersionSplit:
  """Training and validation interactions of one embedding version.

  Attributes:
    version: the version number ``k``.
    tau_train: ``taus[k]``, the end of the training slice.
    tau_val: ``taus[k + 1]``, the end of the validation window.
    num_users: users present at ``tau_val``.
    num_items: items present at ``tau_val``.
    train_user: ``(num_train,)`` int32 users of the training interactions.
    train_item: ``(num_train,)`` int32 items of the training interactions.
    train_rating: ``(num_train,)`` float32.
    val_user: ``(num_val,)`` int32 users of the validation interactions.
    val_item: ``(num_val,)`` int32.
    val_rating: ``(num_val,)`` float32.
    item_attrs: attribute kind -> attribute of the ``num_items`` items.
  """

  version: int
  tau_train: float
  tau_val: float
  num_users: int
  num_items: int
  train_user: np.ndarray
  train_item: np.ndarray
  train_rating: np.ndarray
  val_user: np.ndarray
  val_item: np.ndarray
  val_rating: np.ndarray
  item_attrs: Mapping[str, RaggedAttribute]

  @property
  def num_train(self) -> int:
    return len(self.train_user)

  @property
  def num_val(self) -> int:
    return len(self.val_user)


def split_version(
  graph: DynamicGraph, version: int, taus: Sequence[float] = TAUS
) -> VersionSplit:
  """Splits ``graph`` into version ``version``'s training and validation sets.

  Args:
    graph: the full interaction log.
    version: ``k`` in ``[0, len(taus) - 2]``.
    taus: increasing time-slice fractions in ``(0, 1]``.

  Returns:
    The :class:`VersionSplit`.

  Raises:
    InputError: for a version out of range, taus that are not increasing, or a
      slice without training or validation interactions.
  """
  taus = tuple(float(t) for t in taus)
  if len(taus) < 2 or any(b <= a for a, b in zip(taus, taus[1:])):
    raise InputError(f"taus must be at least two increasing fractions, got {taus}")
  if taus[0] <= 0 or taus[-1] > 1:
    raise InputError(f"taus must lie in (0, 1], got {taus}")
  if not 0 <= version < len(taus) - 1:
    raise InputError(
      f"version {version} does not exist: with {len(taus)} time slices the "
      f"versions are 0..{len(taus) - 2}"
    )
  if graph.num_edges < len(taus):
    raise InputError(
      f"{graph.name}: {graph.num_edges} interactions are fewer than the "
      f"{len(taus)} time slices"
    )
  tau_train, tau_val = taus[version], taus[version + 1]
  n_train = graph.num_edges_at(tau_train)
  n_val = graph.num_edges_at(tau_val)
  old_users = graph.num_users_at(tau_train)

  window_user = graph.user[n_train:n_val]
  is_val = window_user < old_users
  # Users are numbered by first appearance, so the new users of the window are
  # exactly the ids >= old_users; the last interaction of each new user with
  # several is its validation interaction.
  counts = np.bincount(window_user, minlength=graph.num_users_at(tau_val))
  uniq, first_in_reversed = np.unique(window_user[::-1], return_index=True)
  last_index = len(window_user) - 1 - first_in_reversed
  several = (uniq >= old_users) & (counts[uniq] > 1)
  is_val[last_index[several]] = True

  train = np.concatenate([np.arange(n_train), n_train + np.flatnonzero(~is_val)])
  val = n_train + np.flatnonzero(is_val)
  if len(train) == 0:
    raise InputError(
      f"{graph.name}: time slice tau={tau_train} of version {version} holds "
      "no training interactions"
    )
  if len(val) == 0:
    raise InputError(
      f"{graph.name}: the window ({tau_train}, {tau_val}] of version "
      f"{version} holds no validation interactions"
    )
  num_items = graph.num_items_at(tau_val)
  return VersionSplit(
    version=version,
    tau_train=tau_train,
    tau_val=tau_val,
    num_users=graph.num_users_at(tau_val),
    num_items=num_items,
    train_user=graph.user[train],
    train_item=graph.item[train],
    train_rating=graph.rating[train],
    val_user=graph.user[val],
    val_item=graph.item[val],
    val_rating=graph.rating[val],
    item_attrs={k: a.head(num_items) for k, a in graph.item_attrs.items()},
  )
