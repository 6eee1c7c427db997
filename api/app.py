"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.consumer import AlertConsumer
from api.db import make_engine, session_factory, upgrade
from api.metrics import ApiMetrics
from api.routes import alerts, cases, dead_letters, health
from api.settings import ApiConfig

log = logging.getLogger(__name__)


def create_app(config: ApiConfig | None = None) -> FastAPI:
    config = config or ApiConfig()
    engine = make_engine(config.database.url, echo=config.database.echo)
    if config.database.migrate_on_start:
        upgrade(engine)
    sessions = session_factory(engine)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        consumer = None
        if config.consumer.enabled:
            consumer = AlertConsumer(config.redis, config.consumer, sessions, metrics)
            consumer.start()
        app.state.consumer = consumer
        try:
            yield
        finally:
            if consumer is not None:
                consumer.stop()
            app.state.redis.close()
            engine.dispose()

    app = FastAPI(
        title="SharpEyes linkage-centre API",
        description="Crowd-gathering alerts become cases that operators dispatch and close.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.consumer = None
    app.state.metrics = metrics
    app.state.redis = redis.Redis.from_url(
        config.redis.url, socket_timeout=5, socket_connect_timeout=3
    )
    app.include_router(health.router)
    app.include_router(alerts.router)
    app.include_router(cases.router)
    app.include_router(dead_letters.router)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
