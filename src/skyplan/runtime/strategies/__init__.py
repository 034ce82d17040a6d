"""The built-in recovery strategies, registered by name on import (see `runtime.recovery`)."""

from skyplan.runtime.recovery import register
from skyplan.runtime.strategies.eager import EagerNextRegion
from skyplan.runtime.strategies.failover import Failover

__all__ = ["EagerNextRegion", "Failover"]

for _strategy in (EagerNextRegion(), Failover()):
    register(_strategy)
