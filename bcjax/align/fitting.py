"""``fit``: a bridge from matched rows, of one family or chosen by validation.

``fit(old=..., new=..., family=...)`` fits one family on every row it is given.
``family="auto"`` splits the given rows itself (seeded) into a fit part and
a validation part, fits every candidate on the fit part, scores each on the
validation part, chooses by the one-standard-error rule (below), and refits
the choice on all given rows. A candidate is a family, its hyper-parameters
and a preprocessing: with ``center`` or ``normalize`` left at None, auto
tries both values of each (so four preprocessings), and records the one it
chose. It only ever reads the rows it is given: a caller keeps its test rows
out of ``fit`` and measures on them afterwards.

The score of one validation query is the mean of its self-retrieval hit@K
(its own old vector among the K nearest of its bridged vector) and its
neighbour overlap@K (the share of its old vector's K nearest neighbours the
bridged vector also finds), searched among old vectors: the validation
rows' own and, up to ``AUTO_INDEX`` in all, distractors from the fit rows.
Both halves matter: self-retrieval saturates on easy pairs (every candidate
finds most rows) and is one bit per query, while the overlap grades how
well the old neighbourhood survives, which is what serving an old index
needs (:mod:`bcjax.align.measures`; ``benchmarks/align_peers.py``).

The rule: every candidate is scored on the same queries, so candidate ``c``
is compared with the best ``b`` by the per-query differences
``d = s_b - s_c``; ``c`` is tied with the best when ``mean(d)`` is at most
its standard error ``std(d) / sqrt(n)``. The tie goes to the candidate with
the fewest parameters (a centred affine bridge counts its bias), then to the
higher score, then to the earliest tried.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Imported for its registration of the mlp family.
from bcjax.align import mlp  # noqa: F401
from bcjax.align.bridge import Bridge, check_rows
from bcjax.align.families import FAMILIES, get_family
from bcjax.align.measures import query_scores, query_truth
from bcjax.align.moments import Preprocessing, moments, prepare, row_means
from bcjax.errors import InputError

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


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One family, hyper-parameters and preprocessing tried by ``auto``.

  Attributes:
    family: the family name.
    hparams: its hyper-parameter dataclass.
    score: the mean validation score (see the module docstring).
    num_params: the bridge's free parameters (:attr:`Bridge.num_params`).
    center: whether it was centred.
    normalize: whether it was L2-normalised.
    self_recall: the validation self-retrieval Recall@K, half the score.
    overlap: the validation neighbour overlap@K, the other half.
    standard_error: ``std(d) / sqrt(n)`` of its per-query differences from
      the best candidate (0 for the best itself).
  """

  family: str
  hparams: Any
  score: float
  num_params: int
  center: bool = False
  normalize: bool = False
  self_recall: float = math.nan
  overlap: float = math.nan
  standard_error: float = 0.0


@dataclasses.dataclass(frozen=True, eq=False)
class Selection:
  """What ``fit(family="auto")`` tried and chose.

  Attributes:
    candidates: every candidate tried, in order, with its validation score.
    chosen: the position of the choice in ``candidates``.
    best: the position of the best score (the choice is tied with it).
    k: the K of the validation measures.
    fit_rows: positions (in the given rows) the candidates were fitted on.
    validation_rows: positions of the validation queries.
    index_rows: positions of the old vectors searched: the validation rows
      first, then distractors drawn from the fit rows.
    skipped: ``(family, hparams, reason)`` of candidates that cannot map the
      widths.
  """

  candidates: tuple[Candidate, ...]
  chosen: int
  best: int
  k: int
  fit_rows: np.ndarray
  validation_rows: np.ndarray
  index_rows: np.ndarray
  skipped: tuple = ()

  @property
  def choice(self) -> Candidate:
    return self.candidates[self.chosen]

  @property
  def scores(self) -> dict[str, float]:
    """Each family's best validation score (over hparams and preprocessings)."""
    out: dict[str, float] = {}
    for c in self.candidates:
      out[c.family] = max(out.get(c.family, -math.inf), c.score)
    return out

  def summary(self) -> dict:
    """JSON-ready: candidates, choice, split sizes."""
    return {
      "chosen": self.chosen,
      "best": self.best,
      "family": self.choice.family,
      "center": self.choice.center,
      "normalize": self.choice.normalize,
      "k": self.k,
      "fit_rows": len(self.fit_rows),
      "validation_rows": len(self.validation_rows),
      "index_rows": len(self.index_rows),
      "candidates": [
        {
          "family": c.family,
          "hparams": dataclasses.asdict(c.hparams),
          "center": c.center,
          "normalize": c.normalize,
          "score": c.score,
          "self_recall": c.self_recall,
          "overlap": c.overlap,
          "standard_error": c.standard_error,
          "num_params": c.num_params,
        }
        for c in self.candidates
      ],
      "skipped": [[f, dataclasses.asdict(h), r] for f, h, r in self.skipped],
    }


def choose(
  per_query: Sequence[np.ndarray], num_params: Sequence[int]
) -> tuple[int, np.ndarray]:
  """The paired one-standard-error rule (module docstring).

  Args:
    per_query: one ``(n,)`` array of validation scores per candidate, all
      on the same ``n`` queries.
    num_params: each candidate's free parameters.

  Returns:
    ``(chosen position, se)``: ``se[c]`` is the standard error of candidate
    ``c``'s per-query differences from the best (0 for the best).
  """
  scores = np.stack([np.asarray(q, np.float64) for q in per_query])
  means = scores.mean(axis=1)
  best = int(np.argmax(means))
  gaps = scores[best] - scores
  n = scores.shape[1]
  se = gaps.std(axis=1, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(len(scores))
  tied = [i for i in range(len(scores)) if gaps[i].mean() <= se[i]]
  return min(tied, key=lambda i: (num_params[i], -means[i], i)), se


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
    seed: seeds ``auto``'s split and the SGD of ``mlp``.
    grid: for ``auto``, family -> hyper-parameter values to try (None: every
      family's own grid).
    validation_fraction: for ``auto``, the share of rows held out ...
    max_validation: ... but at most this many rows.
    k: for ``auto``, the K of the validation measures.

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
    old, new, center, normalize, seed, grid, validation_fraction, max_validation, k
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
  return Bridge(family, hp, spec.fit(data, hp, seed), d_new, d_old, data.prep)


def _auto(old, new, center, normalize, seed, grid, fraction, max_validation, k):
  n, d_new, d_old = len(new), new.shape[1], old.shape[1]
  if not 0.0 < fraction < 1.0:
    raise InputError(f"validation_fraction must be in (0, 1), got {fraction}")
  if not isinstance(max_validation, int) or max_validation < 2:
    raise InputError(f"max_validation must be an integer >= 2, got {max_validation!r}")
  if not isinstance(k, int) or k < 1:
    raise InputError(f"k must be a positive integer, got {k!r}")
  held = min(max(2, round(fraction * n)), max_validation, n - 2)
  if held < 2:
    raise InputError(f"family='auto' needs at least 4 rows to split, got {n}")
  order = np.random.default_rng(seed).permutation(n)
  fit_rows, val_rows = np.sort(order[held:]), np.sort(order[:held])
  # Distractors: a validation index of its own rows alone is easy enough for
  # every candidate to score 1, and then scores cannot separate them.
  distractors = np.sort(order[held:][: max(0, AUTO_INDEX - held)])
  index_rows = np.concatenate([val_rows, distractors])
  index, queries_of = old[index_rows], np.arange(held)
  truth = query_truth(index, queries_of, k)
  if grid is None:
    grid = {name: f.grid(d_new, d_old) for name, f in FAMILIES.items()}
  centers = (False, True) if center is None else (bool(center),)
  normalizes = (False, True) if normalize is None else (bool(normalize),)
  tried, per_query, skipped = [], [], []
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
        per_query.append((hit + overlap) / 2.0)
        tried.append(
          Candidate(
            family=name,
            hparams=hp,
            score=float(per_query[-1].mean()),
            num_params=bridge.num_params,
            center=c,
            normalize=z,
            self_recall=float(hit.mean()),
            overlap=float(overlap.mean()),
          )
        )
  if not tried:
    raise InputError(
      f"no bridge family can map {d_new} -> {d_old} dims with the grid given"
    )
  chosen, se = choose(per_query, [c.num_params for c in tried])
  tried = [
    dataclasses.replace(c, standard_error=float(e))
    for c, e in zip(tried, se, strict=True)
  ]
  choice = tried[chosen]
  final = _fit_one(
    old, new, choice.family, choice.hparams, choice.center, choice.normalize, seed, None
  )
  best = int(np.argmax(np.stack(per_query).mean(axis=1)))  # as choose's
  selection = Selection(
    tuple(tried), chosen, best, k, fit_rows, val_rows, index_rows, tuple(skipped)
  )
  return dataclasses.replace(final, selection=selection)
