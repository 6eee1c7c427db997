"""Shared fixtures: real servers on 127.0.0.1, the real model, the sample data.

Every server is started by the tests on a free loopback port and stopped afterwards. A
missing system package is a setup failure (``make test`` installs them), never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.datafiles import DataFiles
from sharpeyes import sample_clips
from sharpeyes.devservers.redis_server import RedisServer, find_redis_binary
from sharpeyes.devservers.rtsp import RtspServer

pytest_plugins = ["tests.api_fixtures"]  # the API tests' databases and running app

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Encoded clips are cached per test session unless SHARPEYES_CACHE is set."""
    if "SHARPEYES_CACHE" not in os.environ:
        os.environ["SHARPEYES_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def data() -> DataFiles:
    return DataFiles.from_env()


@pytest.fixture(scope="session")
def sample_clip(data: DataFiles) -> Path:
    return sample_clips.demo_camera_clip(data)


@pytest.fixture(scope="session")
def detector(data: DataFiles):  # type: ignore[no-untyped-def]
    from models.onnx_detector import load_detector
    from models.settings import DetectorSettings

    return load_detector(DetectorSettings(), data)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh Debian redis-server per test (they start in ~10 ms)."""
    server = RedisServer(binary=find_redis_binary(), data_dir=tmp_path / "redis")
    with server:
        yield server


@pytest.fixture(scope="session")
def rtsp_server(sample_clip: Path) -> Iterator[RtspServer]:
    """One RTSP server with the sample clip at /cam1 and /cam2 (shared by the session)."""
    with RtspServer({"cam1": sample_clip, "cam2": sample_clip}) as server:
        yield server


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
