"""How well a bridge serves the old space: errors, retrieval, neighbourhoods.

Vocabulary: the **index** is a set of old-version vectors ``(n_index, d_old)``;
**queries** are vectors in the old space ``(n_q, d_old)`` (bridged new
vectors, or anything else to compare); ``rows[i]`` is the index row that
query ``i`` stands for (its own old vector), so that it can be found or left
out. Similarity is the cosine throughout.

* :func:`mse` and :func:`mean_cosine`: bridged against true old vectors.
* :func:`self_recall`: Recall@K of a query finding its own old vector.
* :func:`neighbour_overlap`: of the K nearest old neighbours of the true old
  vector (itself left out), the share the bridged vector also finds among
  its K nearest (itself left out).
* :func:`query_scores`: both, per query and unsampled (what
  ``fit(family="auto")`` scores its candidates by).
* :func:`class_retrieval`: the share of a query's K nearest index rows that
  share its label (its own row left out when ``rows`` is given), for any
  query/index pair; :func:`retention` is bridged over re-indexed.
* :func:`evaluate`: all of them for a bridge on a set of query rows.

Neighbours are found by :func:`nearest`: queries in fixed-size chunks
against the whole index, one jitted ``scores -> jax.lax.top_k`` per chunk
shape, so a request compiles once. Measures over many queries look at a
seeded sample of at most ``max_queries`` (:func:`sample_queries`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bcjax.errors import InputError

MAX_QUERIES = 10_000
# Scores held at once per chunk: 2^25 float32 is 128 MiB.
_SCORE_BUDGET = 1 << 25


def mse(bridged: np.ndarray, old: np.ndarray) -> float:
  """Mean over rows and dimensions of ``(bridged - old)^2`` (the sloss's)."""
  bridged, old = _pair(bridged, old)
  return float(np.mean((bridged.astype(np.float64) - old) ** 2))


def mean_cosine(bridged: np.ndarray, old: np.ndarray) -> float:
  """Mean over rows of ``cos(bridged_i, old_i)``; a zero row counts as 0."""
  bridged, old = _pair(bridged, old)
  a, b = _unit(bridged.astype(np.float64)), _unit(old.astype(np.float64))
  return float(np.mean(np.sum(a * b, axis=1)))


def sample_queries(n: int, max_queries: int = MAX_QUERIES, seed: int = 0):
  """Sorted positions of at most ``max_queries`` of ``n`` queries, seeded."""
  if n <= max_queries:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).choice(n, max_queries, replace=False))


def nearest(index: np.ndarray, queries: np.ndarray, k: int, exclude=None) -> np.ndarray:
  """The ``k`` index rows most cosine-similar to each query, best first.

  Args:
    index: ``(n_index, d)``.
    queries: ``(n_q, d)``.
    k: neighbours per query, ``1 <= k <= n_index`` (one fewer with
      ``exclude``).
    exclude: ``(n_q,)`` index row each query may not return (-1: none).

  Returns:
    ``(n_q, k)`` int32 index rows.
  """
  index, queries = _matrix("index", index), _matrix("queries", queries)
  if index.shape[1] != queries.shape[1]:
    raise InputError(
      f"queries have {queries.shape[1]} dims but the index has {index.shape[1]}"
    )
  available = len(index) - (0 if exclude is None else 1)
  if not 1 <= k <= available:
    raise InputError(f"k must be in 1..{available} for this index, got {k}")
  exclude = np.full(len(queries), -1) if exclude is None else np.asarray(exclude)
  chunk = int(min(1024, max(1, _SCORE_BUDGET // len(index))))
  unit_index = jnp.asarray(_unit(index))
  unit_queries = _unit(queries)
  out = []
  for start in range(0, len(queries), chunk):
    part = unit_queries[start : start + chunk]
    skip = exclude[start : start + chunk].astype(np.int32)
    n = len(part)
    part = np.pad(part, ((0, chunk - n), (0, 0)))
    skip = np.pad(skip, (0, chunk - n), constant_values=-1)
    out.append(np.asarray(_top_k(unit_index, part, skip, k))[:n])
  if not out:
    return np.zeros((0, k), np.int32)
  return np.concatenate(out)


@functools.partial(jax.jit, static_argnums=3)
def _top_k(index, queries, exclude, k):
  scores = queries @ index.T
  hit = jnp.arange(index.shape[0])[None, :] == exclude[:, None]
  scores = jnp.where(hit, -jnp.inf, scores)
  return jax.lax.top_k(scores, k)[1]


def self_recall(
  index, queries, rows, k: int = 10, *, max_queries=MAX_QUERIES, seed: int = 0
) -> float:
  """Share of (sampled) queries whose own row ``rows[i]`` is in their top ``k``."""
  rows = _rows(rows, queries, index)
  pick = sample_queries(len(rows), max_queries, seed)
  found = nearest(index, np.asarray(queries)[pick], min(k, len(index)))
  return float(np.mean(np.any(found == rows[pick, None], axis=1)))


def neighbour_overlap(
  index, queries, rows, k: int = 10, *, max_queries=MAX_QUERIES, seed: int = 0
) -> float:
  """Mean share of the true old vector's ``k`` neighbours the query finds.

  Both neighbour lists leave out the query's own row, so a perfect bridge
  scores 1 and the measure says nothing about finding oneself
  (:func:`self_recall` does).
  """
  rows = _rows(rows, queries, index)
  pick = sample_queries(len(rows), max_queries, seed)
  index = np.asarray(index)
  truth = nearest(index, index[rows[pick]], k, exclude=rows[pick])
  found = nearest(index, np.asarray(queries)[pick], k, exclude=rows[pick])
  shared = (truth[:, :, None] == found[:, None, :]).any(axis=2).sum(axis=1)
  return float(np.mean(shared / k))


def query_scores(index, queries, rows, k: int = 10, truth=None):
  """Per query, unsampled: ``(hit, overlap)`` of :func:`self_recall` and
  :func:`neighbour_overlap`, from one neighbour search of ``k + 1``.

  The ``k`` neighbours with the query's own row left out are the ``k + 1``
  nearest less that row (or the first ``k`` when it is not among them).

  Args:
    index: ``(n_index, d)``, at least 2 rows.
    queries: ``(n_q, d)``.
    rows: ``(n_q,)`` the index row each query stands for.
    k: the K of both (at most ``n_index`` for hits, ``n_index - 1`` for the
      overlap).
    truth: ``(n_q, k')`` the true old vectors' neighbours as
      :func:`query_truth` gives them, when computed once for many queries.

  Returns:
    ``hit`` ``(n_q,)`` 1.0 where the own row is among the ``k`` nearest,
    ``overlap`` ``(n_q,)`` the share of the truth's neighbours found.
  """
  index = _matrix("index", index)
  rows = _rows(rows, queries, index)
  if len(index) < 2:
    raise InputError(
      f"query_scores needs an index of at least 2 rows, got {len(index)}"
    )
  if truth is None:
    truth = query_truth(index, rows, k)
  k_hit, k_overlap = min(k, len(index)), truth.shape[1]
  found = nearest(index, queries, min(k + 1, len(index)))
  mine = found == rows[:, None]
  hit = mine[:, :k_hit].any(axis=1).astype(np.float64)
  # Drop the own row from each list (stable), then keep k' neighbours.
  order = np.argsort(mine, axis=1, kind="stable")
  others = np.take_along_axis(found, order, axis=1)[:, :k_overlap]
  shared = (truth[:, :, None] == others[:, None, :]).any(axis=2).sum(axis=1)
  return hit, shared / k_overlap


def query_truth(index, rows, k: int = 10) -> np.ndarray:
  """``(n_q, min(k, n_index - 1))`` neighbours of ``index[rows]``, itself left out."""
  index, rows = _matrix("index", index), np.asarray(rows)
  return nearest(index, index[rows], min(k, len(index) - 1), exclude=rows)


def class_retrieval(
  index,
  queries,
  index_labels,
  query_labels,
  k: int = 10,
  *,
  rows=None,
  max_queries=MAX_QUERIES,
  seed: int = 0,
) -> float:
  """Mean share of a query's ``k`` nearest index rows that share its label.

  Args:
    index: ``(n_index, d)``.
    queries: ``(n_q, d)``.
    index_labels: ``(n_index,)`` labels of the index rows.
    query_labels: ``(n_q,)`` labels of the queries.
    k: neighbours looked at.
    rows: ``(n_q,)`` the index row of each query, left out of its
      neighbours (None: queries are not in the index).
    max_queries: queries sampled at most.
    seed: the sample's seed.
  """
  index_labels, query_labels = np.asarray(index_labels), np.asarray(query_labels)
  if index_labels.shape != (len(index),) or query_labels.shape != (len(queries),):
    raise InputError(
      f"labels must be 1-d, one per row: got {index_labels.shape} for "
      f"{len(index)} index rows and {query_labels.shape} for {len(queries)} queries"
    )
  pick = sample_queries(len(queries), max_queries, seed)
  exclude = None if rows is None else _rows(rows, queries, index)[pick]
  found = nearest(index, np.asarray(queries)[pick], k, exclude=exclude)
  return float(np.mean(index_labels[found] == query_labels[pick, None]))


def retention(bridged: float, reindexed: float) -> float:
  """``bridged / reindexed``: the share of a re-indexed score a bridge keeps.

  ``reindexed`` is the same measure when everything is re-embedded with the
  new model (new queries against a new index); NaN when it is 0.
  """
  return float(bridged / reindexed) if reindexed else float("nan")


def _unit(z: np.ndarray) -> np.ndarray:
  norm = np.linalg.norm(z, axis=1, keepdims=True)
  return z / np.maximum(norm, 1e-30)


def _matrix(name, z) -> np.ndarray:
  z = np.asarray(z, np.float32)
  if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
    raise InputError(f"{name} must be a non-empty (rows, dims) array, got {z.shape}")
  return z


def _pair(a, b):
  a, b = _matrix("bridged", a), _matrix("old", b)
  if a.shape != b.shape:
    raise InputError(f"bridged {a.shape} and old {b.shape} must have one shape")
  return a, b


def _rows(rows, queries, index) -> np.ndarray:
  rows = np.asarray(rows)
  if rows.shape != (len(queries),) or not np.issubdtype(rows.dtype, np.integer):
    raise InputError(
      f"rows must be 1-d integers, one per query ({len(queries)}), got "
      f"{rows.dtype} {rows.shape}"
    )
  if len(rows) and (rows.min() < 0 or rows.max() >= len(index)):
    raise InputError(f"rows must be index rows 0..{len(index) - 1}")
  return rows


def evaluate(
  old,
  new,
  bridged,
  rows,
  *,
  labels=None,
  k: int = 10,
  max_queries: int = MAX_QUERIES,
  seed: int = 0,
) -> dict:
  """Every measure of a bridge on query ``rows``, against the whole old index.

  Args:
    old: ``(N, d_old)`` old vectors of every row: the index.
    new: ``(N, d_new)`` new vectors of every row: the re-indexed index
      (None: no re-indexed measures, as for a chain of bridges).
    bridged: ``(len(rows), d_old)`` the bridge applied to ``new[rows]``.
    rows: ``(n_q,)`` the query rows (e.g. a test split).
    labels: ``(N,)`` a label per row, for class retrieval (None: skipped).
    k: the K of every @K measure.
    max_queries: queries sampled at most for the retrieval measures.
    seed: the sample's seed.

  Returns:
    ``mse``, ``mean_cosine``, ``self_recall``, ``neighbour_overlap`` and,
    with labels, ``class_retrieval`` of the bridged queries against the old
    index, of the old queries against it (``class_retrieval_old``, what
    consumers of the old version had) and of new queries against the new
    index (``class_retrieval_reindexed``), and ``retention`` (bridged over
    re-indexed); where the widths match, ``class_retrieval_unbridged`` (new
    queries against the old index, the no-bridge baseline). A query's own
    row is left out of its class neighbours.
  """
  old, rows = np.asarray(old), np.asarray(rows)
  sample = {"max_queries": max_queries, "seed": seed}
  out = {
    "queries": int(len(rows)),
    "index": int(len(old)),
    "k": int(k),
    "mse": mse(bridged, old[rows]),
    "mean_cosine": mean_cosine(bridged, old[rows]),
    "self_recall": self_recall(old, bridged, rows, k, **sample),
    "neighbour_overlap": neighbour_overlap(old, bridged, rows, k, **sample),
  }
  if labels is not None:
    labels = np.asarray(labels)
    mine = labels[rows]

    def classes(index, queries):
      return class_retrieval(index, queries, labels, mine, k, rows=rows, **sample)

    out["class_retrieval"] = classes(old, bridged)
    out["class_retrieval_old"] = classes(old, old[rows])
    if new is not None:
      new = np.asarray(new)
      out["class_retrieval_reindexed"] = classes(new, new[rows])
      if new.shape[1] == old.shape[1]:
        # What serving new vectors into the old index with no bridge gives.
        out["class_retrieval_unbridged"] = classes(old, new[rows])
      out["retention"] = retention(
        out["class_retrieval"], out["class_retrieval_reindexed"]
      )
  return out
