"""Recall@K of the intended task (product recommendation) on a version split.

As in the reference implementation of Hu et al. (KDD 2022): only users with
validation interactions are evaluated; each user's training positives are
excluded from the ranking; recall@K is the number of the user's distinct
validation items in the top K over the number of those items, averaged over
the evaluated users.

The evaluator scores users in chunks of fixed size with one jitted function
(``lax.map`` over chunks), so it compiles once per version and never
materialises the full ``(num_users, num_items)`` score matrix. Ragged
per-user item lists become padded ``(row, item)`` pairs per chunk whose padding
points outside the chunk and is dropped by the scatter. Each user's hits come
back as integers and are averaged on the host in user order, and equal scores
go to the lower item id, so the chunk size never changes a recall.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from bcjax.data.split import VersionSplit

KS = (10, 20, 50, 100)


def _chunk_pairs(
  rows_of_user: np.ndarray, user: np.ndarray, item: np.ndarray, chunk: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
  """Pairs ``(row within chunk, item)`` grouped by chunk, padded to one length.

  Args:
    rows_of_user: ``(num_users,)`` position of each user among the evaluated
      users, -1 for the others.
    user: ``(num_pairs,)`` users of the pairs.
    item: ``(num_pairs,)`` items of the pairs.
    chunk: users per chunk.
    n: number of chunks.

  Returns:
    ``rows`` and ``items``, each ``(n, max_pairs_per_chunk)`` int32; padding
    has row ``chunk`` (out of bounds, dropped).
  """
  pos = rows_of_user[user]
  keep = pos >= 0
  pos, item = pos[keep], item[keep]
  order = np.argsort(pos, kind="stable")
  pos, item = pos[order], item[order]
  which = pos // chunk
  counts = np.bincount(which, minlength=n)
  width = max(int(counts.max()) if len(counts) else 0, 1)
  rows = np.full((n, width), chunk, np.int32)
  items = np.zeros((n, width), np.int32)
  slot = np.arange(len(pos)) - np.concatenate([[0], np.cumsum(counts)])[which]
  rows[which, slot] = pos % chunk
  items[which, slot] = item
  return rows, items


class RecallEvaluator:
  """Recall@K on one version's validation window, compiled once.

  Example::

    evaluator = RecallEvaluator(split)
    recalls = evaluator(user_emb, item_emb)  # {10: ..., 20: ..., ...}
  """

  def __init__(
    self,
    split: VersionSplit,
    ks: Sequence[int] = KS,
    chunk_size: int = 512,
    users: np.ndarray | None = None,
  ):
    """Indexes the split's training positives and validation items.

    Args:
      split: the version split.
      ks: the cut-offs K.
      chunk_size: users scored per chunk (memory ~ chunk_size * num_items).
      users: evaluate only these users (of those with validation
        interactions); None: all of them.
    """
    self.ks = tuple(sorted(int(k) for k in ks))
    self.num_items = split.num_items
    self.eval_users = np.unique(split.val_user).astype(np.int32)
    if users is not None:
      self.eval_users = np.intersect1d(self.eval_users, users).astype(np.int32)
    self.chunk_size = int(min(chunk_size, max(len(self.eval_users), 1)))
    num_chunks = -(-len(self.eval_users) // self.chunk_size)
    padded = np.zeros(num_chunks * self.chunk_size, np.int32)
    padded[: len(self.eval_users)] = self.eval_users
    rows_of_user = np.full(split.num_users, -1, np.int64)
    rows_of_user[self.eval_users] = np.arange(len(self.eval_users))
    val_pairs = np.unique(
      split.val_user.astype(np.int64) * split.num_items + split.val_item
    )
    val_user, val_item = val_pairs // split.num_items, val_pairs % split.num_items
    num_val = np.bincount(val_user, minlength=split.num_users)[padded]
    train_rows, train_items = _chunk_pairs(
      rows_of_user,
      split.train_user,
      split.train_item,
      self.chunk_size,
      num_chunks,
    )
    val_rows, val_items = _chunk_pairs(
      rows_of_user, val_user, val_item, self.chunk_size, num_chunks
    )
    self._num_val = np.maximum(num_val[: len(self.eval_users)], 1)
    self._chunks = (
      jnp.asarray(padded.reshape(num_chunks, self.chunk_size)),
      jnp.asarray(train_rows),
      jnp.asarray(train_items),
      jnp.asarray(val_rows),
      jnp.asarray(val_items),
    )
    self._evaluate = jax.jit(self._evaluate_all)

  @property
  def num_eval_users(self) -> int:
    return len(self.eval_users)

  def compilations(self) -> int:
    """How many times the evaluation has been compiled (1 once called)."""
    return self._evaluate._cache_size()

  def _evaluate_all(self, user_emb, item_emb, chunks):
    top = min(self.ks[-1], self.num_items)

    def one_chunk(chunk):
      users, t_rows, t_items, v_rows, v_items = chunk
      scores = user_emb[users] @ item_emb.T
      scores = scores.at[t_rows, t_items].set(-jnp.inf, mode="drop")
      # Equal scores go to the lower item id (lax.top_k keeps the first).
      _, top_items = jax.lax.top_k(scores, top)
      relevant = jnp.zeros(scores.shape, bool)
      relevant = relevant.at[v_rows, v_items].set(True, mode="drop")
      hits = jnp.take_along_axis(relevant, top_items, axis=1)
      cum_hits = jnp.cumsum(hits, axis=1, dtype=jnp.int32)
      return jnp.stack([cum_hits[:, min(k, top) - 1] for k in self.ks], axis=-1)

    return jax.lax.map(one_chunk, chunks)

  def __call__(self, user_emb: jax.Array, item_emb: jax.Array) -> dict[int, float]:
    """Recall@K for each K.

    Args:
      user_emb: ``(num_users, dim)`` user embeddings of the version.
      item_emb: ``(num_items, dim)`` item embeddings of the version.

    Returns:
      ``{K: recall}``.
    """
    hits = np.asarray(self._evaluate(user_emb, item_emb, self._chunks))
    # Hits per user come back as integers and are averaged here in one fixed
    # order, so the chunk size cannot change a recall, not even in its last bit.
    hits = hits.reshape(-1, len(self.ks))[: len(self.eval_users)]
    if not len(hits):
      return {k: 0.0 for k in self.ks}
    recalls = (hits / self._num_val[:, None]).mean(axis=0)
    return {k: float(v) for k, v in zip(self.ks, recalls)}


def most_popular_recall(
  split: VersionSplit,
  ks: Sequence[int] = KS,
  report_split: str = "validation",
  seed: int = 0,
) -> dict[int, float]:
  """Recall@K of ranking every user's items by training popularity.

  The non-personalised baseline: scores are the items' training degrees. It
  is measured on the users that ``report_split`` (with the halves of
  ``seed``) reports on.
  """
  popularity = np.bincount(split.train_item, minlength=split.num_items)
  user_emb = jnp.ones((split.num_users, 1), jnp.float32)
  item_emb = jnp.asarray(popularity, jnp.float32)[:, None]
  _, report = version_evaluators(split, report_split, ks=ks, seed=seed)
  return report(user_emb, item_emb)


# How a version's validation users serve the choice of the kept epoch and
# the Recall@K that is reported for it.
REPORT_SPLITS = ("validation", "held_out")


def held_out_halves(users: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Splits user ids into two halves by a seeded hash of each id.

  A user falls in the same half in every version and run (the hash is of its
  id and ``seed`` alone: SplitMix64's finaliser, whose low bit is balanced).

  Args:
    users: ``(n,)`` user ids.
    seed: which of the splits.

  Returns:
    ``(selection, report)``: the ids whose hash is even, and odd.
  """
  offset = np.uint64(0x9E3779B97F4A7C15 * (seed + 1) % 2**64)
  z = np.asarray(users, np.uint64) + offset  # wraps around, as SplitMix64's
  z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  odd = ((z ^ (z >> np.uint64(31))) & np.uint64(1)).astype(bool)
  users = np.asarray(users)
  return users[~odd], users[odd]


def version_halves(
  split: VersionSplit, report_split: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """The validation users that choose and those that report, sorted.

  Args:
    split: the version split.
    report_split: ``"validation"`` (both are every validation user) or
      ``"held_out"`` (the halves of :func:`held_out_halves`).
    seed: which halves.

  Returns:
    ``(selection, report)`` user ids.

  Raises:
    ValueError: for an unknown ``report_split``.
  """
  users = np.unique(split.val_user)
  if report_split == "validation":
    return users, users
  if report_split == "held_out":
    return held_out_halves(users, seed)
  raise ValueError(
    f"unknown report_split {report_split!r}; expected one of {REPORT_SPLITS}"
  )


def halves_record(splits: Sequence[VersionSplit], report_split: str, seed: int) -> dict:
  """Per version, the validation users that chose each kept epoch and those
  whose Recall@K is reported (results.json's ``halves``, whose ``tasks`` the
  comparison adds): an outsider checks from them that the two are disjoint."""
  out = {}
  for split in splits:
    selection, report = version_halves(split, report_split, seed)
    out[str(split.version)] = {
      "selection_users": selection.tolist(),
      "report_users": report.tolist(),
    }
  return {"report_split": report_split, "seed": seed, "intended": out}


def version_evaluators(
  split: VersionSplit,
  report_split: str,
  ks: Sequence[int] = KS,
  chunk_size: int = 512,
  seed: int = 0,
) -> tuple[RecallEvaluator, RecallEvaluator]:
  """The evaluators that choose a version's epoch and report its Recall@K.

  Args:
    split: the version split.
    report_split: ``"validation"``: both are every validation user (the
      reference's way: the reported number is the one that chose the epoch,
      so it is optimistic); ``"held_out"``: the validation users split in
      two halves by :func:`held_out_halves`, one choosing, one reporting.
    ks: the cut-offs K.
    chunk_size: users scored per chunk.
    seed: which halves (the run's embedding seed: each seed its own halves,
      so no one split of the users decides every seed).

  Returns:
    ``(selection, report)``; the same object for ``"validation"``.

  Raises:
    ValueError: for an unknown ``report_split``.
  """
  selection, report = version_halves(split, report_split, seed)
  if report_split == "validation":
    evaluator = RecallEvaluator(split, ks, chunk_size)
    return evaluator, evaluator
  return (
    RecallEvaluator(split, ks, chunk_size, users=selection),
    RecallEvaluator(split, ks, chunk_size, users=report),
  )
