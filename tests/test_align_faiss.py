"""A bridge over an existing FAISS index: new queries search the old vectors.

Each case checks the wrapped index against NumPy brute force on the bridged
queries: the same distances, and the same ids wherever no tie could swap
them.
"""

import os

import faiss
import numpy as np
import pytest

from bcjax import align
from bcjax.align import faiss_index
from bcjax.errors import InputError

K = 5


@pytest.fixture(scope="module")
def pair():
  rng = np.random.default_rng(0)
  new = rng.normal(size=(400, 12)).astype(np.float32)
  old = (new @ rng.normal(size=(12, 8)) + 0.5 * rng.normal(size=(400, 8)) + 1.0).astype(
    np.float32
  )
  return old, new


def _assert_same_neighbours(distances, ids, want_distances, want_ids):
  np.testing.assert_allclose(distances, want_distances, rtol=1e-4, atol=1e-4)
  # An id may differ only where its distance ties with a neighbour's.
  gaps = np.diff(want_distances, axis=1)
  clear = np.ones_like(ids, bool)
  clear[:, 1:] &= np.abs(gaps) > 1e-4
  clear[:, :-1] &= np.abs(gaps) > 1e-4
  np.testing.assert_array_equal(ids[clear], want_ids[clear])


@pytest.mark.parametrize(
  "family,options",
  [
    ("linear", {}),
    ("linear", {"center": True, "normalize": True}),
    ("orthogonal", {"center": True}),
    ("reducedrank", {"hparams": {"rank": 4}, "normalize": True}),
  ],
)
def test_a_flat_l2_index_searched_through_the_bridge_is_brute_force(
  tmp_path, pair, family, options
):
  old, new = pair
  bridge = align.fit(old=old[:300], new=new[:300], family=family, **options)
  faiss_index.write_transform(bridge, str(tmp_path / "bridge"))
  index = faiss.IndexFlatL2(old.shape[1])
  index.add(old)
  faiss.write_index(index, str(tmp_path / "old.index"))
  wrapped = faiss_index.wrap_index(
    str(tmp_path / "old.index"), str(tmp_path / "bridge")
  )
  distances, ids = wrapped.search(new[300:], K)

  bridged = bridge.apply(new[300:]).astype(np.float64)
  squared = ((bridged[:, None, :] - old[None].astype(np.float64)) ** 2).sum(-1)
  want_ids = np.argsort(squared, axis=1, kind="stable")[:, :K]
  _assert_same_neighbours(
    distances, ids, np.take_along_axis(squared, want_ids, 1), want_ids
  )
  # Only the transforms were written, never a copy of the index.
  assert sorted(os.listdir(tmp_path / "bridge")) == sorted(
    ["transform.json", *[f"{i}.vt" for i in range(1 + bool(bridge.normalize))]]
  )


def test_an_inner_product_index_scores_cosines_of_the_bridged_query(tmp_path, pair):
  old, new = pair
  bridge = align.fit(old=old[:300], new=new[:300], family="linear", center=True)
  faiss_index.write_transform(bridge, str(tmp_path / "bridge"))
  unit_old = old / np.linalg.norm(old, axis=1, keepdims=True)
  index = faiss.IndexFlatIP(old.shape[1])
  index.add(unit_old)
  wrapped = faiss_index.wrap_index(index, str(tmp_path / "bridge"))
  scores, ids = wrapped.search(new[300:], K)

  bridged = bridge.apply(new[300:]).astype(np.float64)
  cosines = (bridged / np.linalg.norm(bridged, axis=1, keepdims=True)) @ unit_old.T
  want_ids = np.argsort(-cosines, axis=1, kind="stable")[:, :K]
  # Negated, the scores sort ascending like distances.
  _assert_same_neighbours(
    -scores, ids, -np.take_along_axis(cosines, want_ids, 1), want_ids
  )


def test_an_mlp_bridge_and_a_wrong_width_are_one_line(tmp_path, pair):
  old, new = pair
  mlp = align.fit(old=old, new=new, family="mlp", hparams={"max_epochs": 2})
  with pytest.raises(InputError, match="a mlp bridge is not affine"):
    faiss_index.write_transform(mlp, str(tmp_path / "mlp"))
  assert not os.path.exists(tmp_path / "mlp")
  bridge = align.fit(old=old, new=new, family="linear")
  faiss_index.write_transform(bridge, str(tmp_path / "bridge"))
  with pytest.raises(InputError, match=r"maps 12 -> 8 dims, but the index holds 6-dim"):
    faiss_index.wrap_index(faiss.IndexFlatL2(6), str(tmp_path / "bridge"))
  with pytest.raises(InputError, match="no FAISS transform of a bridge"):
    faiss_index.wrap_index(faiss.IndexFlatL2(8), str(tmp_path))
