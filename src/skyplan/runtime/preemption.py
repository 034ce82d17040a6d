"""What happened to a managed job's run: the one place that tells a preemption from a failure.

The rule, and why:
- a node the backend no longer lists as running (deleted, reclaimed, stopped behind skyplan's
  back) is the **infrastructure's** doing: the run was *preempted*, whatever the job printed;
- a job the queue gave up on because its node stopped answering (`lost`) was preempted too;
- a job whose process ended without writing an exit code was killed from outside (a user's
  command always leaves one, even when it dies of a signal, since its wrapper records `$?`):
  preempted — the run is lost, not the job's fault;
- an exit code is the job's own verdict: 0 succeeded, anything else failed (and
  `recover_on_exit_codes` / `max_restarts_on_errors` decide whether it runs again);
- a cancel of the cluster job by hand ends the managed job as cancelled.

A preemption where some nodes of the cluster are still running is *partial*: the controller
replaces the missing nodes in place (skypilot#3907) before it asks the strategy to move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from skyplan.model.node import Node, NodeStatus
from skyplan.model.state import JobRecord, JobStatus


class Outcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PREEMPTED = "preempted"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    why: str = ""
    exit_code: int | None = None
    #: Ranks still running, for a preemption (all of them lost: empty).
    alive: tuple[int, ...] = ()

    @property
    def partial(self) -> bool:
        return self.outcome == Outcome.PREEMPTED and bool(self.alive)


def judge(num_nodes: int, nodes: Sequence[Node], job: JobRecord | None) -> Verdict:
    """The verdict on a run of `num_nodes` nodes, given the nodes the backend lists now and the
    cluster job that runs it (None: it is gone from the cluster's queue)."""
    alive = tuple(sorted(n.rank for n in nodes if n.status == NodeStatus.RUNNING))
    missing = sorted(set(range(num_nodes)) - set(alive))
    if missing:
        what = "node" if len(missing) == 1 else "nodes"
        ranks = ", ".join(map(str, missing))
        return Verdict(Outcome.PREEMPTED, f"{what} {ranks} no longer running", alive=alive)
    if job is None:
        return Verdict(Outcome.PREEMPTED, "its run is gone from the cluster", alive=alive)
    if job.status == JobStatus.LOST:
        return Verdict(Outcome.PREEMPTED, job.message or "a node stopped answering", alive=alive)
    if job.status == JobStatus.FAILED and job.exit_code is None:
        why = job.message or "its process was killed"
        return Verdict(Outcome.PREEMPTED, f"killed from outside ({why})", alive=alive)
    if job.status == JobStatus.FAILED:
        return Verdict(Outcome.FAILED, job.message, exit_code=job.exit_code)
    if job.status == JobStatus.SUCCEEDED:
        return Verdict(Outcome.SUCCEEDED, exit_code=0)
    if job.status == JobStatus.CANCELLED:
        return Verdict(Outcome.CANCELLED, "its run was cancelled on the cluster")
    return Verdict(Outcome.RUNNING)
