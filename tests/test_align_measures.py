"""The measures of bcjax.align against brute-force NumPy on small random inputs.

Each reference below scores every query against every index row with
``argsort`` (no chunks, no top_k, no sampling), so it shares nothing with the
jitted chunked path but the definition.
"""

import numpy as np
import pytest

from bcjax.align import measures
from bcjax.errors import InputError


def _unit(z):
  return z / np.linalg.norm(z, axis=1, keepdims=True)


def _brute_nearest(index, queries, k, exclude=None):
  scores = _unit(queries.astype(np.float64)) @ _unit(index.astype(np.float64)).T
  if exclude is not None:
    scores[np.arange(len(queries)), exclude] = -np.inf
  return np.argsort(-scores, axis=1, kind="stable")[:, :k]


@pytest.fixture
def data():
  rng = np.random.default_rng(0)
  index = rng.normal(size=(300, 6)).astype(np.float32)
  rows = rng.choice(300, size=120, replace=False)
  # Bridged vectors: their own old vector plus noise, so some find it.
  queries = (index[rows] + 0.6 * rng.normal(size=(120, 6))).astype(np.float32)
  labels = rng.integers(0, 4, size=300)
  return index, queries, rows, labels


def test_mse_and_mean_cosine(data):
  index, queries, rows, _ = data
  old = index[rows]
  assert measures.mse(queries, old) == pytest.approx(
    np.mean((queries.astype(np.float64) - old) ** 2), rel=1e-9
  )
  cos = [a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(queries, old)]
  assert measures.mean_cosine(queries, old) == pytest.approx(np.mean(cos), rel=1e-9)


@pytest.mark.parametrize("budget", [1 << 25, 1000])
def test_nearest_matches_argsort_in_one_or_many_chunks(data, budget, monkeypatch):
  # A budget of 1000 scores makes chunks of 3 queries: many chunks, the
  # last one padded.
  monkeypatch.setattr(measures, "_SCORE_BUDGET", budget)
  index, queries, rows, _ = data
  np.testing.assert_array_equal(
    measures.nearest(index, queries, 7), _brute_nearest(index, queries, 7)
  )
  np.testing.assert_array_equal(
    measures.nearest(index, queries, 7, exclude=rows),
    _brute_nearest(index, queries, 7, rows),
  )


def test_self_recall(data):
  index, queries, rows, _ = data
  for k in (1, 10):
    found = _brute_nearest(index, queries, k)
    want = np.mean([rows[i] in found[i] for i in range(len(rows))])
    assert measures.self_recall(index, queries, rows, k) == pytest.approx(want)
  # Perfect bridges find themselves.
  assert measures.self_recall(index, index[rows], rows, 1) == 1.0


def test_self_recall_samples_at_most_max_queries_with_its_seed(data):
  index, queries, rows, _ = data
  pick = measures.sample_queries(len(rows), 50, seed=3)
  assert len(pick) == 50 and len(np.unique(pick)) == 50
  found = _brute_nearest(index, queries[pick], 10)
  want = np.mean([rows[p] in found[i] for i, p in enumerate(pick)])
  got = measures.self_recall(index, queries, rows, 10, max_queries=50, seed=3)
  assert got == pytest.approx(want)
  assert not np.array_equal(pick, measures.sample_queries(len(rows), 50, seed=4))


def test_neighbour_overlap(data):
  index, queries, rows, _ = data
  k = 8
  truth = _brute_nearest(index, index[rows], k, rows)
  found = _brute_nearest(index, queries, k, rows)
  want = np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found)])
  assert measures.neighbour_overlap(index, queries, rows, k) == pytest.approx(want)
  assert measures.neighbour_overlap(index, index[rows], rows, k) == 1.0


def test_class_retrieval_with_and_without_own_row(data):
  index, queries, rows, labels = data
  k = 5
  query_labels = labels[rows]
  for exclude in (None, rows):
    found = _brute_nearest(index, queries, k, exclude)
    want = np.mean(labels[found] == query_labels[:, None])
    got = measures.class_retrieval(
      index, queries, labels, query_labels, k, rows=exclude
    )
    assert got == pytest.approx(want)
  # A query that is its index row finds it first unless it is left out.
  with_self = measures.class_retrieval(index, index[rows], labels, query_labels, 1)
  assert with_self == 1.0


def test_retention():
  assert measures.retention(0.3, 0.6) == pytest.approx(0.5)
  assert np.isnan(measures.retention(0.3, 0.0))


@pytest.mark.parametrize(
  "call, message",
  [
    (lambda i, q, r: measures.self_recall(i, q[:, :3], r), "queries have 3 dims"),
    (lambda i, q, r: measures.self_recall(i, q, r[:5]), "rows must be 1-d integers"),
    (lambda i, q, r: measures.self_recall(i, q, r + 1000), "rows must be index rows"),
    (lambda i, q, r: measures.nearest(i, q, 0), "k must be in 1..300"),
    (lambda i, q, r: measures.mse(q, q[:3]), "must have one shape"),
    (lambda i, q, r: measures.mse(q[0], q[0]), "non-empty (rows, dims) array"),
    (
      lambda i, q, r: measures.class_retrieval(i, q, r, r, 5),
      "labels must be 1-d, one per row",
    ),
  ],
)
def test_bad_input_is_one_line(data, call, message):
  index, queries, rows, _ = data
  with pytest.raises(InputError, match=None) as e:
    call(index, queries, rows)
  assert message in str(e.value) and "\n" not in str(e.value)


def test_evaluate_gathers_every_measure(data):
  index, queries, rows, labels = data
  new = np.random.default_rng(5).normal(size=(300, 9)).astype(np.float32)
  got = measures.evaluate(index, new, queries, rows, labels=labels, k=5)
  assert got["self_recall"] == measures.self_recall(index, queries, rows, 5)
  assert got["neighbour_overlap"] == measures.neighbour_overlap(index, queries, rows, 5)
  assert got["mse"] == measures.mse(queries, index[rows])
  reindexed = measures.class_retrieval(
    new, new[rows], labels, labels[rows], 5, rows=rows
  )
  assert got["class_retrieval_reindexed"] == reindexed
  assert got["retention"] == pytest.approx(got["class_retrieval"] / reindexed)
  assert "class_retrieval" not in measures.evaluate(index, new, queries, rows, k=5)


def test_query_scores_per_query_against_argsort(data):
  index, queries, rows, _ = data
  for k in (1, 10):
    hit, overlap = measures.query_scores(index, queries, rows, k)
    found = _brute_nearest(index, queries, k)
    truth = _brute_nearest(index, index[rows], k, rows)
    others = _brute_nearest(index, queries, k, rows)
    np.testing.assert_array_equal(hit, [rows[i] in found[i] for i in range(len(rows))])
    want = [len(set(truth[i]) & set(others[i])) / k for i in range(len(rows))]
    np.testing.assert_allclose(overlap, want)
    # Their means are the sampled measures with every query taken.
    assert hit.mean() == pytest.approx(measures.self_recall(index, queries, rows, k))
    assert overlap.mean() == pytest.approx(
      measures.neighbour_overlap(index, queries, rows, k)
    )
  # The truth computed once gives the same.
  truth = measures.query_truth(index, rows, 10)
  again = measures.query_scores(index, queries, rows, 10, truth=truth)
  np.testing.assert_array_equal(
    again[1], measures.query_scores(index, queries, rows)[1]
  )
