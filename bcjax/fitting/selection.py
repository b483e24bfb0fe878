"""Keeping the best epoch: the selection rules of the fits.

The embedding fit keeps the epoch with the best validation Recall@50, the
post-hoc fit the one with the lowest alignment error (a score of minus the
error). Both only keep epochs after ``keep_after``, except that the last
epoch is kept when nothing else was (:class:`BestEpoch`). The consumers'
grid keeps, for each of its vmapped models, the epoch with the best
selection metric, from the first epoch on (:class:`BestEpochs`).

With ``min_delta > 0`` an epoch is kept only when it beats the kept score
by more than ``min_delta`` times the kept score's magnitude: a fit whose
score creeps by less (a post-hoc B_k on a plateau of its error) keeps the
epoch it reached the plateau at, goes stale, and stops there with
patience. The kept model is then within that tolerance of the best one
seen.
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
    min_delta: the relative margin a score must beat the kept one by.
  """

  keep_after: int
  last_epoch: int
  epoch: int = 0
  score: float = -math.inf
  min_delta: float = 0.0

  def eligible(self, epoch: int) -> bool:
    """Whether ``epoch`` may be kept (worth evaluating for selection)."""
    return epoch > self.keep_after or (epoch == self.last_epoch and self.epoch == 0)

  def offer(self, epoch: int, score: float) -> bool:
    """Keeps ``epoch`` if it is eligible and beats the kept one; says if so."""
    if self.eligible(epoch) and score > _bar(self.score, self.min_delta):
      self.epoch, self.score = epoch, score
      return True
    return False

  def stale(self, epoch: int, patience: int) -> bool:
    """Whether ``patience`` epochs (> 0) passed after the kept one by ``epoch``.

    Nothing kept yet (``keep_after`` not passed) is never stale.
    """
    return patience > 0 and self.epoch > 0 and epoch - self.epoch >= patience


@dataclasses.dataclass
class BestEpochs:
  """The best epoch of each of ``n`` models trained side by side.

  Each model's rule is :class:`BestEpoch`'s: only epochs after
  ``keep_after`` may be kept, unless nothing was kept by ``last_epoch``
  (both 0, the consumers' grid: every epoch is eligible). A score that is
  NaN (a model whose outputs are not finite) never beats a kept one.

  With patience (:meth:`stale`), a model whose kept epoch grew stale stops
  there: later epochs are not offered to it, as if it had stopped training
  alone, and the side-by-side training ends when every model has stopped.

  Attributes:
    scores: ``(n,)`` the kept epochs' scores (-inf: none yet).
    epochs: ``(n,)`` the kept epochs (0: none yet).
    keep_after: only epochs after this one may be kept ...
    last_epoch: ... unless nothing was kept by this one.
    stopped: ``(n,)`` which models have stopped (None: none yet).
    min_delta: the relative margin a score must beat the kept one by.
  """

  scores: np.ndarray
  epochs: np.ndarray
  keep_after: int = 0
  last_epoch: int = 0
  stopped: np.ndarray | None = None
  min_delta: float = 0.0

  @classmethod
  def start(
    cls, n: int, keep_after: int = 0, last_epoch: int = 0, min_delta: float = 0.0
  ) -> BestEpochs:
    return cls(
      np.full(n, -np.inf),
      np.zeros(n, np.int64),
      keep_after,
      last_epoch,
      min_delta=min_delta,
    )

  def running(self) -> np.ndarray:
    """``(n,)`` which models have not stopped."""
    if self.stopped is None:
      return np.ones(len(self.epochs), bool)
    return ~self.stopped

  def offer(self, epoch: int, scores: np.ndarray) -> np.ndarray:
    """Keeps ``epoch`` for the models it improves; ``(n,)`` which those are."""
    eligible = (epoch > self.keep_after) | (
      (epoch == self.last_epoch) & (self.epochs == 0)
    )
    improved = eligible & (scores > _bar(self.scores, self.min_delta)) & self.running()
    self.scores = np.where(improved, scores, self.scores)
    self.epochs = np.where(improved, epoch, self.epochs)
    return improved

  def stale(self, epoch: int, patience: int) -> bool:
    """Stops the models whose kept epoch is ``patience`` (> 0) epochs old.

    A model with nothing kept yet does not stop. Returns whether every
    model has stopped.
    """
    if patience <= 0:
      return False
    now = (self.epochs > 0) & (epoch - self.epochs >= patience)
    self.stopped = now | ~self.running()
    return bool(np.all(self.stopped))


def _bar(kept, min_delta: float):
  """The score to beat: ``kept`` raised by ``min_delta`` of its magnitude.

  ``-inf`` (nothing kept) stays ``-inf``; 0 keeps the plain comparison.
  """
  if min_delta == 0:
    return kept
  with np.errstate(invalid="ignore"):
    return np.where(np.isfinite(kept), kept + min_delta * np.abs(kept), kept)
