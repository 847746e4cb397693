"""The loop's step rate and ETA: timed from the end of the first dispatch, compilation subtracted,
averaged over the last few log intervals."""
import math

import pytest

from lipprune.train import loop


class FakeClocks:
  """Wall time and compile time that a test advances by hand."""

  def __init__(self):
    self.wall, self.compiled = 100.0, 0.0

  def seconds(self):  # the compile clock's interface
    return self.compiled


def test_step_rate_excludes_first_dispatch_and_compilation(monkeypatch):
  clocks = FakeClocks()
  monkeypatch.setattr(loop.time, "perf_counter", lambda: clocks.wall)
  monkeypatch.setattr(loop.jax, "block_until_ready", lambda x: x)
  rate = loop._StepRate(clocks, window=2)
  # First dispatch: 16 steps that take 20 s, 15 of them compiling: not timed.
  clocks.wall += 20.0
  clocks.compiled += 15.0
  rate.add(None, 16)
  assert rate.first_compile == 15.0
  # 84 more steps in 0.84 s plus 3 s compiling an evaluation program: 100 steps/s.
  for _ in range(84):
    rate.add(None, 1)
  clocks.wall += 0.84 + 3.0
  clocks.compiled += 3.0
  interval, recent = rate.lap()
  assert interval == pytest.approx(100.0) and recent == pytest.approx(100.0)
  assert loop._eta(1000 - 100, recent) == "9s"
  # Then 100 steps in 2 s (50/s), then 100 in 0.5 s (200/s): the window holds the last two.
  for seconds in (2.0, 0.5):
    rate.add(None, 100)
    clocks.wall += seconds
    interval, recent = rate.lap()
  assert interval == pytest.approx(200.0)
  assert recent == pytest.approx(200 / 2.5)
  assert loop._eta(6000, 80.0) == "1m15s"


def test_interval_of_only_the_first_dispatch_is_untimed(monkeypatch):
  clocks = FakeClocks()
  monkeypatch.setattr(loop.time, "perf_counter", lambda: clocks.wall)
  monkeypatch.setattr(loop.jax, "block_until_ready", lambda x: x)
  rate = loop._StepRate(clocks)
  clocks.wall += 5.0
  rate.add(None, 10)
  interval, recent = rate.lap()
  assert math.isnan(interval) and math.isnan(recent)
  assert loop._eta(100, recent) == "?"
