"""The execution API: `Session` runs tasks on clusters (launch, exec, status, queue, logs,
cancel, stop, start, down, autostop, check) over the state store and the backends.

Sits above `skyplan.api` (it plans through it) and below the CLI.
"""

from skyplan.execution.session import LaunchResult, Session, failed
from skyplan.paths import default_home

__all__ = ["LaunchResult", "Session", "default_home", "failed"]
