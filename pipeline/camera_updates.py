"""Following the cameras managed through the API, so changes apply without a restart.

At start (and after every reconnect) the worker notes the stream's last entry, loads the
current-state hash and applies it — adding, changing and removing API cameras to match —
then follows the stream from the noted entry. Versions make this safe against overlap: a
change older than what the worker already applied is ignored. The message format and keys
are in ``camera_adapters/config_messages.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from camera_adapters.config_messages import CameraChange, current_key

log = logging.getLogger(__name__)

Apply = Callable[[CameraChange], None]
# How long one XREAD waits for changes. It must stay well under the client's socket timeout
# (5 s in AlertPublisher.from_settings): a wait as long as the timeout ends in a timeout
# error, which read as "Redis unreachable" every 5 s on an idle stream.
FOLLOW_BLOCK_MS = 2000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class CameraConfigFollower:
    """Applies camera changes from Redis to a running pipeline, on its own thread."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        apply: Apply,
        *,
        wants: Callable[[str], bool] = lambda _camera_id: True,
        reserved: frozenset[str] = frozenset(),
        block_ms: int = FOLLOW_BLOCK_MS,
    ) -> None:
        self.client = client
        self.stream = stream
        self.apply = apply
        self.wants = wants  # this worker's share of the API cameras (pipeline.shard)
        self.reserved = reserved  # ids of the config file's cameras: never replaced
        self.block_ms = block_ms
        self.versions: dict[str, int] = {}  # API cameras this worker runs → applied version
        self.applied = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="camera-updates", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                last_id = self.sync()
                backoff = 0.5
                while not self._stop.is_set():
                    last_id = self.follow(last_id)
            except redis.RedisError as error:
                log.warning(
                    "camera updates paused: Redis unreachable",
                    extra={"error": str(error), "retry_in_s": backoff},
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def sync(self) -> str:
        """Match the current-state hash; returns the stream position to follow from."""
        newest = self.client.xrevrange(self.stream, "+", "-", count=1)
        last_id = _text(newest[0][0]) if newest else "0-0"
        current = self.client.hgetall(current_key(self.stream))
        listed: set[str] = set()
        for raw_id, raw_value in current.items():
            camera_id = _text(raw_id)
            listed.add(camera_id)
            try:
                change = CameraChange.from_current_value(camera_id, _text(raw_value))
            except ValueError as error:
                log.error("camera update ignored", extra={"error": str(error)})
                continue
            self.handle(change)
        for gone in set(self.versions) - listed:  # deleted while this worker was away
            self.handle(CameraChange("delete", gone, self.versions[gone] + 1))
        return last_id

    def follow(self, last_id: str) -> str:
        """Apply the changes after ``last_id`` (waiting up to ``block_ms``)."""
        response = self.client.xread({self.stream: last_id}, count=100, block=self.block_ms)
        for _stream, entries in response or []:
            for entry_id, fields in entries:
                last_id = _text(entry_id)
                try:
                    change = CameraChange.from_stream_fields(
                        {_text(k): _text(v) for k, v in fields.items()}
                    )
                except ValueError as error:
                    log.error(
                        "camera update ignored", extra={"entry": last_id, "error": str(error)}
                    )
                    continue
                self.handle(change)
        return last_id

    def handle(self, change: CameraChange) -> bool:
        """Apply one change if it is for this worker and newer than what it has."""
        camera_id = change.camera_id
        if camera_id in self.reserved:
            log.warning(
                "API camera ignored: the config file has a camera with this id",
                extra={"camera": camera_id},
            )
            return False
        known = self.versions.get(camera_id)
        if known is not None and change.version <= known:
            return False
        if change.op == "upsert" and not self.wants(camera_id):
            return False
        if change.op == "delete" and known is None:
            return False  # never ran here
        try:
            self.apply(change)
        except Exception:  # one bad camera must not stop the updates of the others
            log.exception("camera update failed", extra={"camera": camera_id})
            return False
        if change.op == "delete":
            self.versions.pop(camera_id, None)
        else:
            self.versions[camera_id] = change.version
        self.applied += 1
        log.info(
            "camera update applied",
            extra={"camera": camera_id, "op": change.op, "version": change.version},
        )
        return True
