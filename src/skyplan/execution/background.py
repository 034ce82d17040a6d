"""Starting skyplan's own background processes: a cluster's agent, the managed-jobs controller.

Each runs in a session of its own (no controlling terminal, so closing the terminal does not
stop it), with stdin closed and its output appended to a log file, and outlives the process
that started it. It is spawned directly, not through a shell: a command that cannot be run is
an error here, not a line in a log nobody reads. The starter reaps the ones that have ended
each time it starts another, so a long-lived embedder collects no zombies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from skyplan.errors import ClusterStateError

_started: set[int] = set()  # children not reaped yet


def _reap() -> None:
    for pid in list(_started):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere
            done = pid
        if done:
            _started.discard(pid)


def start_detached(command: Sequence[str], log: Path, env: Mapping[str, str], what: str) -> int:
    """Start `command` in the background and return its pid; raises `ClusterStateError`
    naming `what` when it cannot be started."""
    _reap()
    log.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    try:
        pid = os.posix_spawn(
            command[0], list(command), dict(env), file_actions=actions, setsid=True
        )
    except OSError as exc:
        raise ClusterStateError(
            f"cannot start {what} ({command[0]}): {exc.strerror or exc}"
        ) from None
    _started.add(pid)
    return pid
