"""`VirtualClock`: the simulator's time, advanced by `sleep` instead of waiting.

It owns nothing but a number of seconds since the simulated job was submitted (the same time
axis as `runtime.recovery`), plus a `datetime` view anchored at the trace's start date, so the
code under simulation reads time the way it reads the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class VirtualClock:
    def __init__(self, start: float = 0.0, epoch: datetime | None = None) -> None:
        self._now = float(start)
        self.epoch = epoch or datetime(1970, 1, 1, tzinfo=UTC)

    def now(self) -> float:
        """Seconds since the clock's zero (the job's submission)."""
        return self._now

    def sleep(self, seconds: float) -> None:
        """Advance by `seconds` (never backwards)."""
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds:g}s)")
        self._now += seconds

    def advance_to(self, seconds: float) -> None:
        """Jump to `seconds` if that is later than now."""
        self._now = max(self._now, float(seconds))

    def datetime(self) -> datetime:
        return self.epoch + timedelta(seconds=self._now)
