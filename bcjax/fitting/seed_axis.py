"""The leading seed axis of the fit drivers: S seeds as one program.

The S embedding seeds of a strategy train the same model on the same graph
with different keys (and, past version 0, different starting variables and
alignment targets: each seed's own earlier versions). The fit drivers
(:func:`bcjax.fitting.version_fit.fit_version_seeds`,
:func:`bcjax.fitting.posthoc.fit_posthoc_seeds`) hold their seeds' states
stacked on a leading axis and run the one-seed epoch under ``jax.vmap``: one
compilation per version shape, one dispatch per epoch for every seed, the
graph shared.

S = 1 is a seed alone, and carries no axis: the driver runs the plain jitted
epoch on the plain state, so a one-seed fit is the very program (and the same
bits) as a fit before the seed axis existed. For S > 1, seed i of a batch is
seed i alone up to how XLA rounds the vmapped program's reductions (see
``tests/test_seed_batch.py`` for the measured gap). That gap is not bounded
over long fits: on ml-100k v0 (default config, lr 1e-2) embedding seed 1
matched alone to 1.4e-6 after 3 epochs but drifted to 0.089 (a ``conv_0``
kernel entry; Recall@50 0.2198 batched, 0.2128 alone) after 10: rounding
amplified by training, so "batched == alone" holds at rounding level early,
in distribution later.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bcjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class SeedAxis:
  """How a driver of ``size`` seeds holds them.

  Attributes:
    size: the number of seeds S (>= 1); 1 holds the seed's own trees, with no
      leading axis.
  """

  size: int

  @property
  def alone(self) -> bool:
    """Whether this is one seed, run as a plain (unvmapped) program."""
    return self.size == 1

  def stack(self, trees: Sequence[Any]) -> Any:
    """Per-seed pytrees of one structure as the driver holds them."""
    if self.alone:
      return trees[0]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)

  def take(self, tree: Any, i: int) -> Any:
    """Seed ``i``'s slice of a held tree, as new arrays (safe from donation)."""
    if self.alone:
      return jax.tree.map(jnp.copy, tree)
    return jax.tree.map(lambda a: a[i], tree)

  def vmap(self, fn: Callable, in_axes: tuple) -> Callable:
    """``fn`` over the seed axis (``fn`` itself for one seed)."""
    return fn if self.alone else jax.vmap(fn, in_axes=in_axes)

  def per_seed(self, value: Any) -> np.ndarray:
    """``(S,)`` host values of a fetched scalar (one seed) or ``(S,)`` array."""
    return np.asarray(value).reshape(self.size)


def check_per_seed(fn: str, n: int, **given: Sequence | None) -> None:
  """Raises unless every given per-seed sequence has one entry per seed key.

  Raises:
    InputError: naming the first sequence of another length, or ``n == 0``.
  """
  if n == 0:
    raise InputError(f"{fn}: expected at least one seed key")
  for name, value in given.items():
    if value is not None and len(value) != n:
      raise InputError(
        f"{fn}: {name} has {len(value)} entries; expected one per seed key ({n})"
      )
