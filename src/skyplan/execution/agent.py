"""`python -m skyplan.execution.agent CLUSTER`: a cluster's agent process (see
`skyplan.runtime.agent`). Started in the background by `Session.ensure_agent`; reads the store
location from SKYPLAN_HOME / SKYPLAN_DB_URL."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from skyplan.execution.session import Session
from skyplan.runtime import run_agent


def _log(message: str) -> None:
    print(f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}", flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m skyplan.execution.agent CLUSTER", file=sys.stderr)
        return 2
    with Session() as session:
        _log(f"agent for {argv[0]} starting")
        run_agent(session.store, session.backend, argv[0], log=_log)
        _log(f"agent for {argv[0]} exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
