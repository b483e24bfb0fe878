"""Keeping the best epoch: the selection rule every fit shares.

The embedding fit keeps the epoch with the best validation Recall@50, the
post-hoc fit the one with the lowest alignment error (a score of minus the
error). Both only keep epochs after ``keep_after``, except that the last
epoch is kept when nothing else was.
"""

from __future__ import annotations

import dataclasses
import math


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
