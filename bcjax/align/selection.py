"""``auto``'s validation: its folds, its rule, and the record of its choice.

:func:`validation_folds` splits the rows ``fit(family="auto")`` is given into
disjoint validation parts (folds), each scored by candidates fitted on the
rest. :func:`choose` is the rule: every candidate is scored on the same
queries, so candidate ``c`` is compared with the best ``b`` by the per-query
differences ``d = s_b - s_c``; ``c`` is tied with the best when ``mean(d)``
is at most its standard error ``std(d) / sqrt(n)``. The tie goes to the
candidate with the fewest parameters (a centred affine bridge counts its
bias), then to the higher score, then to the earliest tried.
:class:`Selection` records what was tried and chosen, and
:meth:`Selection.fold_choices` what each fold alone would have chosen.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bcjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One family, hyper-parameters and preprocessing tried by ``auto``.

  Attributes:
    family: the family name.
    hparams: its hyper-parameter dataclass.
    score: the mean validation score over every fold's queries.
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
    fit_rows: positions (in the given rows) the candidates were fitted on
      for the first fold.
    validation_rows: positions of the first fold's validation queries.
    index_rows: positions of the old vectors the first fold searched: its
      validation rows first, then distractors drawn from its fit rows.
    skipped: ``(family, hparams, reason)`` of candidates that cannot map the
      widths.
    folds: each fold's validation rows (positions; the first is
      ``validation_rows``); a row is a query in one fold at most.
    fold_chosen: per fold, the candidate the rule chooses on that fold's
      queries alone (what a single split would have chosen).
  """

  candidates: tuple[Candidate, ...]
  chosen: int
  best: int
  k: int
  fit_rows: np.ndarray
  validation_rows: np.ndarray
  index_rows: np.ndarray
  skipped: tuple = ()
  folds: tuple = ()
  fold_chosen: tuple[int, ...] = ()

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

  @property
  def queries(self) -> int:
    """Validation queries in all folds together."""
    return sum(len(f) for f in self.folds) or len(self.validation_rows)

  @property
  def fold_agreement(self) -> float:
    """The share of folds whose own choice is the choice made on all of them."""
    if not self.fold_chosen:
      return 1.0
    return sum(c == self.chosen for c in self.fold_chosen) / len(self.fold_chosen)

  def summary(self) -> dict:
    """JSON-ready: candidates, choice, split sizes, each fold's choice."""
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
      "folds": max(1, len(self.folds)),
      "queries": self.queries,
      "fold_chosen": list(self.fold_chosen),
      "fold_agreement": self.fold_agreement,
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


def validation_folds(
  n: int, seed: int, fraction: float, max_validation: int, folds: int
) -> tuple[np.ndarray, list[np.ndarray]]:
  """``(order, parts)``: auto's seeded permutation and its validation folds.

  Each part is the next block of ``held = round(fraction * n)`` rows of the
  permutation (at least 2, at most ``max_validation`` and ``n - 2``), so the
  first part is the one split a single fold makes. Parts are added up to
  ``folds`` of them and while all of them together hold at most
  ``max_validation`` rows: one split of a large input already has that many
  queries, and each fold costs a fit of every candidate. A last block cut
  short by the end of the rows is a part if it has 2 rows or more.

  Args:
    n: the number of rows given.
    seed: seeds the permutation.
    fraction: the share of rows in one part.
    max_validation: the most validation rows in one part and in all parts.
    folds: the most parts.

  Returns:
    The permutation of ``range(n)`` and the parts, each an unsorted slice
    of it.

  Raises:
    InputError: for a fraction outside (0, 1), a bad ``max_validation`` or
      ``folds``, or fewer than 4 rows.
  """
  if not 0.0 < fraction < 1.0:
    raise InputError(f"validation_fraction must be in (0, 1), got {fraction}")
  if not isinstance(max_validation, int) or max_validation < 2:
    raise InputError(f"max_validation must be an integer >= 2, got {max_validation!r}")
  if not isinstance(folds, int) or isinstance(folds, bool) or folds < 1:
    raise InputError(f"folds must be a positive integer, got {folds!r}")
  held = min(max(2, round(fraction * n)), max_validation, n - 2)
  if held < 2:
    raise InputError(f"family='auto' needs at least 4 rows to split, got {n}")
  order = np.random.default_rng(seed).permutation(n)
  parts = [order[:held]]
  while len(parts) < folds:
    part = order[len(parts) * held : (len(parts) + 1) * held]
    if len(part) < 2 or sum(map(len, parts)) + len(part) > max_validation:
      break
    parts.append(part)
  return order, parts
