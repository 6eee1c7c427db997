"""The live feed: new alerts, case changes and escalations, pushed to the operators who may
see them, resumable from the last id a console saw.

Every feed event is a row (``feed_events``) written in the same transaction as the change it
announces, so a reconnecting console — or one that talks to another API process, or to this
one after a restart — replays what it missed with ``after=<last id>``. After each commit
that wrote feed rows, the committing process wakes its own hub and publishes a wake-up on a
Redis pub/sub channel so other API processes read the new rows at once; without Redis the
hubs still poll the table every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
import redis.asyncio as aioredis
from sqlalchemy import delete, event, or_, select
from sqlalchemy.orm import Session, sessionmaker

from api.orm import Alert, Case, CaseEvent, FeedEvent
from api.timeutil import utcnow

log = logging.getLogger(__name__)

_DIRTY = "sharpeyes.feed_dirty"


def _add(session: Session, type_: str, case: Case | None, data: dict[str, Any]) -> FeedEvent:
    row = FeedEvent(
        type=type_,
        case_id=case.id if case is not None else None,
        centre_id=case.centre_id if case is not None else None,
        routed_centre_id=case.routed_centre_id if case is not None else None,
        payload=data,
        at=utcnow(),
    )
    session.add(row)
    session.info[_DIRTY] = True
    return row


def publish_case(session: Session, case: Case, entry: CaseEvent) -> None:
    from api.serialize import case_out

    type_ = "escalation" if entry.action == "escalated" else "case"
    _add(
        session,
        type_,
        case,
        {
            "action": entry.action,
            "actor": entry.actor,
            "from_state": entry.from_state,
            "to_state": entry.to_state,
            "note": entry.note,
            "details": entry.data,
            "case": case_out(case).model_dump(mode="json"),
        },
    )


def publish_alert(session: Session, alert: Alert, case: Case, case_created: bool) -> None:
    from api.serialize import alert_out, case_out

    _add(
        session,
        "alert",
        case,
        {
            "case_created": case_created,
            "alert": alert_out(alert).model_dump(mode="json"),
            "case": case_out(case).model_dump(mode="json"),
        },
    )


def message(row: FeedEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "at": row.at.isoformat(),
        "case_id": row.case_id,
        "data": row.payload,
    }


def visible_filter(scope: set[int] | None):  # type: ignore[no-untyped-def]
    if scope is None:
        return True
    ids = list(scope)
    return or_(FeedEvent.centre_id.in_(ids), FeedEvent.routed_centre_id.in_(ids))


def is_visible(row: FeedEvent | dict[str, Any], scope: set[int] | None) -> bool:
    if scope is None:
        return True
    centre = row.centre_id if isinstance(row, FeedEvent) else row["centre_id"]
    routed = row.routed_centre_id if isinstance(row, FeedEvent) else row["routed_centre_id"]
    return centre in scope or routed in scope


def fetch_after(
    session: Session, after: int, scope: set[int] | None, limit: int = 500
) -> list[FeedEvent]:
    query = (
        select(FeedEvent)
        .where(FeedEvent.id > after, visible_filter(scope))
        .order_by(FeedEvent.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def last_id(session: Session) -> int:
    row = session.scalar(select(FeedEvent.id).order_by(FeedEvent.id.desc()).limit(1))
    return row or 0


# -- waking the hubs ---------------------------------------------------------------------
class Notifier:
    """After a commit that wrote feed rows: wake the local hub, tell other processes."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.channel = channel
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.local_hubs: list[FeedHub] = []
        self._quiet_until = 0.0  # after a Redis failure, skip publishing for a while

    def install(self, sessions: sessionmaker[Session]) -> None:
        event.listen(sessions, "after_commit", self._after_commit)

    def _after_commit(self, session: Session) -> None:
        if not session.info.pop(_DIRTY, False):
            return
        for hub in self.local_hubs:
            hub.wake_threadsafe()
        if time.monotonic() < self._quiet_until:
            return  # Redis was down a moment ago: do not make every commit wait for it
        try:
            self.client.publish(self.channel, b"1")
        except redis.RedisError as error:  # other processes fall back to polling
            self._quiet_until = time.monotonic() + 5.0
            log.debug("feed wake-up not published", extra={"error": str(error)})

    def close(self) -> None:
        self.client.close()


@dataclass(eq=False)
class Subscriber:
    user: str
    scope: set[int] | None
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(1000))
    overflowed: bool = False


class FeedHub:
    """Reads new feed rows once per wake-up and fans them out to the connected consoles."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        redis_url: str,
        channel: str,
        poll_interval_s: float = 1.0,
        retention_days: float = 30.0,
    ) -> None:
        self.sessions = sessions
        self.redis_url = redis_url
        self.channel = channel
        self.poll_interval_s = poll_interval_s
        self.retention_days = retention_days
        self._next_prune = 0.0
        self.subscribers: set[Subscriber] = set()
        self.delivered_up_to = 0
        self._recent: deque[int] = deque(maxlen=20_000)
        self._recent_set: set[int] = set()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        if any(not task.done() for task in self._tasks):
            return  # already running (a second lifespan of the same app)
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.delivered_up_to = await asyncio.to_thread(self._last_id)
        self._tasks = [
            asyncio.create_task(self._pump(), name="feed-pump"),
            asyncio.create_task(self._listen(), name="feed-redis"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)

    def _last_id(self) -> int:
        with self.sessions() as session:
            return last_id(session)

    def wake_threadsafe(self) -> None:
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake.set)

    def subscribe(self, user: str, scope: set[int] | None) -> Subscriber:
        subscriber = Subscriber(user, scope)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    async def _listen(self) -> None:
        # get_message with a timeout (not pubsub.listen) so a stop is noticed within a
        # second even if the client library swallows a cancellation during a read.
        backoff = 0.5
        while not self._stopping:
            client = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                backoff = 0.5
                while not self._stopping:
                    item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if item is not None and self._wake is not None:
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis down: the pump keeps polling the table
                log.debug("feed listener reconnecting", extra={"error": str(error)})
                if not self._stopping:
                    await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _pump(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            self._wake.clear()
            try:
                rows = await asyncio.to_thread(self._read_new)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("live feed read failed", extra={"error": str(error)})
                await asyncio.sleep(self.poll_interval_s)
                continue
            for row in rows:
                self._deliver(row)
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + 3600
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.prune)

    def prune(self) -> int:
        """Delete feed events older than the retention (a console older than that reloads
        ``GET /cases`` instead of resuming)."""
        cutoff = utcnow() - timedelta(days=self.retention_days)
        with self.sessions() as session:
            result = session.execute(delete(FeedEvent).where(FeedEvent.at < cutoff))
            session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def _read_new(self) -> list[dict[str, Any]]:
        # PostgreSQL assigns ids before commit, so a lower id can become visible after a
        # higher one: look back a little (by id and by time) and skip what was delivered.
        # SQLite has one writer at a time, so its ids become visible in order.
        with self.sessions() as session:
            ordered = session.get_bind().dialect.name == "sqlite"
            low = self.delivered_up_to if ordered else max(0, self.delivered_up_to - 200)
            since = utcnow() - timedelta(seconds=0 if ordered else 10)
            rows = session.scalars(
                select(FeedEvent)
                .where(FeedEvent.id > low)
                .where(or_(FeedEvent.id > self.delivered_up_to, FeedEvent.at >= since))
                .order_by(FeedEvent.id)
                .limit(2000)
            ).all()
            out = []
            for row in rows:
                if row.id in self._recent_set:
                    continue
                out.append(
                    {
                        "message": message(row),
                        "centre_id": row.centre_id,
                        "routed_centre_id": row.routed_centre_id,
                    }
                )
                self._remember(row.id)
            return out

    def _remember(self, feed_id: int) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(feed_id)
        self._recent_set.add(feed_id)
        self.delivered_up_to = max(self.delivered_up_to, feed_id)

    def _deliver(self, row: dict[str, Any]) -> None:
        for subscriber in list(self.subscribers):
            if not is_visible(row, subscriber.scope):
                continue
            try:
                subscriber.queue.put_nowait(row["message"])
            except asyncio.QueueFull:
                # A console this far behind reconnects and resumes with after=<last id>.
                subscriber.overflowed = True
                self.subscribers.discard(subscriber)
