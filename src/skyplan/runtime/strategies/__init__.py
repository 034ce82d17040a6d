"""The built-in recovery strategies, registered by name on import (see `runtime.recovery`)."""

from skyplan.runtime.recovery import register
from skyplan.runtime.strategies.eager import EagerNextRegion
from skyplan.runtime.strategies.failover import Failover
from skyplan.runtime.strategies.regional import RegionalProgress
from skyplan.runtime.strategies.uniform_progress import ProgressStrategy, UniformProgress

__all__ = [
    "EagerNextRegion",
    "Failover",
    "ProgressStrategy",
    "RegionalProgress",
    "UniformProgress",
]

for _strategy in (EagerNextRegion(), Failover(), UniformProgress(), RegionalProgress()):
    register(_strategy)
