"""API load benchmark: alerts/s ingested into cases, and live-feed delay with many operators.

Two measurements, each beside a baseline run in the same process on the same machine:

1. **Ingest** — N alert events (started/ended pairs of N/2 episodes, as the pipeline sends
   them) are put in a real Redis Stream, then the real ``AlertConsumer`` turns them into
   alerts and cases (routing, audit trail, feed rows) on SQLite and on PostgreSQL.
   Baseline: the same consumer group read and acknowledged with no database (the Redis
   ceiling). Reported: alerts/s and the ratio to the baseline.
2. **Live feed** — the API runs as its own process (``sharpeyes api``); 100 operators hold a
   WebSocket each; alerts are published at a steady rate and every operator's delay from
   XADD to receiving the alert is recorded. Baseline: the same number of Redis pub/sub
   subscribers receiving a message published at the same moment (the transport floor).
   Reported: p50 / p99 / max delay and the p99 ratio to the baseline.

Run: ``.venv/bin/python -m benchmarks.api_load`` (``--quick`` for a tiny run). Writes
``benchmarks/results/api_load.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import redis

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "sharpeyes-demo"


def _events(count: int, streets: int = 2) -> list[Any]:
    """Started/ended pairs; episodes alternate between ``streets`` streets (1: Riverside)."""
    from alerting.events import AlertEvent, AlertLocation, EventKind

    locations = [
        AlertLocation(
            district="Demo District",
            street="Riverside Street",
            community="Harbour Community",
            grid_cell="grid-07",
        ),
        AlertLocation(
            district="Demo District",
            street="Hillside Street",
            community="Orchard Community",
            grid_cell="grid-21",
        ),
    ]
    now = datetime.now(UTC)
    events = []
    for i in range(count):
        episode = f"bench-{i // 2:06d}-{os.getpid()}"
        kind = EventKind.STARTED if i % 2 == 0 else EventKind.ENDED
        events.append(
            AlertEvent(
                idempotency_key=f"{episode}:{kind.value}:{i % 2}",
                episode_id=episode,
                kind=kind,
                camera_id=f"cam-{i % 50:02d}",
                camera_name=f"Camera {i % 50}",
                location=locations[(i // 2) % streets],
                zone_id="front",
                zone_name="Front",
                count=25,
                peak_count=30,
                threshold=20,
                episode_started_at=now,
                occurred_at=now,
            )
        )
    return events


def _fill_stream(url: str, stream: str, events: list[Any]) -> None:
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(stream, event.stream_fields())
    pipe.execute()
    client.close()


def baseline_ingest(redis_url: str, count: int) -> float:
    """XREADGROUP + XACK of the same entries, no database: alerts/s."""
    stream, group = "bench:baseline", "bench"
    _fill_stream(redis_url, stream, _events(count))
    client = redis.Redis.from_url(redis_url)
    client.xgroup_create(stream, group, id="0")
    started = time.perf_counter()
    done = 0
    while done < count:
        response = client.xreadgroup(group, "c1", {stream: ">"}, count=50, block=1000)
        for _stream, entries in response or []:
            for entry_id, fields in entries:
                json.loads(fields[b"event"])  # the consumer parses every entry too
                client.xack(stream, group, entry_id)
                done += 1
    elapsed = time.perf_counter() - started
    client.close()
    return count / elapsed


def sharpeyes_ingest(redis_url: str, db_url: str, count: int) -> dict[str, Any]:
    from alerting.settings import RedisSettings
    from api.consumer import AlertConsumer
    from api.db import make_engine, session_factory, upgrade
    from api.orm import Case
    from api.seed import seed_demo
    from api.settings import ConsumerSettings, RoutingSettings

    engine = make_engine(db_url)
    upgrade(engine)
    sessions = session_factory(engine, routing=RoutingSettings())
    with sessions() as session:
        seed_demo(session, PASSWORD)
        session.commit()
    settings = RedisSettings(url=redis_url, stream="bench:alerts", consumer_group="bench-api")
    _fill_stream(redis_url, settings.stream, _events(count))
    consumer = AlertConsumer(settings, ConsumerSettings(batch=50, name="bench"), sessions, None)
    started = time.perf_counter()
    consumer.start()
    deadline = time.monotonic() + 600
    while consumer.stats.consumed < count and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    consumer.stop()
    with sessions() as session:
        cases = session.query(Case).count()
    engine.dispose()
    if consumer.stats.consumed < count:
        raise RuntimeError(f"only {consumer.stats.consumed}/{count} consumed: {consumer.stats}")
    return {"alerts_per_s": count / elapsed, "seconds": elapsed, "cases": cases}


# -- live feed ---------------------------------------------------------------------------
def _start_api(workdir: Path, redis_url: str, db_url: str, port: int) -> subprocess.Popen[bytes]:
    config = workdir / "api.yaml"
    config.write_text(
        f"redis: {{url: '{redis_url}'}}\n"
        f"database: {{url: '{db_url}'}}\n"
        f"api: {{host: 127.0.0.1, port: {port}}}\n"
        "auth: {secret_key: 'benchmark-signing-key-0123456789abcdef'}\n"
        "escalation: {enabled: false}\n"
        "logging: {level: WARNING}\n"
    )
    command = [sys.executable, "-m", "sharpeyes"]
    subprocess.run(
        [*command, "users", "seed-demo", "-c", str(config), "--password", PASSWORD],
        check=True,
        capture_output=True,
    )
    log = (workdir / "api.log").open("wb")
    process = subprocess.Popen(
        [*command, "api", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((workdir / "api.log").read_text()[-2000:])
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.2)
    return process


def _token(base: str, username: str) -> str:
    data = urllib.parse.urlencode({"username": username, "password": PASSWORD}).encode()
    with urllib.request.urlopen(f"{base}/auth/token", data=data, timeout=10) as response:
        return json.loads(response.read())["access_token"]


async def _feed_delays(
    base_ws: str, tokens: list[str], redis_url: str, alerts: int, rate: float
) -> tuple[list[float], int]:
    import websockets

    from alerting.publisher import AlertPublisher
    from alerting.settings import RedisSettings

    published: dict[str, float] = {}
    delays: list[float] = []
    sockets = [
        await websockets.connect(f"{base_ws}/feed/ws?token={token}", max_queue=None)
        for token in tokens
    ]
    for ws in sockets:
        json.loads(await ws.recv())  # hello

    async def listen(ws) -> None:  # type: ignore[no-untyped-def]
        got = 0
        while got < alerts:
            message = json.loads(await ws.recv())
            if message.get("type") != "alert":
                continue
            received = time.time()
            event_id = message["data"]["alert"]["event_id"]
            delays.append(received - published[event_id])
            got += 1

    listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
    publisher = AlertPublisher.from_settings(RedisSettings(url=redis_url))
    events = [e for e in _events(alerts * 2, streets=1) if e.kind.value == "started"]
    for event in events:
        published[event.event_id] = time.time()
        await asyncio.to_thread(publisher.publish, event)
        await asyncio.sleep(1.0 / rate)
    _done, pending = await asyncio.wait(listeners, timeout=60)
    for task in pending:
        task.cancel()
    for ws in sockets:
        await ws.close()
    publisher.close()
    return delays, len(pending)


async def _pubsub_delays(
    redis_url: str, subscribers: int, messages: int, rate: float
) -> list[float]:
    import redis.asyncio as aioredis

    clients = [aioredis.Redis.from_url(redis_url) for _ in range(subscribers)]
    subs = [c.pubsub() for c in clients]
    for sub in subs:
        await sub.subscribe("bench:baseline-feed")
    delays: list[float] = []

    async def listen(sub) -> None:  # type: ignore[no-untyped-def]
        got = 0
        while got < messages:
            item = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
            if item is None:
                continue
            delays.append(time.time() - float(item["data"]))
            got += 1

    tasks = [asyncio.create_task(listen(s)) for s in subs]
    publisher = aioredis.Redis.from_url(redis_url)
    for _ in range(messages):
        await publisher.publish("bench:baseline-feed", repr(time.time()))
        await asyncio.sleep(1.0 / rate)
    await asyncio.wait(tasks, timeout=60)
    for sub in subs:
        await sub.aclose()
    for client in [*clients, publisher]:
        await client.aclose()
    return delays


def _summary(delays: list[float]) -> dict[str, float]:
    values = np.array(delays) * 1000
    return {
        "samples": len(delays),
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p99_ms": round(float(np.percentile(values, 99)), 1),
        "max_ms": round(float(values.max()), 1),
    }


def feed_latency(
    workdir: Path, redis_url: str, db_url: str, operators: int, alerts: int, rate: float
) -> dict[str, Any]:
    from sharpeyes.devservers.rtsp import free_port

    port = free_port()
    process = _start_api(workdir, redis_url, db_url, port)
    try:
        base = f"http://127.0.0.1:{port}"
        # Operators of both streets and the district: each sees the alerts of its scope;
        # the benchmark's alerts are all in Riverside, so Riverside operators are used.
        token = _token(base, "operator")
        delays, missing = asyncio.run(
            _feed_delays(f"ws://127.0.0.1:{port}", [token] * operators, redis_url, alerts, rate)
        )
    finally:
        process.terminate()
        process.wait(20)
    result = _summary(delays)
    result["operators_missing_alerts"] = missing
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=2000, help="events ingested per database")
    parser.add_argument("--operators", type=int, default=100, help="live-feed WebSockets")
    parser.add_argument("--feed-alerts", type=int, default=60, help="alerts pushed to the feed")
    parser.add_argument("--rate", type=float, default=4.0, help="feed alerts per second")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--quick", action="store_true", help="a tiny run (for tests)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.alerts, args.operators, args.feed_alerts, args.rate = 40, 5, 5, 10.0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    from sharpeyes.devservers.postgres import PostgresServer
    from sharpeyes.devservers.redis_server import RedisServer, find_redis_binary

    report: dict[str, Any] = {
        "benchmark": "api_load",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": round(os.getloadavg()[0], 2),
        },
        "config": {
            "alerts": args.alerts,
            "operators": args.operators,
            "feed_alerts": args.feed_alerts,
            "rate_per_s": args.rate,
        },
        "ingest": {},
        "feed": {},
    }
    with tempfile.TemporaryDirectory(prefix="sharpeyes-bench-") as tmp:
        workdir = Path(tmp)
        postgres = PostgresServer().start() if "postgresql" in backends else None
        try:
            for backend in backends:
                with RedisServer(
                    binary=find_redis_binary(), data_dir=workdir / f"r-{backend}"
                ) as server:
                    baseline = baseline_ingest(server.url, args.alerts)
                    if backend == "sqlite":
                        db_url = f"sqlite:///{workdir / 'ingest.db'}"
                        feed_db = f"sqlite:///{workdir / 'feed.db'}"
                    else:
                        assert postgres is not None
                        db_url = postgres.create_database("ingest")
                        feed_db = postgres.create_database("feed")
                    ours = sharpeyes_ingest(server.url, db_url, args.alerts)
                    report["ingest"][backend] = {
                        "baseline_redis_only_alerts_per_s": round(baseline, 1),
                        "sharpeyes_alerts_per_s": round(ours["alerts_per_s"], 1),
                        "ratio_to_baseline": round(ours["alerts_per_s"] / baseline, 4),
                        "cases": ours["cases"],
                    }
                    print(f"ingest {backend}: {report['ingest'][backend]}", flush=True)
                    pubsub = _summary(
                        asyncio.run(
                            _pubsub_delays(server.url, args.operators, args.feed_alerts, args.rate)
                        )
                    )
                    feed = (
                        feed_latency(
                            workdir / backend,
                            server.url,
                            feed_db,
                            args.operators,
                            args.feed_alerts,
                            args.rate,
                        )
                        if (workdir / backend).mkdir() is None
                        else {}
                    )
                    report["feed"][backend] = {
                        "baseline_redis_pubsub": pubsub,
                        "sharpeyes_feed": feed,
                        "p99_ratio_to_baseline": round(
                            feed["p99_ms"] / max(pubsub["p99_ms"], 0.1), 1
                        ),
                    }
                    print(f"feed {backend}: {report['feed'][backend]}", flush=True)
        finally:
            if postgres is not None:
                postgres.stop()
    report["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "api_load.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "api_load.md").write_text(markdown(report))
    print(f"report: {args.out / 'api_load.md'}")
    return 0


def markdown(report: dict[str, Any]) -> str:
    config = report["config"]
    lines = [
        "# API load benchmark",
        "",
        f"Run {report['when']} on {report['machine']['cpus']} CPUs, Python "
        f"{report['machine']['python']}, 1-minute load average "
        f"{report['machine']['load_average_at_start']} → {report['machine']['load_average_at_end']}"
        " (above the CPU count means other work shared the machine). "
        "Re-run: `.venv/bin/python -m benchmarks.api_load`.",
        "",
        f"## Ingest ({config['alerts']} alert events through the real consumer)",
        "",
        "| database | baseline: Redis only (alerts/s) | SharpEyes (alerts/s) | ratio | cases |",
        "|---|---:|---:|---:|---:|",
    ]
    for backend, row in report["ingest"].items():
        lines.append(
            f"| {backend} | {row['baseline_redis_only_alerts_per_s']} | "
            f"{row['sharpeyes_alerts_per_s']} | {row['ratio_to_baseline']} | {row['cases']} |"
        )
    lines += [
        "",
        f"## Live feed ({config['operators']} operators on WebSockets, {config['feed_alerts']} "
        f"alerts at {config['rate_per_s']}/s; delay from XADD to each operator's WebSocket)",
        "",
        "| database | baseline pub/sub p50 / p99 (ms) | SharpEyes p50 / p99 / max (ms) | "
        "p99 ratio | samples | operators missing alerts |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for backend, row in report["feed"].items():
        base, ours = row["baseline_redis_pubsub"], row["sharpeyes_feed"]
        lines.append(
            f"| {backend} | {base['p50_ms']} / {base['p99_ms']} | {ours['p50_ms']} / "
            f"{ours['p99_ms']} / {ours['max_ms']} | {row['p99_ratio_to_baseline']} | "
            f"{ours['samples']} | {ours['operators_missing_alerts']} |"
        )
    lines += [
        "",
        "The SharpEyes feed path is stream → consumer → database commit → hub wake-up → "
        "database read → fan-out; the baseline is only the last hop (Redis pub/sub to the same "
        "number of subscribers). Numbers from a shared 2-core machine are noisy; compare ratios.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
