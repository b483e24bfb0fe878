"""Keeping the best epoch: the selection rules of the fits.

The embedding fit keeps the epoch with the best validation Recall@50, the
post-hoc fit the one with the lowest alignment error (a score of minus the
error). Both only keep epochs after ``keep_after``, except that the last
epoch is kept when nothing else was (:class:`BestEpoch`). The consumers'
grid keeps, for each of its vmapped models, the epoch with the best
selection metric, from the first epoch on (:class:`BestEpochs`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass
class BestEpoch:
  """The best epoch of a fit so far (higher score is better).

  Attributes:
    keep_after: only epochs after this one may be kept ...
    last_epoch: ... unless nothing was kept by this one.
    epoch: the kept epoch (0: none yet).
    score: its score (-inf: none yet).
  """

  keep_after: int
  last_epoch: int
  epoch: int = 0
  score: float = -math.inf

  def eligible(self, epoch: int) -> bool:
    """Whether ``epoch`` may be kept (worth evaluating for selection)."""
    return epoch > self.keep_after or (epoch == self.last_epoch and self.epoch == 0)

  def offer(self, epoch: int, score: float) -> bool:
    """Keeps ``epoch`` if it is eligible and beats the kept one; says if so."""
    if self.eligible(epoch) and score > self.score:
      self.epoch, self.score = epoch, score
      return True
    return False


@dataclasses.dataclass
class BestEpochs:
  """The best epoch of each of ``n`` models trained side by side.

  Each model's rule is :class:`BestEpoch`'s: only epochs after
  ``keep_after`` may be kept, unless nothing was kept by ``last_epoch``
  (both 0, the consumers' grid: every epoch is eligible). A score that is
  NaN (a model whose outputs are not finite) never beats a kept one.

  Attributes:
    scores: ``(n,)`` the kept epochs' scores (-inf: none yet).
    epochs: ``(n,)`` the kept epochs (0: none yet).
    keep_after: only epochs after this one may be kept ...
    last_epoch: ... unless nothing was kept by this one.
  """

  scores: np.ndarray
  epochs: np.ndarray
  keep_after: int = 0
  last_epoch: int = 0

  @classmethod
  def start(cls, n: int, keep_after: int = 0, last_epoch: int = 0) -> BestEpochs:
    return cls(np.full(n, -np.inf), np.zeros(n, np.int64), keep_after, last_epoch)

  def offer(self, epoch: int, scores: np.ndarray) -> np.ndarray:
    """Keeps ``epoch`` for the models it improves; ``(n,)`` which those are."""
    eligible = (epoch > self.keep_after) | (
      (epoch == self.last_epoch) & (self.epochs == 0)
    )
    improved = eligible & (scores > self.scores)
    self.scores = np.where(improved, scores, self.scores)
    self.epochs = np.where(improved, epoch, self.epochs)
    return improved
