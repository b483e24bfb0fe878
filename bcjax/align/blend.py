"""Blending (SLERP BC): a stored old vector moved toward its bridged new one.

A row that has a stored version-``j`` vector ``z_j`` and a newer vector
``z_k`` can be served ``slerp(z_j, B(z_k), alpha)``: the point a share
``alpha`` of the way along the great circle from ``z_j``'s direction to
``B(z_k)``'s (Ricci, Biondi, Pernici, "Spherical Interpolation for
Backward-Compatible Multimodal Representations"). ``alpha = 0`` is the stored
vector, ``alpha = 1`` the bridge alone; in between, the bridge's residual
error is traded against the stored vector's staleness.

Norms, as the paper's code treats them: both sides are L2-normalised first
and the result is a unit vector, so blended rows serve cosine retrieval (the
only similarity :mod:`bcjax.align.measures` uses); their lengths carry
nothing.

``alpha`` is chosen on validation rows by class retrieval
(:func:`choose_alpha`, labels required), never by self-retrieval: the stored
vector finds its own row in the old index by construction, so self-retrieval
would always choose ``alpha = 0``. Without labels there is nothing to choose
``alpha`` by and no blending is measured (:data:`NO_LABELS` says so).
:func:`select_alpha` is what :mod:`experiments.align` runs: a bridge of the
served family refitted on a fit part of the training rows, and ``alpha``
chosen on the held-out rest, so the bridged validation vectors are as far
from the fit as test vectors are.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bcjax.align.bridge import Bridge, check_rows
from bcjax.align.fitting import fit
from bcjax.align.measures import MAX_QUERIES, class_retrieval, retention
from bcjax.errors import InputError

# The grid the paper searches: 0, 0.1, ..., 1.
ALPHAS = tuple(i / 10 for i in range(11))
NO_LABELS = (
  "no blending row without labels: alpha is chosen by class retrieval on "
  "validation rows (self-retrieval would choose alpha = 0, the stored vector)"
)
# Below this sine of the angle between the two directions, the great circle
# through them is numerically undefined.
_EPS = 1e-7


def slerp(a, b, alpha: float) -> np.ndarray:
  """Row-wise spherical interpolation from ``a``'s directions to ``b``'s.

  Args:
    a: ``(n, d)`` the stored (``alpha = 0``) side.
    b: ``(n, d)`` the bridged (``alpha = 1``) side.
    alpha: in ``[0, 1]``.

  Returns:
    ``(n, d)`` float32 unit rows ``(sin((1-alpha) t) u + sin(alpha t) v) /
    sin t`` with ``u, v`` the unit rows of ``a, b`` and ``t`` their angle.
    Where ``u`` and ``v`` (nearly) coincide this is the normalised linear
    interpolation (its limit); where they are (nearly) opposite, every great
    circle joins them, and the one through ``u`` and the coordinate axis
    least aligned with ``u`` is taken, so ``alpha = 1/2`` is perpendicular
    to both. A zero row has no direction: the other side's is served (a zero
    row when both are zero).
  """
  alpha = check_alpha(alpha)
  a = check_rows("a", a)
  b = check_rows("b", b, a.shape[1])
  if len(a) != len(b):
    raise InputError(f"a has {len(a)} rows but b has {len(b)}; slerp pairs rows")
  a, b = a.astype(np.float64), b.astype(np.float64)
  norm_a = np.linalg.norm(a, axis=1, keepdims=True)
  norm_b = np.linalg.norm(b, axis=1, keepdims=True)
  u = a / np.where(norm_a > 0, norm_a, 1.0)
  v = b / np.where(norm_b > 0, norm_b, 1.0)
  cos = np.clip(np.sum(u * v, axis=1, keepdims=True), -1.0, 1.0)
  theta = np.arccos(cos)
  sin = np.sin(theta)
  safe = np.where(sin > _EPS, sin, 1.0)
  out = (np.sin((1 - alpha) * theta) * u + np.sin(alpha * theta) * v) / safe
  near = (sin <= _EPS)[:, 0]
  same, opposite = near & (cos[:, 0] > 0), near & (cos[:, 0] < 0)
  out[same] = (1 - alpha) * u[same] + alpha * v[same]
  if opposite.any():
    out[opposite] = _half_turn(u[opposite], alpha)
  zero_a, zero_b = (norm_a == 0)[:, 0], (norm_b == 0)[:, 0]
  out[zero_a] = v[zero_a]
  out[zero_b & ~zero_a] = u[zero_b & ~zero_a]
  norm = np.linalg.norm(out, axis=1, keepdims=True)
  return (out / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def _half_turn(u: np.ndarray, alpha: float) -> np.ndarray:
  """``alpha`` of the way from ``u`` to ``-u`` through a fixed perpendicular."""
  if u.shape[1] == 1:
    # One dimension has no perpendicular: the nearer endpoint.
    return u if alpha < 0.5 else -u
  axis = np.argmin(np.abs(u), axis=1)
  w = np.zeros_like(u)
  w[np.arange(len(u)), axis] = 1.0
  w -= np.sum(w * u, axis=1, keepdims=True) * u
  w /= np.linalg.norm(w, axis=1, keepdims=True)
  return np.cos(alpha * np.pi) * u + np.sin(alpha * np.pi) * w


def check_alpha(alpha) -> float:
  try:
    value = float(alpha)
  except (TypeError, ValueError):
    raise InputError(f"alpha must be a number in [0, 1], got {alpha!r}") from None
  if isinstance(alpha, bool) or not 0.0 <= value <= 1.0:
    raise InputError(f"alpha must be a number in [0, 1], got {alpha!r}")
  return value


@dataclasses.dataclass(frozen=True)
class AlphaChoice:
  """``alpha`` chosen by validation class retrieval.

  Attributes:
    alpha: the chosen value: the best score, ties to the smaller alpha (the
      stored vector's side: moving off it needs evidence).
    scores: ``((alpha, class retrieval@k), ...)`` over the grid, in order.
    k: the K of class retrieval.
    validation_rows: validation queries.
    fit_rows: rows the validation bridge was fitted on (0 when it was given).
  """

  alpha: float
  scores: tuple[tuple[float, float], ...]
  k: int
  validation_rows: int
  fit_rows: int = 0

  def summary(self) -> dict:
    """JSON-ready: the choice, the grid's scores, the rows."""
    return {
      "alpha": self.alpha,
      "measure": "class_retrieval",
      "k": self.k,
      "fit_rows": self.fit_rows,
      "validation_rows": self.validation_rows,
      "scores": {f"{a:g}": s for a, s in self.scores},
    }


def choose_alpha(
  index,
  stored,
  bridged,
  rows,
  labels,
  *,
  alphas=ALPHAS,
  k: int = 10,
  max_queries: int = MAX_QUERIES,
  seed: int = 0,
) -> AlphaChoice:
  """The ``alpha`` whose blended validation queries retrieve their class best.

  Args:
    index: ``(N, d)`` old vectors searched (the validation rows' among them).
    stored: ``(n, d)`` the validation rows' stored old vectors.
    bridged: ``(n, d)`` their bridged new vectors.
    rows: ``(n,)`` each validation row's row of ``index`` (left out of its
      own neighbours).
    labels: ``(N,)`` a label per index row; None is refused (:data:`NO_LABELS`).
    alphas: the grid searched.
    k, max_queries, seed: as :func:`bcjax.align.measures.class_retrieval`.
  """
  if labels is None:
    raise InputError(NO_LABELS)
  labels, rows = np.asarray(labels), np.asarray(rows)
  if not len(alphas):
    raise InputError("alphas must hold at least one value in [0, 1]")
  scores = []
  for alpha in alphas:
    queries = slerp(stored, bridged, alpha)
    score = class_retrieval(
      index,
      queries,
      labels,
      labels[rows],
      k,
      rows=rows,
      max_queries=max_queries,
      seed=seed,
    )
    scores.append((check_alpha(alpha), score))
  return AlphaChoice(best_alpha(scores), tuple(scores), k, len(rows))


def best_alpha(scores) -> float:
  """The ``alpha`` of the best validation score, ties to the smaller ``alpha``.

  Ties go to the stored vector's side: moving off it needs evidence.

  Args:
    scores: ``((alpha, score), ...)``, at least one pair; scores higher-better.
  """
  scores = [(check_alpha(a), float(s)) for a, s in scores]
  if not scores:
    raise InputError("choosing alpha needs at least one (alpha, score) pair")
  best = max(s for _, s in scores)
  return min(a for a, s in scores if s == best)


def select_alpha(
  old,
  new,
  train,
  labels,
  bridge: Bridge,
  *,
  validation_fraction: float = 0.2,
  seed: int = 0,
  **choose,
) -> AlphaChoice:
  """:func:`choose_alpha` on held-out training rows, for ``bridge``'s family.

  The training rows are split (seeded) into a fit part and a validation part;
  a bridge of ``bridge``'s family, hyper-parameters and preprocessing is
  fitted on the fit part, and the validation rows, blended, search the old
  vectors of all training rows. Test rows are never read.

  Args:
    old: ``(N, d_old)`` every row's old vector.
    new: ``(N, d_new)`` every row's new vector.
    train: ``(n,)`` the training rows.
    labels: ``(N,)`` a label per row; None is refused.
    bridge: the served bridge (its family is refitted, it is not applied).
    validation_fraction: the share of training rows held out.
    seed: the split's seed (and the refit's, and the query sample's).
    **choose: ``alphas``, ``k``, ``max_queries`` for :func:`choose_alpha`.
  """
  if labels is None:
    raise InputError(NO_LABELS)
  train = np.asarray(train)
  held = min(max(1, round(validation_fraction * len(train))), len(train) - 2)
  if held < 1:
    raise InputError(f"choosing alpha needs 3 or more training rows, got {len(train)}")
  order = np.random.default_rng([seed, 4]).permutation(len(train))
  fit_part, val_part = np.sort(order[held:]), np.sort(order[:held])
  refit = fit(
    old=old[train[fit_part]],
    new=new[train[fit_part]],
    family=bridge.family,
    hparams=bridge.hparams,
    center=bridge.center,
    normalize=bridge.normalize,
    seed=seed,
  )
  val = train[val_part]
  choice = choose_alpha(
    old[train],
    old[val],
    refit.apply(new[val]),
    val_part,
    np.asarray(labels)[train],
    seed=seed,
    **choose,
  )
  return dataclasses.replace(choice, fit_rows=len(fit_part))


def blend_results(
  old,
  new,
  train,
  test,
  labels,
  bridge: Bridge,
  reindexed: float,
  *,
  k: int = 10,
  max_queries: int = MAX_QUERIES,
  seed: int = 0,
) -> dict:
  """``alpha`` chosen on training rows, then blended test queries measured.

  Args:
    old: ``(N, d_old)`` every row's old vector: the index.
    new: ``(N, d_new)`` every row's new vector.
    train: ``(n_train,)`` rows ``alpha`` may be chosen on
      (:func:`select_alpha`).
    test: ``(n_test,)`` the query rows (each left out of its own neighbours).
    labels: ``(N,)`` a label per row, or None.
    bridge: the served bridge, applied to the test rows.
    reindexed: class retrieval re-indexed (new vs new), for retention.
    k, max_queries, seed: as :func:`bcjax.align.measures.class_retrieval`.

  Returns:
    ``{"skipped": NO_LABELS}`` without labels; else ``alpha``,
    ``validation`` (:meth:`AlphaChoice.summary`) and ``test``: class
    retrieval of ``slerp(old[test], bridge(new[test]), alpha)`` against the
    old index and its retention (over re-indexed).
  """
  if labels is None:
    return {"skipped": NO_LABELS}
  sample = {"k": k, "max_queries": max_queries}
  choice = select_alpha(old, new, train, labels, bridge, seed=seed, **sample)
  old, test, labels = np.asarray(old), np.asarray(test), np.asarray(labels)
  score = class_retrieval(
    old,
    slerp(old[test], bridge.apply(new[test]), choice.alpha),
    labels,
    labels[test],
    rows=test,
    seed=seed,
    **sample,
  )
  return {
    "alpha": choice.alpha,
    "validation": choice.summary(),
    "test": {
      "class_retrieval": score,
      "retention": retention(score, reindexed),
    },
  }
