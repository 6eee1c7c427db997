"""The camera registry and how its changes reach running pipeline workers.

Cameras come from two places: the config file (``origin: config``, read-only through the
API: the file stays the source of truth) and the API (``origin: api``, stored here). Every
change to an API camera is published to Redis so pipeline workers apply it without a
restart: one ``CameraChange`` entry per change on the camera-config stream, and the latest
upsert of every API camera in its current-state hash (the format and keys are in
``camera_adapters/config_messages.py``, shared with the pipeline; see docs/api.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.organisation import ensure_location
from api.orm import Camera
from api.timeutil import utcnow
from camera_adapters.config_messages import CameraChange, current_key, spec_json
from camera_adapters.spec import CameraSpec

log = logging.getLogger(__name__)


def spec_of(camera: Camera) -> CameraSpec:
    return CameraSpec.model_validate(camera.spec)


def store_spec(spec: CameraSpec) -> dict:  # type: ignore[type-arg]
    """The spec as stored (and sent to pipeline workers): with the real credentials."""
    return spec_json(spec)


def sync_config_cameras(session: Session, cameras: list[CameraSpec]) -> int:
    """Mirror the config file's cameras into the registry (the caller commits).

    Their grid cells and the centres named in their locations are created when the
    organisation does not have them yet. A camera that left the file leaves the registry.
    """
    declared = {c.id for c in cameras}
    for spec in cameras:
        centre_id = ensure_location(session, spec.location)
        row = session.get(Camera, spec.id)
        data = store_spec(spec)
        if row is None:
            session.add(
                Camera(
                    id=spec.id,
                    name=spec.name,
                    origin="config",
                    spec=data,
                    grid_cell=spec.location.grid_cell,
                    centre_id=centre_id,
                )
            )
        elif row.origin == "config" and (row.spec != data or row.centre_id != centre_id):
            row.spec, row.name, row.grid_cell, row.centre_id = (
                data,
                spec.name,
                spec.location.grid_cell,
                centre_id,
            )
            row.version += 1
            row.updated_at = utcnow()
        elif row.origin == "api":
            log.warning(
                "camera id in the config file is also an API camera; the API one is kept",
                extra={"camera_id": spec.id},
            )
    stale = session.scalars(
        select(Camera).where(Camera.origin == "config", Camera.id.not_in(declared or {""}))
    ).all()
    for row in stale:
        session.delete(row)
    session.flush()
    return len(cameras)


@dataclass
class CameraPublisher:
    client: redis.Redis
    stream: str
    maxlen: int = 10_000

    def upsert(self, camera: Camera) -> bool:
        change = CameraChange("upsert", camera.id, camera.version, spec_of(camera))
        return self._send(change, current=change.current_value())

    def delete(self, camera_id: str, version: int) -> bool:
        return self._send(CameraChange("delete", camera_id, version), current=None)

    def _send(self, change: CameraChange, current: str | None) -> bool:
        camera_id = change.camera_id
        try:
            pipe = self.client.pipeline(transaction=True)
            if current is None:
                pipe.hdel(current_key(self.stream), camera_id)
            else:
                pipe.hset(current_key(self.stream), camera_id, current)
            pipe.xadd(self.stream, change.stream_fields(), maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
            pipe.execute()
            return True
        except redis.RedisError as error:
            log.warning(
                "camera change not published (republished at the next API start)",
                extra={"camera_id": camera_id, "error": str(error)},
            )
            return False

    def republish_all(self, session: Session) -> int:
        """Make the current-state hash match the registry (at API start)."""
        cameras = session.scalars(select(Camera).where(Camera.origin == "api")).all()
        try:
            known = {
                (k.decode() if isinstance(k, bytes) else k): json.loads(v)
                for k, v in self.client.hgetall(current_key(self.stream)).items()
            }
        except redis.RedisError:
            return 0
        sent = 0
        for camera in cameras:
            if known.get(camera.id, {}).get("version") != camera.version:
                sent += self.upsert(camera)
        for stale in set(known) - {c.id for c in cameras}:
            sent += self.delete(stale, int(known[stale].get("version", 0)) + 1)
        return sent
