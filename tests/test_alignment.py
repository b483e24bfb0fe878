"""Alignment MSEs and the pooled distance to fix-m0, against NumPy by hand."""

import numpy as np
import pytest

from bcjax.components import transforms
from bcjax.evaluation.alignment import pooled_mean_distance, version_alignment


def test_pooled_distance_weighs_every_node_alike():
  # Three users at distance 1 and one item at distance 5: the pooled mean
  # (the reference's torch.vstack) is 8 / 4 = 2, the per-kind mean 3.
  users = np.zeros((3, 2))
  items = np.zeros((1, 2))
  users_off = users + np.array([1.0, 0.0])
  items_off = items + np.array([3.0, 4.0])
  got = pooled_mean_distance((users_off, items_off), (users, items))
  assert got == pytest.approx(2.0)
  stacked = np.vstack([users_off, items_off]) - np.vstack([users, items])
  assert got == pytest.approx(np.mean(np.sqrt(np.sum(stacked**2, axis=1))))


def test_version_alignment_names_mse_and_distance():
  rng = np.random.default_rng(0)
  current = (rng.normal(size=(5, 3)), rng.normal(size=(2, 3)))
  m0 = (rng.normal(size=(5, 3)), rng.normal(size=(2, 3)))
  # The identity B (notrans at equal widths): B(z_k) is z_k itself.
  family = transforms.get_transform("notrans")
  params = family.init(None, 3, 3)
  out = version_alignment(family, (params,), current, m0, m0)
  assert set(out) == {
    "alignment_mse_previous",
    "alignment_mse_v0",
    "distance_to_fix_m0",
  }
  diff = np.vstack(current) - np.vstack(m0)
  assert out["distance_to_fix_m0"] == pytest.approx(
    np.linalg.norm(diff, axis=1).mean(), rel=1e-6
  )
  want_mse = np.mean([np.mean((c - t) ** 2) for c, t in zip(current, m0)])
  assert out["alignment_mse_v0"] == pytest.approx(want_mse, rel=1e-6)
