"""Shared fixtures: small graphs built by hand or by the generator."""

import numpy as np
import pytest

from bcjax.data.graph import DynamicGraph, RaggedAttribute, from_raw_log
from bcjax.data.synthetic import SyntheticSpec, generate


def graph_from_rows(rows, name="hand-made"):
  """A DynamicGraph from ``(user, item, timestamp, rating)`` rows of raw keys.

  Every item gets one attribute value of a two-value kind ``"kind"``.
  """
  users, items, times, ratings = zip(*rows)
  user, item, timestamp, rating, _, item_order = from_raw_log(
    users, items, np.array(times), np.array(ratings), name=name
  )
  attr = RaggedAttribute.from_lists(
    [[i % 2] for i in range(len(item_order))], ["even", "odd"]
  )
  return DynamicGraph(user, item, timestamp, rating, {"kind": attr}, name=name)


@pytest.fixture(scope="session")
def small_graph():
  """A synthetic graph of a few thousand interactions."""
  return generate(
    SyntheticSpec(num_users=150, num_items=90, num_interactions=3000, seed=3)
  )
