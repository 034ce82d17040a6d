"""Shared fixtures for the simulator tests: the tiny trace set shipped with the tests and
a factory for traces built in memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from skyplan.sim import ZoneTrace

FIXTURES = Path(__file__).parent / "fixtures"
TINY = FIXTURES / "aws-tiny"

MakeTrace = Callable[..., ZoneTrace]


def make_trace(
    data: Sequence[int],
    *,
    zone: str = "us-west-2a",
    gap: float = 3600.0,
    prices: Sequence[float] | None = None,
    cloud: str = "aws",
) -> ZoneTrace:
    return ZoneTrace(
        path=Path(f"{cloud}-test/{zone}_x_1.json"),
        cloud=cloud,
        region=zone[:-1],
        zone=zone,
        gap_seconds=gap,
        available=np.asarray(data, dtype=np.int64),
        prices=None if prices is None else np.asarray(prices, dtype=np.float64),
        label=f"{zone}_x_1",
    )


@pytest.fixture
def trace() -> MakeTrace:
    return make_trace
