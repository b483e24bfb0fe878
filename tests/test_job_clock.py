"""The job clock's ETA from measured rates."""

import pytest

from bcjax.jobs.job_clock import JobClock, format_seconds


class FakeTime:
  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_eta_projects_the_measured_rate_over_the_weighted_work_left():
  t = FakeTime()
  clock = JobClock(t)
  clock.add("nobc v1", units=10)
  clock.add("consumers", units=4, weight=0.5)
  assert clock.eta() == "ETA unknown"
  clock.start()
  t.now = 6.0
  clock.advance("nobc v1", 3)  # 2 s per epoch
  # 7 epochs left + 4 consumer epochs at half an epoch each = 9 units.
  assert clock.eta_seconds() == pytest.approx(18.0)
  t.now = 20.0
  clock.advance("nobc v1", 7)  # now 20 s for 10 units
  assert clock.eta_seconds() == pytest.approx(2 * 2.0)
  assert clock.eta() == "ETA 4s"


def test_reused_stages_count_as_done_without_time():
  t = FakeTime()
  clock = JobClock(t)
  clock.add("a", units=5)
  clock.add("b", units=5)
  clock.start()
  t.now = 100.0  # restoring "a" took long, but it is not a measure of epochs
  clock.skip("a")
  t.now = 101.0
  clock.advance("b", 1)
  assert clock.eta_seconds() == pytest.approx(4.0)


def test_bad_stages_and_formatting():
  with pytest.raises(ValueError, match="stage 'x'"):
    JobClock().add("x", units=-1)
  assert [format_seconds(s) for s in (42, 185, 7620)] == ["42s", "3m05s", "2h07m"]
