"""``fit``: a bridge from matched rows, of one family or chosen by validation.

``fit(old=..., new=..., family=...)`` fits one family on every row it is given.
``family="auto"`` validates by k-fold cross-validation over the rows it is
given: it splits them (seeded) into ``folds`` disjoint validation parts
(default 5, each 20% of the rows, so every row is a validation query once),
fits every candidate on the rows outside each part, scores it on the part's
queries, pools every fold's queries, chooses by the one-standard-error rule
(:func:`bcjax.align.selection.choose`), and refits the choice on all given
rows. Parts stop at ``max_validation`` queries in all, so a large input is
validated on one split, as with ``folds=1``. A candidate is a family, its
hyper-parameters and a preprocessing: with ``center`` or ``normalize`` left
at None, auto tries both values of each (so four preprocessings), and
records the one it chose. It only ever reads the rows it is given: a caller
keeps its test rows out of ``fit`` and measures on them afterwards.

Why folds: one split of a thousand rows leaves about 200 validation queries,
and which candidate wins on them changes from split to split; the rule's
standard error then ties smaller bridges that test worse. Pooling five
folds gives every given row a say and narrows that standard error by about
the square root of five. ``bridge.selection.fold_chosen`` records what each
fold alone would have chosen, so a caller sees how stable the choice is.

The score of one validation query is the mean of its self-retrieval hit@K
(its own old vector among the K nearest of its bridged vector) and its
neighbour overlap@K (the share of its old vector's K nearest neighbours the
bridged vector also finds), searched among old vectors: the fold's
validation rows' own and, up to ``AUTO_INDEX`` in all, distractors from the
fold's fit rows. Both halves matter: self-retrieval saturates on easy pairs
(every candidate finds most rows) and is one bit per query, while the
overlap grades how well the old neighbourhood survives, which is what
serving an old index needs (:mod:`bcjax.align.measures`;
``benchmarks/align_peers.py``).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Imported for its registration of the mlp family.
from bcjax.align import mlp  # noqa: F401
from bcjax.align.bridge import Bridge, check_rows
from bcjax.align.families import FAMILIES, get_family
from bcjax.align.measures import query_scores, query_truth
from bcjax.align.moments import Preprocessing, moments, prepare, row_means
from bcjax.align.selection import Candidate, Selection, choose, validation_folds
from bcjax.errors import InputError

__all__ = ["AUTO", "AUTO_INDEX", "Candidate", "FitRows", "Selection", "choose", "fit"]

AUTO = "auto"
# Old vectors searched by auto's validation queries at most (theirs first).
AUTO_INDEX = 20_000


class FitRows:
  """The rows one fit reads, preprocessed on demand and cached.

  Attributes:
    new: ``(N, d_new)`` all given new rows (raw).
    old: ``(N, d_old)`` all given old rows (raw).
    prep: the preprocessing of this fit.
    rows: the rows it uses (None: all).
  """

  def __init__(self, new, old, prep: Preprocessing, rows=None):
    self.new, self.old, self.prep, self.rows = new, old, prep, rows
    self._moments = self._arrays = None

  def moments(self):
    """The :class:`bcjax.align.moments.Moments` of the rows (one pass)."""
    if self._moments is None:
      self._moments = moments(self.new, self.old, self.prep, self.rows)
    return self._moments

  def arrays(self) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``, the preprocessed rows as float32 arrays."""
    if self._arrays is None:
      rows = slice(None) if self.rows is None else self.rows
      self._arrays = (
        prepare(self.new[rows], self.prep, "new"),
        prepare(self.old[rows], self.prep, "old"),
      )
    return self._arrays


def resolve_hparams(family: str, hparams) -> Any:
  """``hparams`` as ``family``'s dataclass (None: its defaults; a dict: fields)."""
  cls = get_family(family).hparams
  if hparams is None:
    return cls()
  if isinstance(hparams, cls):
    return hparams
  if isinstance(hparams, Mapping):
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(hparams) - set(names))
    if unknown:
      raise InputError(
        f"{cls.__name__} has no field {unknown[0]!r}; its fields: "
        f"{', '.join(names) or 'none'}"
      )
    return cls(**hparams)
  raise InputError(
    f"hparams of family {family!r} must be a {cls.__name__} or a dict of its "
    f"fields, got {type(hparams).__name__}"
  )


def fit(
  *,
  old,
  new,
  family: str = AUTO,
  hparams=None,
  center: bool | None = None,
  normalize: bool | None = None,
  seed: int = 0,
  grid: Mapping[str, Sequence] | None = None,
  validation_fraction: float = 0.2,
  max_validation: int = 5000,
  k: int = 10,
  folds: int = 5,
) -> Bridge:
  """Fits a bridge from ``new`` rows to the matching ``old`` rows.

  ``old`` and ``new`` are keywords: a bridge maps new to old, and two
  positional arrays swapped would fit the other direction without a word.

  Args:
    old: ``(n, d_old)`` old-version embeddings (the target space).
    new: ``(n, d_new)`` new-version embeddings of the same items, row by row.
    family: a registered family (``linear``, ``orthogonal``, ``reducedrank``,
      ``softorthogonal``, ``mlp``) or ``"auto"``.
    hparams: the family's hyper-parameter dataclass or a dict of its fields
      (None: its defaults); not for ``auto``.
    center: subtract each side's mean row (of the fitted rows) first, which
      makes the bridge affine: ``old ~= (new - mu_new) W + mu_old``. None:
      ``auto`` tries both and keeps what validates best (one family: False).
    normalize: L2-normalise both sides' rows before fitting and the input
      rows when applying. None: as ``center``.
    seed: seeds ``auto``'s folds and the SGD of ``mlp``.
    grid: for ``auto``, family -> hyper-parameter values to try (None: every
      family's own grid).
    validation_fraction: for ``auto``, the share of rows in one fold's
      validation part ...
    max_validation: ... but at most this many rows, in one part and in all
      parts together.
    k: for ``auto``, the K of the validation measures.
    folds: for ``auto``, the most validation parts (1: one split, the
      behaviour before folds).

  Returns:
    The :class:`Bridge`; after ``auto``, ``bridge.selection`` says what was
    tried and why this was chosen (``bridge.center`` and ``bridge.normalize``
    what it chose).

  Raises:
    InputError: for arrays of the wrong shape, empty, with NaN or infinite
      rows, row counts that differ, an unknown family or bad hparams.
  """
  old, new = check_rows("old", old), check_rows("new", new)
  if len(old) != len(new):
    raise InputError(
      f"old has {len(old)} rows but new has {len(new)}; rows must match one to one"
    )
  for name, value in (("center", center), ("normalize", normalize)):
    if value is not None and not isinstance(value, (bool, np.bool_)):
      raise InputError(f"{name} must be True, False or None, got {value!r}")
  if family != AUTO:
    get_family(family)
    if grid is not None:
      raise InputError("grid is for family='auto' only; pass hparams instead")
    hp = resolve_hparams(family, hparams)
    return _fit_one(old, new, family, hp, bool(center), bool(normalize), seed, None)
  if hparams is not None:
    raise InputError("hparams is for one family; family='auto' takes grid instead")
  return _auto(
    old,
    new,
    center,
    normalize,
    seed,
    grid,
    validation_fraction,
    max_validation,
    k,
    folds,
  )


def _preprocessing(old, new, center, normalize, rows) -> Preprocessing:
  if center:
    mean_new = row_means(new, rows, normalize=normalize)
    mean_old = row_means(old, rows, normalize=normalize)
  else:
    mean_new = np.zeros(new.shape[1], np.float32)
    mean_old = np.zeros(old.shape[1], np.float32)
  return Preprocessing(bool(normalize), mean_new, mean_old)


def _fit_one(old, new, family, hp, center, normalize, seed, rows) -> Bridge:
  prep = _preprocessing(old, new, center, normalize, rows)
  return _fit_rows(FitRows(new, old, prep, rows), family, hp, seed)


def _fit_rows(data: FitRows, family, hp, seed) -> Bridge:
  spec = get_family(family)
  d_new, d_old = data.new.shape[1], data.old.shape[1]
  spec.check(hp, d_new, d_old)
  return Bridge(family, hp, spec.fn(data, hp, seed), d_new, d_old, data.prep)


def _auto(old, new, center, normalize, seed, grid, fraction, max_validation, k, folds):
  n, d_new, d_old = len(new), new.shape[1], old.shape[1]
  if not isinstance(k, int) or k < 1:
    raise InputError(f"k must be a positive integer, got {k!r}")
  order, parts = validation_folds(n, seed, fraction, max_validation, folds)
  if grid is None:
    grid = {name: f.grid(d_new, d_old) for name, f in FAMILIES.items()}
  centers = (False, True) if center is None else (bool(center),)
  normalizes = (False, True) if normalize is None else (bool(normalize),)
  # Per fold, per candidate: (hit, overlap) of each of the fold's queries.
  scored, firsts = [], []
  for start, part in zip(itertools.accumulate(map(len, [[]] + parts)), parts):
    rest = np.concatenate([order[:start], order[start + len(part) :]])
    fold = _score_fold(
      old, new, np.sort(part), rest, centers, normalizes, grid, seed, k
    )
    scored.append(fold[0])
    firsts.append(fold[1:])
  # Every fold tries the same candidates in the same order; the first
  # fold's rows are the ones recorded (the one split of folds=1).
  tried, skipped, (fit_rows, val_rows, index_rows) = firsts[0]
  if not tried:
    raise InputError(
      f"no bridge family can map {d_new} -> {d_old} dims with the grid given"
    )
  params = [c.num_params for c in tried]
  pooled = [
    np.concatenate([fold[i] for fold in scored], axis=1) for i in range(len(tried))
  ]
  per_query = [(hit + overlap) / 2.0 for hit, overlap in pooled]
  chosen, se = choose(per_query, params)
  fold_chosen = tuple(
    choose([(fold[i][0] + fold[i][1]) / 2.0 for i in range(len(tried))], params)[0]
    for fold in scored
  )
  tried = [
    dataclasses.replace(
      c,
      score=float(q.mean()),
      self_recall=float(hit.mean()),
      overlap=float(overlap.mean()),
      standard_error=float(e),
    )
    for c, q, (hit, overlap), e in zip(tried, per_query, pooled, se, strict=True)
  ]
  choice = tried[chosen]
  final = _fit_one(
    old, new, choice.family, choice.hparams, choice.center, choice.normalize, seed, None
  )
  best = int(np.argmax(np.stack(per_query).mean(axis=1)))  # as choose's
  selection = Selection(
    tuple(tried),
    chosen,
    best,
    k,
    fit_rows,
    val_rows,
    index_rows,
    tuple(skipped),
    tuple(np.sort(p) for p in parts),
    fold_chosen,
  )
  return dataclasses.replace(final, selection=selection)


def _score_fold(old, new, val_rows, rest, centers, normalizes, grid, seed, k):
  """Every candidate fitted on ``rest`` and scored on ``val_rows``' queries.

  Returns:
    ``(scores, candidates, skipped, (fit_rows, val_rows, index_rows))``:
    ``scores[i]`` is candidate ``i``'s ``(hit, overlap)`` per query; the
    candidates' scores are filled in by the caller, from all folds.
  """
  d_new, d_old = new.shape[1], old.shape[1]
  held = len(val_rows)
  fit_rows = np.sort(rest)
  # Distractors: a validation index of its own rows alone is easy enough for
  # every candidate to score 1, and then scores cannot separate them.
  distractors = np.sort(rest[: max(0, AUTO_INDEX - held)])
  index_rows = np.concatenate([val_rows, distractors])
  index, queries_of = old[index_rows], np.arange(held)
  truth = query_truth(index, queries_of, k)
  tried, scores, skipped = [], [], []
  for c, z in itertools.product(centers, normalizes):
    # One FitRows per preprocessing: its moment families share one pass.
    data = FitRows(new, old, _preprocessing(old, new, c, z, fit_rows), fit_rows)
    for name, values in grid.items():
      spec = get_family(name)
      for value in values:
        hp = resolve_hparams(name, value)
        try:
          spec.check(hp, d_new, d_old)
        except InputError as e:
          if (c, z) == (centers[0], normalizes[0]):  # once, not per preprocessing
            skipped.append((name, hp, str(e)))
          continue
        bridge = _fit_rows(data, name, hp, seed)
        hit, overlap = query_scores(
          index, bridge.apply(new[val_rows]), queries_of, k, truth=truth
        )
        scores.append(np.stack([hit, overlap]).astype(np.float64))
        tried.append(
          Candidate(
            family=name,
            hparams=hp,
            score=float("nan"),
            num_params=bridge.num_params,
            center=c,
            normalize=z,
          )
        )
  return scores, tried, skipped, (fit_rows, val_rows, index_rows)
