"""The store's managed jobs and their segments (`Store.managed`).

Same rules as the rest of the store: one short transaction per change, the event describing it
(kind `managed-job`, `job_id` the managed job's id, no cluster) written in that transaction.
Ids come from the table's own autoincrement, so concurrent submitters in any number of
processes get distinct ids and never reuse one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from skyplan.errors import StateError
from skyplan.model.managed import ManagedJobRecord, ManagedJobStatus, SegmentRecord
from skyplan.model.state import Event
from skyplan.state.schema import events as events_t
from skyplan.state.schema import managed_jobs as jobs_t
from skyplan.state.schema import managed_segments as segments_t

KIND = "managed-job"
_READ_ONLY = frozenset({"job_id", "submitted_at"})


Transaction = Callable[..., AbstractContextManager[Any]]


def _now() -> datetime:
    return datetime.now(UTC)


def _values(model: Any) -> dict[str, Any]:
    data = model.model_dump()
    return {k: (v.value if isinstance(v, ManagedJobStatus) else v) for k, v in data.items()}


class ManagedJobTable:
    """Managed jobs in the store; get it as `store.managed`."""

    def __init__(self, transaction: Transaction) -> None:
        self._tx = transaction

    def submit(self, record: ManagedJobRecord, reason: str = "submitted") -> ManagedJobRecord:
        """Record a new job (its `job_id` is assigned here) and return it."""
        values = _values(record)
        del values["job_id"]
        with self._tx(write=True) as tx:
            job_id = tx.conn.execute(
                jobs_t.insert().values(**values).returning(jobs_t.c.job_id)
            ).scalar_one()
            who = f" by {record.user}" if record.user else ""
            tx.event(KIND, f"{reason}{who}", job_id=job_id, new=record.status)
        return record.model_copy(update={"job_id": job_id})

    def submit_group(
        self, records: Sequence[ManagedJobRecord], reason: str = "submitted"
    ) -> list[ManagedJobRecord]:
        """Record a job group's members at once (all or none), each with `group_id` set to
        the first member's id, and return them."""
        made: list[ManagedJobRecord] = []
        with self._tx(write=True) as tx:
            for number, record in enumerate(records, 1):
                values = _values(record)
                del values["job_id"]
                values["group_id"] = made[0].job_id if made else None
                job_id = tx.conn.execute(
                    jobs_t.insert().values(**values).returning(jobs_t.c.job_id)
                ).scalar_one()
                group_id = made[0].job_id if made else job_id
                if not made:
                    tx.conn.execute(
                        jobs_t.update().where(jobs_t.c.job_id == job_id).values(group_id=job_id)
                    )
                made.append(record.model_copy(update={"job_id": job_id, "group_id": group_id}))
                who = f" by {record.user}" if record.user else ""
                tx.event(
                    KIND,
                    f"{reason}{who}: member {number} of {len(records)} of group {group_id}",
                    job_id=job_id,
                    new=record.status,
                )
        return made

    def group(self, group_id: int) -> list[ManagedJobRecord]:
        """A job group's members, by id."""
        query = sa.select(jobs_t).where(jobs_t.c.group_id == group_id).order_by(jobs_t.c.job_id)
        with self._tx() as tx:
            rows = tx.conn.execute(query).all()
        return [ManagedJobRecord.model_validate(dict(row._mapping)) for row in rows]

    def get(self, job_id: int) -> ManagedJobRecord | None:
        with self._tx() as tx:
            row = tx.conn.execute(sa.select(jobs_t).where(jobs_t.c.job_id == job_id)).first()
        return None if row is None else ManagedJobRecord.model_validate(dict(row._mapping))

    def require(self, job_id: int) -> ManagedJobRecord:
        job = self.get(job_id)
        if job is None:
            raise StateError(f"no managed job {job_id}")
        return job

    def jobs(
        self,
        statuses: Collection[ManagedJobStatus] | None = None,
        *,
        name: str | None = None,
        limit: int | None = None,
    ) -> list[ManagedJobRecord]:
        """Jobs by ascending id (only those in `statuses` / called `name` if given); with
        `limit`, the latest `limit` of them."""
        query = sa.select(jobs_t)
        if statuses is not None:
            query = query.where(jobs_t.c.status.in_([s.value for s in statuses]))
        if name is not None:
            query = query.where(jobs_t.c.name == name)
        if limit is not None:
            query = query.order_by(jobs_t.c.job_id.desc()).limit(limit)
        with self._tx() as tx:
            rows = tx.conn.execute(query).all()
        jobs = [ManagedJobRecord.model_validate(dict(row._mapping)) for row in rows]
        return sorted(jobs, key=lambda j: j.job_id)

    def ids(self, statuses: Collection[ManagedJobStatus]) -> list[int]:
        query = (
            sa.select(jobs_t.c.job_id)
            .where(jobs_t.c.status.in_([s.value for s in statuses]))
            .order_by(jobs_t.c.job_id)
        )
        with self._tx() as tx:
            return list(tx.conn.execute(query).scalars())

    def update(
        self,
        job_id: int,
        /,
        reason: str,
        *,
        expect: Collection[ManagedJobStatus] | None = None,
        **changes: Any,
    ) -> ManagedJobRecord:
        """Change fields of a job; a status change writes an event with `reason`.

        With `expect`, the change happens only if the job's status is one of them; otherwise
        StateError (so a cancel and a controller never overwrite each other's move)."""
        unknown = sorted(set(changes) - set(ManagedJobRecord.model_fields))
        if unknown:
            raise TypeError(f"update() got unknown field(s): {', '.join(unknown)}")
        fixed = sorted(set(changes) & _READ_ONLY)
        if fixed:
            raise TypeError(f"update() cannot change {', '.join(fixed)}")
        with self._tx(write=True) as tx:
            query = sa.select(jobs_t).where(jobs_t.c.job_id == job_id).with_for_update()
            row = tx.conn.execute(query).first()
            if row is None:
                raise StateError(f"no managed job {job_id}")
            old = ManagedJobRecord.model_validate(dict(row._mapping))
            if expect is not None and old.status not in expect:
                raise StateError(
                    f"managed job {job_id} is {old.status.value}, not "
                    f"{' or '.join(s.value for s in expect)}"
                )
            at = _now()
            new = ManagedJobRecord.model_validate({**old.model_dump(), "updated_at": at, **changes})
            values = _values(new)
            del values["job_id"]
            tx.conn.execute(jobs_t.update().where(jobs_t.c.job_id == job_id).values(**values))
            if new.status != old.status:
                tx.event(KIND, reason, job_id=job_id, old=old.status, new=new.status, at=at)
        return new

    def note(self, job_id: int, reason: str) -> None:
        """Record an event about a job that changes no field (a decision, a retry)."""
        with self._tx(write=True) as tx:
            tx.event(KIND, reason, job_id=job_id)

    # -- segments ---------------------------------------------------------------------------

    def open_segment(self, segment: SegmentRecord, reason: str) -> SegmentRecord:
        """Record a new segment, numbered after the job's last one."""
        with self._tx(write=True) as tx:
            last = tx.conn.execute(
                sa.select(sa.func.max(segments_t.c.number)).where(
                    segments_t.c.job_id == segment.job_id
                )
            ).scalar()
            segment = segment.model_copy(update={"number": (last or 0) + 1})
            tx.conn.execute(segments_t.insert().values(**_values(segment)))
            tx.event(KIND, reason, job_id=segment.job_id)
        return segment

    def close_segment(self, job_id: int, outcome: str, at: datetime | None = None) -> None:
        """End the job's open segment (if any) with `outcome`."""
        with self._tx(write=True) as tx:
            tx.conn.execute(
                segments_t.update()
                .where((segments_t.c.job_id == job_id) & segments_t.c.ended_at.is_(None))
                .values(ended_at=at or _now(), outcome=outcome)
            )

    def segments(self, job_id: int | None = None) -> list[SegmentRecord]:
        """Segments of one job (or of all), in order."""
        query = sa.select(segments_t).order_by(segments_t.c.job_id, segments_t.c.number)
        if job_id is not None:
            query = query.where(segments_t.c.job_id == job_id)
        with self._tx() as tx:
            rows = tx.conn.execute(query).all()
        return [SegmentRecord.model_validate(dict(row._mapping)) for row in rows]

    def segments_by_job(self, job_ids: Collection[int]) -> Mapping[int, list[SegmentRecord]]:
        found: dict[int, list[SegmentRecord]] = {j: [] for j in job_ids}
        if not job_ids:
            return found
        query = (
            sa.select(segments_t)
            .where(segments_t.c.job_id.in_(list(job_ids)))
            .order_by(segments_t.c.job_id, segments_t.c.number)
        )
        with self._tx() as tx:
            for row in tx.conn.execute(query).all():
                seg = SegmentRecord.model_validate(dict(row._mapping))
                found[seg.job_id].append(seg)
        return found

    def events(self, job_id: int) -> list[Event]:
        query = (
            sa.select(events_t)
            .where((events_t.c.kind == KIND) & (events_t.c.job_id == job_id))
            .order_by(events_t.c.id)
        )
        with self._tx() as tx:
            rows = tx.conn.execute(query).all()
        return [Event.model_validate(dict(row._mapping)) for row in rows]
