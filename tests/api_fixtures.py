"""Fixtures for the API tests: a PostgreSQL cluster, a database per test on SQLite or
PostgreSQL, and a running app with the demo organisation and users.

Registered as a pytest plugin in tests/conftest.py; import the helpers (Api, make_config,
running_api) from here.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerting.settings import RedisSettings
from api.app import create_app
from api.settings import ApiConfig, AuthSettings, DatabaseSettings, EscalationSettings
from sharpeyes.devservers.postgres import PostgresServer

PASSWORD = "sharpeyes-demo"
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL 15 cluster per test session (a database per test inside it)."""
    with PostgresServer() as server:
        yield server


def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'api.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test runs once on SQLite and once on PostgreSQL."""
    return database_url(request.param, tmp_path, request)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


def make_config(db: str, redis_url: str, **changes: Any) -> ApiConfig:
    values: dict[str, Any] = {
        "database": DatabaseSettings(url=db),
        "redis": RedisSettings(url=redis_url),
        "auth": AuthSettings(secret_key="k" * 40),
        "escalation": EscalationSettings(enabled=False),
    }
    values.update(changes)
    return ApiConfig(**values)


@dataclass
class Api:
    """A running app (TestClient) with the demo organisation and users seeded."""

    client: TestClient
    config: ApiConfig
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def app(self):  # type: ignore[no-untyped-def]
        return self.client.app

    def token(self, username: str) -> str:
        if username not in self.tokens:
            response = self.client.post(
                "/auth/token", data={"username": username, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            self.tokens[username] = response.json()["access_token"]
        return self.tokens[username]

    def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}

    def get(self, username: str, url: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return self.client.get(url, headers=self.headers(username), **kwargs)

    def post(self, username: str, url: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        headers = {**self.headers(username), **kwargs.pop("headers", {})}
        return self.client.post(url, headers=headers, **kwargs)

    def put(self, username: str, url: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return self.client.put(url, headers=self.headers(username), **kwargs)

    def patch(self, username: str, url: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return self.client.patch(url, headers=self.headers(username), **kwargs)

    def delete(self, username: str, url: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return self.client.delete(url, headers=self.headers(username), **kwargs)

    def centre(self, code: str) -> int:
        centres = self.get("admin", "/centres").json()
        return next(c["id"] for c in centres if c["code"] == code)

    def units(self, username: str = "admin") -> dict[str, int]:
        return {u["name"]: u["id"] for u in self.get(username, "/units").json()}


def start_api(config: ApiConfig) -> Iterator[Api]:
    from api.seed import seed_demo

    app = create_app(config)
    with app.state.sessions() as session:
        seed_demo(session, PASSWORD)
        session.commit()
    with TestClient(app) as client:
        yield Api(client, config)


running_api = contextlib.contextmanager(start_api)


@pytest.fixture
def api(db_url: str, redis_server) -> Iterator[Api]:  # type: ignore[no-untyped-def]
    """The app on SQLite and on PostgreSQL, with the demo organisation and users."""
    yield from start_api(make_config(db_url, redis_server.url))


@pytest.fixture
def sqlite_api(sqlite_url: str, redis_server) -> Iterator[Api]:  # type: ignore[no-untyped-def]
    """The app on SQLite only (for tests whose subject does not depend on the database)."""
    yield from start_api(make_config(sqlite_url, redis_server.url))
