"""Property-based requests generated from the OpenAPI schema: no input may cause a 5xx.

Runs against a real app (SQLite, a real Redis) seeded with the demo organisation, a case,
a camera and feedback, so generated ids sometimes hit real objects. Every request is made
as the global admin (the widest permissions, so the handlers run instead of stopping at a
401/403). Bounded: a fixed number of examples per operation, no shrinking deadline.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from sharpeyes.devservers.redis_server import RedisServer, find_redis_binary
from tests.api_fixtures import Api, make_config, running_api

EXAMPLES = 15  # per operation: about 30 operations, a few hundred requests


@pytest.fixture(scope="module")
def seeded_api() -> Iterator[Api]:
    with tempfile.TemporaryDirectory(prefix="sharpeyes-st-") as tmp:
        server = RedisServer(binary=find_redis_binary(), data_dir=Path(tmp) / "redis")
        with server, running_api(make_config(f"sqlite:///{tmp}/st.db", server.url)) as api:
            case = api.post("operator", "/cases", json={"title": "Seed case"}).json()
            api.post("operator", f"/cases/{case['id']}/transitions", json={"to": "acknowledged"})
            units = api.units("dispatcher")
            api.post(
                "dispatcher",
                f"/cases/{case['id']}/dispatches",
                json={"unit_ids": [units["Riverside police station"]]},
            )
            api.post("operator", f"/cases/{case['id']}/feedback", json={"note": "seed"})
            yield api


def test_no_server_errors(seeded_api: Api) -> None:
    """Every operation of the schema, with generated parameters and bodies."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", seeded_api.app)
    headers = seeded_api.headers("admin")
    failures: list[str] = []
    operations = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query} {case.body!r:.200}"
                    f" → {response.status_code}: {response.text[:300]}"
                )

        run()
    assert operations >= 25, f"only {operations} operations in the schema"
    assert not failures, "server errors:\n" + "\n".join(failures[:20])
