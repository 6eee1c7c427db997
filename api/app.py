"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.auth import LoginThrottle, TokenSigner, ensure_bootstrap_admin, signing_key
from api.cameras import CameraPublisher, sync_config_cameras
from api.consumer import AlertConsumer
from api.db import make_engine, session_factory, upgrade
from api.escalation import Escalator
from api.feed import FeedHub, Notifier
from api.metrics import ApiMetrics
from api.organisation import import_organisation
from api.routes import (
    alerts,
    auth,
    cameras,
    cases,
    console,
    dead_letters,
    feed,
    health,
    organisation,
    stats,
    users,
)
from api.settings import ApiConfig
from api.workflow import WorkflowError

log = logging.getLogger(__name__)

CONSOLE_PATH = "/console"  # the operators' console (static files, api/console/)

TAGS = [
    {"name": "auth", "description": "Log in (OAuth2 password flow) for a bearer token."},
    {"name": "cases", "description": "The case workflow: acknowledge, dispatch, feedback, close."},
    {"name": "alerts", "description": "Alert events as the pipeline raised them."},
    {"name": "live feed", "description": "New alerts, case changes and escalations, pushed."},
    {"name": "statistics", "description": "Handling and closure rates, times, false alarms."},
    {"name": "cameras", "description": "The camera registry for integrators."},
    {"name": "organisation", "description": "Centres, grid cells and units."},
    {"name": "users", "description": "Users, roles and scopes (admins)."},
]


def bootstrap(sessions: sessionmaker[Session], config: ApiConfig) -> str:
    """Prepare the database for this config; returns the token signing key.

    Several API processes may start together: a lost race on a unique key is retried.
    """
    for attempt in (1, 2, 3):
        with sessions() as session:
            try:
                key = signing_key(session, config.auth.secret_key)
                if config.organisation is not None:
                    import_organisation(session, config.organisation)
                sync_config_cameras(session, config.cameras)
                session.commit()
                admin = config.auth.bootstrap_admin
                if admin is not None and ensure_bootstrap_admin(
                    session, admin.username, admin.password
                ):
                    log.info("bootstrap admin created", extra={"username": admin.username})
                return key
            except IntegrityError:
                session.rollback()
                if attempt == 3:
                    raise
    raise AssertionError("unreachable")


def create_app(config: ApiConfig | None = None) -> FastAPI:
    config = config or ApiConfig()
    engine = make_engine(config.database.url, echo=config.database.echo)
    if config.database.migrate_on_start:
        upgrade(engine)
    sessions = session_factory(engine, routing=config.routing)
    key = bootstrap(sessions, config)
    metrics = ApiMetrics()
    notifier = Notifier(config.redis.url, config.feed_channel)
    notifier.install(sessions)
    hub = FeedHub(
        sessions,
        config.redis.url,
        config.feed_channel,
        retention_days=config.feed_retention_days,
    )
    notifier.local_hubs.append(hub)
    escalator = Escalator(sessions, config.escalation)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        with sessions() as session:
            app.state.camera_publisher.republish_all(session)
        consumer = None
        if config.consumer.enabled:
            consumer = AlertConsumer(config.redis, config.consumer, sessions, metrics)
            consumer.start()
        app.state.consumer = consumer
        if config.escalation.enabled:
            escalator.start()
        try:
            yield
        finally:
            escalator.stop()
            if consumer is not None:
                consumer.stop()
            await hub.stop()
            notifier.close()
            app.state.redis.close()
            engine.dispose()

    app = FastAPI(
        title="SharpEyes linkage-centre API",
        description="Crowd-gathering alerts become cases that operators dispatch and close. "
        "Log in with POST /auth/token and send `Authorization: Bearer <token>`.",
        version="0.2.0",
        lifespan=lifespan,
        openapi_tags=TAGS,
    )
    app.state.config = config
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.consumer = None
    app.state.metrics = metrics
    app.state.signer = TokenSigner(key, config.auth.token_ttl_s)
    app.state.login_throttle = LoginThrottle()
    app.state.feed_hub = hub
    app.state.escalator = escalator
    app.state.redis = redis.Redis.from_url(
        config.redis.url, socket_timeout=5, socket_connect_timeout=3
    )
    app.state.camera_publisher = CameraPublisher(app.state.redis, config.redis.camera_config_stream)
    for module in (
        health,
        auth,
        cases,
        alerts,
        feed,
        stats,
        cameras,
        organisation,
        users,
        dead_letters,
    ):
        app.include_router(module.router)

    @app.exception_handler(WorkflowError)
    async def workflow_error(_request: Request, error: WorkflowError) -> JSONResponse:
        return JSONResponse({"detail": error.message, **error.extra}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for item in error.errors():
            problem = {k: v for k, v in item.items() if k in ("loc", "msg", "type")}
            problem["msg"] = str(problem.get("msg", "")).removeprefix("Value error, ")
            problems.append(problem)
        summary = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in problems
        )
        return JSONResponse({"detail": problems, "message": summary}, status_code=422)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    console.mount(app, CONSOLE_PATH)  # the operators' console; / redirects to it
    return app
