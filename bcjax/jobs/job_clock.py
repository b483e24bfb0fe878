"""Where a long job stands and when it will end, from measured rates.

The job is a list of stages (training a strategy's version, fitting a task's
consumers), each with a number of work units (epochs) and a weight (the
expected seconds of a unit relative to a training epoch). As units finish,
the clock measures seconds per weighted unit and projects the rest of the
job; stages that are reused from a workdir count as done without time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable


@dataclasses.dataclass
class _Stage:
  units: int
  weight: float
  done: int = 0


class JobClock:
  """Counts finished work units and projects the time left.

  Args:
    clock: a function returning seconds (``time.perf_counter``; tests pass
      a fake).
  """

  def __init__(self, clock: Callable[[], float] = time.perf_counter):
    self._clock = clock
    self._stages: dict[str, _Stage] = {}
    self._seconds = 0.0  # measured time of the weighted units done
    self._weighted_done = 0.0
    self._last: float | None = None

  def add(self, name: str, units: int, weight: float = 1.0) -> None:
    """Plans a stage of ``units`` units of relative cost ``weight``."""
    if units < 0 or weight < 0:
      raise ValueError(f"stage {name!r}: units and weight must be >= 0")
    self._stages[name] = _Stage(units, weight)

  def start(self) -> None:
    """Starts timing (call when real work begins)."""
    self._last = self._clock()

  def skip(self, name: str) -> None:
    """Marks a stage done without counting its time (reused from the
    workdir, or finished by work other than its units)."""
    stage = self._stages[name]
    stage.done = stage.units
    self._last = self._clock()

  def advance(self, name: str, units: int = 1) -> None:
    """Records ``units`` more units of ``name`` as done since the last call."""
    stage = self._stages[name]
    now = self._clock()
    if self._last is not None:
      self._seconds += now - self._last
      self._weighted_done += units * stage.weight
    self._last = now
    stage.done = min(stage.units, stage.done + units)

  def __contains__(self, name: str) -> bool:
    return name in self._stages

  @property
  def weighted_left(self) -> float:
    return sum((s.units - s.done) * s.weight for s in self._stages.values())

  def eta_seconds(self) -> float | None:
    """Seconds left at the rate measured so far; None before any measure."""
    if self._weighted_done <= 0:
      return None
    return self.weighted_left * self._seconds / self._weighted_done

  def eta(self) -> str:
    """The time left in words: ``"ETA 3m05s"``, or ``"ETA unknown"``."""
    left = self.eta_seconds()
    return "ETA unknown" if left is None else f"ETA {format_seconds(left)}"


def format_seconds(seconds: float) -> str:
  """``"42s"``, ``"3m05s"`` or ``"2h07m"``."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
