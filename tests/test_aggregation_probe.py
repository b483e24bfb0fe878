"""The aggregation probe's candidate layouts sum like NumPy (no timings)."""

import jax.numpy as jnp
import numpy as np
import pytest

from bcjax.models import aggregation
from benchmarks import aggregation_probe as probe
from tests.conftest import mosaic_param

KINDS = [
  "scatter",
  "sorted-g2",
  "sorted-g1.5",
  "pallas",
  "pallas-w2-b4-p8-n4-s3",
  mosaic_param("mosaic"),
  mosaic_param("mosaic-w3-b256-p8"),
]


def _edges(seed=0, num_senders=40, num_receivers=30, num_edges=300):
  rng = np.random.default_rng(seed)
  senders = rng.integers(0, num_senders, num_edges)
  # Receivers 25..29 get no edge: their sums must be zero rows.
  receivers = rng.integers(0, num_receivers - 5, num_edges)
  return senders, receivers, num_senders, num_receivers


@pytest.mark.parametrize("kind", KINDS)
def test_each_candidate_sums_like_numpy(kind):
  senders, receivers, ns, nr = _edges()
  x = np.random.default_rng(1).normal(size=(ns, 6)).astype(np.float32)
  want = np.zeros((nr, 6))
  np.add.at(want, receivers, x[senders])
  got = probe._build(kind, senders, receivers, ns, nr).sum(jnp.asarray(x))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
  "kind",
  [
    "sorted-g1.5",
    "pallas-w4-b512-p16-n2",
    mosaic_param("mosaic-w4-b128-p16"),
  ],
)
def test_relayout_rebuilds_the_same_relation(kind):
  senders, receivers, ns, nr = _edges(seed=2)
  relation = aggregation.Relation.build(senders, receivers, ns, nr, "sorted")
  rebuilt = probe._relayout({"adjacency": relation}, kind)["adjacency"]
  x = jnp.asarray(np.random.default_rng(3).normal(size=(ns, 4)), jnp.float32)
  y = jnp.asarray(np.random.default_rng(4).normal(size=(nr, 4)), jnp.float32)
  np.testing.assert_allclose(rebuilt.forward.sum(x), relation.forward.sum(x), atol=1e-5)
  np.testing.assert_allclose(
    rebuilt.transpose.sum(y), relation.transpose.sum(y), atol=1e-5
  )


def test_an_unknown_candidate_is_refused():
  senders, receivers, ns, nr = _edges()
  for gone in ("bogus-g2", "set-g2", "columns-u8-g1.5"):
    with pytest.raises(ValueError, match=f"unknown candidate '{gone}'"):
      probe._build(gone, senders, receivers, ns, nr)
  with pytest.raises(ValueError, match="unknown candidate 'pallas-w4'"):
    probe._build("pallas-w4", senders, receivers, ns, nr)
  with pytest.raises(ValueError, match="unknown candidate 'mosaic-w4'"):
    probe._build("mosaic-w4", senders, receivers, ns, nr)
