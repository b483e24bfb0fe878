"""Serving the newest version to an old index: blending and partial backfilling.

Both are measured on the intended task, as retrieval against an old index is
(:func:`bcjax.compatibility.measures.retrieval`): Recall@50 of version ``k``'s
validation users against the items of version ``j``'s index, their targets
the version-``k`` validation items inside that index and their training
items excluded. Here ``k`` is the newest version (what a registry serves)
and ``j`` every older one. The labels are the run's held-out interactions:
no self-retrieval is involved, so both apply to every bcjax run.

**Blending** (SLERP BC, :mod:`bcjax.align.blend`): a user with a stored
version-``j`` vector ``z_j`` is served ``slerp(z_j, B_{j+1..k}(z_k), alpha)``
as its query against the old index (the saved item ``z_j``); users new since
``j`` have no stored vector and are not measured. ``alpha`` is chosen on
half of those users (the validation half of
:func:`bcjax.evaluation.recall.held_out_halves`, seeded by the run's seed)
by Recall@50 over :data:`bcjax.align.blend.ALPHAS`, ties to the smaller
``alpha``, and reported on the other half beside ``alpha = 0`` (the stored
vector) and ``alpha = 1`` (the bridged one, retrieval's new query / old
index on these users). A user's ranking does not change with its query's
length, so the unit rows SLERP returns rank as the stored and bridged rows
do at the ends of the grid.

**Partial backfilling** (FastFill, Jaeckle et al., ICLR 2023, as in
:mod:`bcjax.align.backfill`): version ``j``'s item index moves to the newest
model row by row. Queries are ``M_k``'s users (saved ``z_k``); a backfilled
item holds its ``z_k``, the others ``F(z_j)``, where ``F: old -> new`` is a
linear least-squares map fitted on every node of version ``j`` (users and
items, the rows a post-hoc ``B_k`` is fitted on, the other way round). ``F``
thus saw the index's new vectors, which a live system has only once it has
re-embedded them: the ``f = 0`` end is the best a linear forward map does,
not a held-out estimate. The backfilled fraction ``f`` runs over
:data:`bcjax.align.backfill.FRACTIONS` in three orders: ``bridge residual``
(largest ``||B_{j+1..k}(z_k) - z_j||`` first: where the strategy's chain
serves an item worst), ``forward residual`` (largest ``||F(z_j) - z_k||``
first) and ``random`` (seeded, the control). At ``f = 1`` every order gives
retrieval's new query / new index; the area under each curve
(:func:`bcjax.align.backfill.area`) is in Recall@50's units.

The consumers' scores along the same orders (the unintended tasks, read by
consumers of the newest version) are :mod:`bcjax.compatibility.backfill_consumers`;
an ``alpha`` chosen by the consumers' scores is not measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bcjax import registry
from bcjax.align.backfill import (
  FRACTIONS,
  area,
  fit_forward,
  gallery_at,
  random_order,
  residual_order,
  residuals,
)
from bcjax.align.blend import ALPHAS, best_alpha, slerp
from bcjax.compatibility.measures import index_split
from bcjax.compatibility.stores import KINDS, RETRIEVAL_K
from bcjax.data.split import VersionSplit
from bcjax.errors import InputError
from bcjax.evaluation.recall import RecallEvaluator, held_out_halves

BACKFILL_ORDERS = ("bridge residual", "forward residual", "random")
NO_STORED_USERS = (
  "no blending row: no validation user of the newer version has a stored "
  "vector of the index version and a target in its index on both halves"
)

# -- blending -----------------------------------------------------------------


def blended_queries(stored, bridged, alpha: float) -> np.ndarray:
  """The query table served with blending.

  Args:
    stored: ``(n_j, d_j)`` the stored user ``z_j`` (users ``0..n_j-1``).
    bridged: ``(n_k, d_j)`` every version-``k`` user's ``B_{j+1..k}(z_k)``,
      ``n_k >= n_j``.
    alpha: in ``[0, 1]``.

  Returns:
    ``(n_k, d_j)`` float32: ``slerp(stored, bridged[:n_j], alpha)`` (unit
    rows) for the users with a stored vector, ``bridged`` for the rest.
  """
  out = np.array(bridged, np.float32, copy=True)
  out[: len(stored)] = slerp(stored, out[: len(stored)], alpha)
  return out


def blending_recalls(
  split: VersionSplit,
  stored: np.ndarray,
  bridged: np.ndarray,
  old_index: np.ndarray,
  *,
  alphas: Sequence[float] = ALPHAS,
  top: int = RETRIEVAL_K,
  chunk_size: int = 512,
  seed: int = 0,
) -> dict:
  """``alpha`` chosen on validation users, measured on the others.

  Args:
    split: version ``k``'s split restricted to the index (:func:`index_split`).
    stored: ``(n_j, d_j)`` the stored user ``z_j``.
    bridged: ``(n_k, d_j)`` the users' ``B_{j+1..k}(z_k)``.
    old_index: ``(num_index_items, d_j)`` the saved item ``z_j``.
    alphas: the grid; it must hold 0 and 1 (the stored and bridged ends).
    top: the cut-off K.
    chunk_size: users scored at once.
    seed: which halves (:func:`held_out_halves`).

  Returns:
    ``{"skipped": NO_STORED_USERS}`` when a half is empty; else ``alpha``,
    ``measure``, ``validation_users``, ``test_users``, ``validation`` and
    ``test`` (``alpha`` as text -> Recall@K over the grid) and, on the test
    users, ``stored`` (``alpha = 0``), ``bridged`` (``alpha = 1``) and
    ``blended`` (the chosen ``alpha``).
  """
  alphas = [float(a) for a in alphas]
  if 0.0 not in alphas or 1.0 not in alphas:
    raise InputError(f"the alpha grid must hold 0 and 1, got {alphas}")
  users = np.unique(split.val_user)
  validation, test = held_out_halves(users[users < len(stored)], seed)
  if not len(validation) or not len(test):
    return {"skipped": NO_STORED_USERS}
  evaluators = [
    RecallEvaluator(split, ks=(top,), chunk_size=chunk_size, users=part)
    for part in (validation, test)
  ]
  curves = ({}, {})
  for alpha in alphas:
    queries = blended_queries(stored, bridged, alpha)
    for curve, evaluator in zip(curves, evaluators, strict=True):
      curve[alpha] = evaluator(queries, old_index)[top]
  chosen = best_alpha(curves[0].items())
  return {
    "alpha": chosen,
    "measure": f"recall@{top}",
    "validation_users": int(len(validation)),
    "test_users": int(len(test)),
    "validation": {f"{a:g}": v for a, v in curves[0].items()},
    "test": {f"{a:g}": v for a, v in curves[1].items()},
    "stored": curves[1][0.0],
    "bridged": curves[1][1.0],
    "blended": curves[1][chosen],
  }


def blending(
  reg: registry.EmbeddingRegistry,
  splits: Sequence[VersionSplit],
  j: int,
  k: int,
  chunk_size: int = 512,
  seed: int = 0,
  top: int = RETRIEVAL_K,
) -> dict:
  """:func:`blending_recalls` of one strategy's index version ``j < k``."""
  old_index = reg.compatible_embeddings(j, j, kind="item")
  return blending_recalls(
    index_split(splits[k], len(old_index)),
    stored=reg.compatible_embeddings(j, j, kind="user"),
    bridged=reg.compatible_embeddings(k, j, kind="user"),
    old_index=old_index,
    top=top,
    chunk_size=chunk_size,
    seed=seed,
  )


# -- partial backfilling --------------------------------------------------------


def backfill_curves(
  split: VersionSplit,
  queries: np.ndarray,
  new_index: np.ndarray,
  forwarded: np.ndarray,
  orders: Mapping[str, np.ndarray],
  *,
  fractions: Sequence[float] = FRACTIONS,
  top: int = RETRIEVAL_K,
  chunk_size: int = 512,
) -> dict:
  """Recall@K of new queries against the index as it is backfilled.

  Args:
    split: version ``k``'s split restricted to the index (:func:`index_split`).
    queries: ``(num_users_k, d_k)`` the users' ``z_k``.
    new_index: ``(num_index_items, d_k)`` the index items' ``z_k``.
    forwarded: ``(num_index_items, d_k)`` their ``F(z_j)``.
    orders: name -> ``(num_index_items,)`` permutation, backfilled first to
      last.
    fractions: rising from 0 to 1.
    top: the cut-off K.
    chunk_size: users scored at once.

  Returns:
    ``measure``, ``num_users``, ``fractions``, ``curves`` (order -> values
    at the fractions) and ``area`` (order -> area under its curve); the
    curves are None without any target.
  """
  fractions = [float(f) for f in fractions]
  users = np.unique(split.val_user)
  out = {"measure": f"recall@{top}", "num_users": int(len(users))}
  out["fractions"] = fractions
  if not len(users):
    return dict(out, curves=None, area=None)
  evaluator = RecallEvaluator(split, ks=(top,), chunk_size=chunk_size)
  curves = {
    name: [
      evaluator(queries, gallery_at(new_index, forwarded, order, f))[top]
      for f in fractions
    ]
    for name, order in orders.items()
  }
  out["curves"] = curves
  out["area"] = {name: area(fractions, c) for name, c in curves.items()}
  return out


def forward_map(reg: registry.EmbeddingRegistry, j: int, k: int):
  """``F: z_j -> z_k``, linear least squares on the nodes of version ``j``.

  Users and items are stacked, as a post-hoc ``B_k`` is fitted on both
  (items by first appearance: version ``k``'s first rows are version
  ``j``'s nodes).
  """
  old, new = [], []
  for kind in KINDS:
    saved = reg.compatible_embeddings(j, j, kind=kind)
    old.append(saved)
    new.append(reg.compatible_embeddings(k, k, ids=np.arange(len(saved)), kind=kind))
  return fit_forward(
    np.concatenate(old),
    np.concatenate(new),
    family="linear",
    center=False,
    normalize=False,
  )


def backfill_index(
  reg: registry.EmbeddingRegistry, j: int, k: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
  """Version ``j``'s item index on its way to version ``k``.

  Args:
    reg: the strategy's registry.
    j: the index version.
    k: the newest version.
    seed: seeds the ``random`` order.

  Returns:
    ``new_index`` ``(n_j, d_k)`` the index items' ``z_k``, ``forwarded``
    ``(n_j, d_k)`` their ``F(z_j)``, and the orders of the package
    docstring (name -> ``(n_j,)`` permutation, backfilled first to last).
  """
  old_index = reg.compatible_embeddings(j, j, kind="item")
  ids = np.arange(len(old_index))
  new_index = reg.compatible_embeddings(k, k, ids=ids, kind="item")
  forwarded = forward_map(reg, j, k).apply(old_index)
  bridged = reg.compatible_embeddings(k, j, ids=ids, kind="item")
  orders = {
    "bridge residual": residual_order(residuals(bridged, old_index)),
    "forward residual": residual_order(residuals(forwarded, new_index)),
    "random": random_order(len(ids), seed),
  }
  return new_index, forwarded, orders


def backfilling(
  reg: registry.EmbeddingRegistry,
  splits: Sequence[VersionSplit],
  j: int,
  k: int,
  chunk_size: int = 512,
  seed: int = 0,
  top: int = RETRIEVAL_K,
) -> dict:
  """:func:`backfill_curves` of one strategy's index version ``j < k``.

  The orders are those of the package docstring (:func:`backfill_index`);
  ``seed`` seeds ``random``.
  """
  new_index, forwarded, orders = backfill_index(reg, j, k, seed)
  return backfill_curves(
    index_split(splits[k], len(new_index)),
    queries=reg.compatible_embeddings(k, k, kind="user"),
    new_index=new_index,
    forwarded=forwarded,
    orders=orders,
    top=top,
    chunk_size=chunk_size,
  )
