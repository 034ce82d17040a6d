"""`python -m skyplan.execution.jobs_controller`: the managed-job controller process.

One process serves every managed job of the store (`SKYPLAN_HOME` / `SKYPLAN_DB_URL`); it
holds the `jobs-controller` lease so `session.jobs.ensure_controller()` starts at most one, and
exits once no job is active. Killing it loses nothing: the next one resumes every job from the
store (see `skyplan.runtime.managed`). Settings from the environment, for tests and operators:
`SKYPLAN_JOBS_POLL` (seconds between looks at a running job, default 5), `SKYPLAN_JOBS_TICK`
(seconds between strategy ticks, default 60), `SKYPLAN_JOBS_WORKERS` (concurrent launches,
default 8).
"""

from __future__ import annotations

import os
import sys
import threading
from datetime import UTC, datetime

from skyplan.execution.managed import CONTROLLER_LOCK
from skyplan.execution.session import Session
from skyplan.model.managed import ACTIVE
from skyplan.runtime.lease import claimed
from skyplan.runtime.managed import ControllerSettings


def _log(message: str) -> None:
    print(f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}", flush=True)


def settings_from_env() -> ControllerSettings:
    def number(name: str, default: float) -> float:
        text = os.environ.get(name)
        try:
            return float(text) if text else default
        except ValueError:
            _log(f"ignoring {name}={text!r}: not a number")
            return default

    return ControllerSettings(
        poll=number("SKYPLAN_JOBS_POLL", 5.0),
        tick=number("SKYPLAN_JOBS_TICK", 60.0),
        workers=max(1, int(number("SKYPLAN_JOBS_WORKERS", 8))),
    )


def main() -> int:
    with Session(say=_log) as session:
        while True:
            with claimed(session.store, CONTROLLER_LOCK) as mine:
                if not mine:
                    _log("another controller is running")
                    return 0
                _log(f"controller starting (pid {os.getpid()})")
                controller = session.jobs.controller(settings_from_env())
                try:
                    controller.run(stop=threading.Event(), exit_when_idle=True)
                finally:
                    controller.close()
            # A job submitted while we decided to leave saw our lease and started no
            # controller: look once more after letting go of it.
            if not session.store.managed.ids(ACTIVE):
                _log("controller exiting: no active managed job")
                return 0


if __name__ == "__main__":
    sys.exit(main())
