"""Service and camera health."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import redis
from fastapi import APIRouter, Request, Response
from sqlalchemy import text

from api.deps import DbSession
from api.schemas import ConsumerHealth, Health

router = APIRouter(tags=["health"])


def _version() -> str:
    try:
        return version("sharpeyes")
    except PackageNotFoundError:
        return "unknown"


@router.get("/health", response_model=Health)
def health(request: Request, response: Response, session: DbSession) -> Health:
    """200 when the database and Redis answer and the consumer is connected, else 503."""
    database = "ok"
    try:
        session.execute(text("SELECT 1"))
    except Exception as error:  # report, never raise, from a health check
        database = f"error: {type(error).__name__}"
    redis_state = "ok"
    try:
        request.app.state.redis.ping()
    except redis.RedisError as error:
        redis_state = f"error: {error}"
    consumer = request.app.state.consumer
    consumer_health = None
    if consumer is not None:
        if redis_state == "ok":
            consumer.refresh_gauges()
        stats = consumer.stats
        consumer_health = ConsumerHealth(
            name=consumer.name,
            connected=stats.connected,
            consumed=stats.consumed,
            cases_created=stats.cases_created,
            duplicates=stats.duplicates,
            dead_lettered=stats.dead_lettered,
            errors=stats.errors,
            last_error=stats.last_error,
            lag=stats.lag if redis_state == "ok" else None,
            reclaimed=stats.reclaimed,
            pending=stats.pending,
            dead_letters=stats.dead_letters,
        )
    healthy = (
        database == "ok"
        and redis_state == "ok"
        and (consumer_health is None or consumer_health.connected)
    )
    if not healthy:
        response.status_code = 503
    return Health(
        status="ok" if healthy else "degraded",
        database=database,
        redis=redis_state,
        consumer=consumer_health,
        version=_version(),
    )
