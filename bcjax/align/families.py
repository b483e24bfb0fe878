"""Bridge families fitted from the rows' moments, and the family registry.

A family is one :class:`Family` record: its hyper-parameters as a frozen
dataclass (defaults and validation live there, nowhere else), a fit, an
``apply``, the matrix of a linear family, a parameter count and the values
``fit(family="auto")`` tries. The four families here are linear in their
parameters' output and are fitted from two moments of the preprocessed rows
``X`` (new, ``(n, d_new)``) and ``Y`` (old, ``(n, d_old)``):
``A = X^T X / n`` and ``C = X^T Y / n`` (:mod:`bcjax.align.moments`), so a
fit costs one pass over the rows and then ``O(d^3)`` whatever ``n`` is. The
``mlp`` family (:mod:`bcjax.align.mlp`) fits rows by SGD instead.

Every fit minimises the mean squared error ``mean_rows ||x W - y||^2`` under
its family's constraint:

* ``linear``: unconstrained, with a relative ridge ``rho ||W||^2``;
* ``orthogonal``: ``W`` semi-orthogonal (orthonormal columns when
  ``d_new >= d_old``, rows otherwise): the polar factor of ``C``;
* ``reducedrank``: ``rank(W) <= r`` (named so that a user's transform
  ``lowrank`` keeps its name);
* ``softorthogonal``: the least squares plus a penalty on the Gram matrix of
  the smaller side (lambda-orthogonality, Ricci et al., NeurIPS 2025).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bcjax.components import solvers
from bcjax.components.registries import Entry, Registry
from bcjax.components.softorthogonal import gram_penalty
from bcjax.errors import InputError


def check_field(hp, name: str, *, minimum: float, integer: bool = False, below=None):
  """Refuses a hyper-parameter field of the wrong type or range, in one line."""
  value = getattr(hp, name)
  kind = int if integer else (int, float)
  ok = isinstance(value, kind) and not isinstance(value, bool)
  ok = ok and math.isfinite(value) and value >= minimum
  ok = ok and (below is None or value < below)
  if not ok:
    what = "an integer" if integer else "a finite number"
    bound = f" and < {below}" if below is not None else ""
    raise InputError(
      f"{type(hp).__name__}.{name} must be {what} >= {minimum}{bound}, got {value!r}"
    )


def _fits_any(hp, d_new: int, d_old: int) -> None:
  del hp, d_new, d_old


@dataclasses.dataclass(frozen=True, kw_only=True)
class Family(Entry):
  """A bridge family (:class:`~bcjax.components.registries.Entry`).

  Attributes:
    fn: the fit, ``(data, hp, seed) -> params``; ``data`` is a
      :class:`bcjax.align.fitting.FitRows` (``data.moments()``,
      ``data.arrays()``). Its hyperparameters' fields are
      ``experiments.align``'s ``--hparams.<name>.<field>``.
    apply: ``(params, x) -> y`` on preprocessed rows, traceable.
    num_params: ``(hp, d_new, d_old) -> int``, the free parameters (a
      semi-orthogonal matrix has fewer than its entries).
    grid: ``(d_new, d_old) -> tuple of hp``, the values ``auto`` tries.
    check: ``(hp, d_new, d_old) -> None``, raising :class:`InputError` when the
      family cannot map these widths with ``hp``.
    as_matrix: ``params -> (d_new, d_old)`` for a linear family, else None.
    source: as every entry's; a saved bridge records it, so that loading the
      bridge in a fresh process loads the family's extension.
  """

  apply: Callable[[Any, jax.Array], jax.Array]
  num_params: Callable[[Any, int, int], int]
  grid: Callable[[int, int], tuple]
  check: Callable[[Any, int, int], None] = _fits_any
  as_matrix: Callable[[Any], np.ndarray] | None = None


# ``auto`` is no family, but every lookup of a family name accepts it.
FAMILIES: Registry[Family] = Registry("bridge family", also_valid=("auto",))


def register_family(family: Family) -> Family:
  """Adds a family to the registry; ``fit`` and ``auto`` pick it up.

  A name registered by another family's fit is refused, naming both; the
  same fit again (its module imported anew) replaces the entry.
  """
  return FAMILIES.add(family)


def get_family(name: str) -> Family:
  return FAMILIES[name]


def _kernel_apply(params, x):
  return x @ params["kernel"]


# -- linear ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LinearHP:
  """Hyper-parameters of ``linear``: least squares ``W = (A + rho I)^-1 C``.

  Attributes:
    ridge: relative ridge; ``rho = ridge * mean(diag(A))``, so it means the
      same at any embedding scale (as :func:`bcjax.components.solvers.least_squares`).
  """

  ridge: float = 0.0

  def __post_init__(self):
    check_field(self, "ridge", minimum=0.0)


def _fit_linear(data, hp: LinearHP, seed: int):
  del seed
  m = data.moments()
  return {"kernel": solvers.ridge_solve(m.gram, m.cross, hp.ridge).astype(np.float32)}


register_family(
  Family(
    name="linear",
    hparams=LinearHP,
    fn=_fit_linear,
    apply=_kernel_apply,
    num_params=lambda hp, d_new, d_old: d_new * d_old,
    grid=lambda d_new, d_old: (LinearHP(0.0), LinearHP(1e-3), LinearHP(1e-1)),
    as_matrix=lambda params: params["kernel"],
  )
)


# -- orthogonal ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OrthogonalHP:
  """``orthogonal`` has no hyper-parameter: ``W = U V^T`` for ``C = U S V^T``."""


def _fit_orthogonal(data, hp: OrthogonalHP, seed: int):
  del hp, seed
  return {"kernel": solvers.polar(data.moments().cross).astype(np.float32)}


def _stiefel_params(hp, d_new, d_old):
  small = min(d_new, d_old)
  return d_new * d_old - small * (small + 1) // 2


register_family(
  Family(
    name="orthogonal",
    hparams=OrthogonalHP,
    fn=_fit_orthogonal,
    apply=_kernel_apply,
    num_params=_stiefel_params,
    grid=lambda d_new, d_old: (OrthogonalHP(),),
    as_matrix=lambda params: params["kernel"],
  )
)


# -- reducedrank -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReducedRankHP:
  """Hyper-parameters of ``reducedrank``: ``W = W_ridge V_r V_r^T``.

  ``V_r`` spans the top ``r`` principal directions of the fitted values
  (reduced-rank ridge regression, Mukherjee and Zhu 2011); served as two
  factors ``(d_new, r)`` and ``(r, d_old)``.

  Attributes:
    rank: ``r``, at most ``min(d_new, d_old)``.
    ridge: relative ridge of the full-rank fit, as :class:`LinearHP`'s.
  """

  rank: int = 32
  ridge: float = 0.0

  def __post_init__(self):
    check_field(self, "rank", minimum=1, integer=True)
    check_field(self, "ridge", minimum=0.0)


def _check_rank(hp: ReducedRankHP, d_new: int, d_old: int):
  if hp.rank > min(d_new, d_old):
    raise InputError(
      f"reducedrank rank {hp.rank} must be <= min(d_new, d_old) = "
      f"{min(d_new, d_old)} for widths {d_new} -> {d_old}"
    )


def _fit_reducedrank(data, hp: ReducedRankHP, seed: int):
  del seed
  m = data.moments()
  full = solvers.ridge_solve(m.gram, m.cross, hp.ridge)
  rho = hp.ridge * float(np.mean(np.diag(m.gram)))
  # Covariance of the fitted values of the ridge-augmented problem.
  fitted = full.T @ (m.gram + rho * np.eye(len(m.gram))) @ full
  _, vectors = np.linalg.eigh(fitted)
  top = vectors[:, ::-1][:, : hp.rank]
  return {
    "left": (full @ top).astype(np.float32),
    "right": top.T.astype(np.float32),
  }


def _rank_grid(d_new, d_old):
  small = min(d_new, d_old)
  ranks = sorted({max(1, small // 8), max(1, small // 4), max(1, small // 2)})
  return tuple(ReducedRankHP(rank=r) for r in ranks if r < small)


register_family(
  Family(
    name="reducedrank",
    hparams=ReducedRankHP,
    fn=_fit_reducedrank,
    apply=lambda params, x: (x @ params["left"]) @ params["right"],
    num_params=lambda hp, d_new, d_old: hp.rank * (d_new + d_old - hp.rank),
    grid=_rank_grid,
    check=_check_rank,
    as_matrix=lambda params: params["left"] @ params["right"],
  )
)


# -- softorthogonal --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SoftOrthogonalHP:
  """Hyper-parameters of ``softorthogonal`` (lambda-orthogonality).

  Minimises ``mse(W) / mean||y||^2 + strength * gate(||G - I||_F)^2 / m``
  with ``G`` the Gram matrix of the smaller side (``W^T W`` when
  ``d_new >= d_old``, ``W W^T`` otherwise, ``m`` its width), so the penalty
  can reach 0 whatever the widths, and ``gate(v) = max(0, v - tolerance)``:
  a map within ``tolerance`` of semi-orthogonal is not penalised. Both terms
  are scale-free (the error relative to the zero map's, the penalty per
  dimension), so a strength means the same for any embeddings. ``strength=0``
  is the least-squares fit (solved in closed form); a large strength tends to
  ``orthogonal``.

  Attributes:
    strength: weight of the penalty.
    tolerance: the gate's ``lambda``: deviation ``||G - I||_F`` left free.
    steps: at most this many L-BFGS iterations (optax).
  """

  strength: float = 1.0
  tolerance: float = 0.0
  steps: int = 500

  def __post_init__(self):
    check_field(self, "strength", minimum=0.0)
    check_field(self, "tolerance", minimum=0.0)
    check_field(self, "steps", minimum=1, integer=True)


def soft_objective(w, gram, cross, strength, tolerance):
  """The scale-free objective of :class:`SoftOrthogonalHP`, less its constant 1.

  ``gram`` and ``cross`` are ``A`` and ``C`` over ``mean ||y||^2``; the
  penalty is the trained transform family's
  (:func:`bcjax.components.softorthogonal.gram_penalty`).
  """
  error = jnp.sum(w * (gram @ w)) - 2.0 * jnp.sum(w * cross)
  return error + strength * gram_penalty(w, tolerance)


def _fit_softorthogonal(data, hp: SoftOrthogonalHP, seed: int):
  del seed
  m = data.moments()
  linear = solvers.ridge_solve(m.gram, m.cross, 0.0)
  if hp.strength == 0.0:
    return {"kernel": linear.astype(np.float32)}
  scale = max(m.target, 1e-30)
  gram = jnp.asarray(m.gram / scale, jnp.float32)
  cross = jnp.asarray(m.cross / scale, jnp.float32)
  strength = jnp.float32(hp.strength)
  tolerance = jnp.float32(hp.tolerance)
  starts = [jnp.asarray(w, jnp.float32) for w in (linear, solvers.polar(m.cross))]
  # Start from whichever end is better: the optimum moves from the linear
  # fit to the polar factor as the strength grows, and L-BFGS converges in a
  # few steps from the near end but slowly across the quartic penalty.
  values = [float(soft_objective(w, gram, cross, strength, tolerance)) for w in starts]
  start = starts[int(np.argmin(values))]
  kernel = _lbfgs(start, gram, cross, strength, tolerance, hp.steps)
  return {"kernel": np.asarray(kernel, np.float32)}


@jax.jit
def _lbfgs(start, gram, cross, strength, tolerance, steps):
  """L-BFGS (optax, zoom line search) until the gradient norm is < 1e-6.

  Module-level and jitted with every hyper-parameter traced, so all
  strengths of one width share one compilation.
  """

  def objective(w):
    return soft_objective(w, gram, cross, strength, tolerance)

  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(objective)

  def step(carry):
    w, state, _ = carry
    value, grad = value_and_grad(w, state=state)
    updates, state = solver.update(
      grad, state, w, value=value, grad=grad, value_fn=objective
    )
    return optax.apply_updates(w, updates), state, optax.tree.norm(grad)

  def going(carry):
    _, state, grad_norm = carry
    count = optax.tree.get(state, "count")
    return (count == 0) | ((count < steps) & (grad_norm >= 1e-6))

  init = (start, solver.init(start), jnp.asarray(jnp.inf, start.dtype))
  return jax.lax.while_loop(going, step, init)[0]


register_family(
  Family(
    name="softorthogonal",
    hparams=SoftOrthogonalHP,
    fn=_fit_softorthogonal,
    apply=_kernel_apply,
    num_params=lambda hp, d_new, d_old: d_new * d_old,
    grid=lambda d_new, d_old: tuple(
      SoftOrthogonalHP(strength=s) for s in (0.1, 1.0, 10.0)
    ),
    as_matrix=lambda params: params["kernel"],
  )
)
