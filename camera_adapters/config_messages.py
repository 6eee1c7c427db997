"""The camera-change message: how the API tells running pipeline workers about cameras.

The API writes, the pipeline reads; the format lives here, in the package both may import,
so neither re-implements the other's half. Over Redis (keys in ``RedisSettings``):

- a stream (``camera_config_stream``) with one entry per change, fields ``v`` (message
  version), ``op`` (``upsert`` | ``delete``), ``camera_id``, ``version`` (the camera's own
  counter, +1 per change: older versions are ignored), ``spec`` (the full ``CameraSpec`` as
  JSON, credentials included — Redis must be private), ``at`` (ISO 8601);
- a hash (``current_key(stream)``) with the latest upsert of every API-managed camera, so a
  worker that starts later loads the current set, then follows the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationError

from camera_adapters.spec import CameraSpec

MESSAGE_VERSION = 1


def current_key(stream: str) -> str:
    return f"{stream}:current"


def spec_json(spec: CameraSpec) -> dict[str, object]:
    """The spec as stored and sent to workers: they need the real credentials."""
    return spec.model_dump(mode="json", context={"reveal_secrets": True})


@dataclass(frozen=True)
class CameraChange:
    op: Literal["upsert", "delete"]
    camera_id: str
    version: int
    spec: CameraSpec | None = None  # None for a delete

    def stream_fields(self, at: datetime | None = None) -> dict[str, str]:
        return {
            "v": str(MESSAGE_VERSION),
            "op": self.op,
            "camera_id": self.camera_id,
            "version": str(self.version),
            "spec": "" if self.spec is None else _dumps(spec_json(self.spec)),
            "at": (at or datetime.now(UTC)).isoformat(),
        }

    def current_value(self) -> str:
        """The value kept in the current-state hash for an upsert."""
        assert self.spec is not None
        return _dumps({"version": self.version, "spec": spec_json(self.spec)})

    @classmethod
    def from_stream_fields(cls, fields: dict[str, str]) -> CameraChange:
        """Parse a stream entry; ValueError names what is wrong."""
        version = fields.get("v", "")
        if version != str(MESSAGE_VERSION):
            raise ValueError(f"camera-change message version {version!r} is not supported")
        op = fields.get("op")
        camera_id = fields.get("camera_id") or ""
        if op not in ("upsert", "delete") or not camera_id:
            raise ValueError(f"camera-change message needs op and camera_id, got {fields!r}")
        try:
            number = int(fields.get("version", ""))
        except ValueError:
            raise ValueError(f"camera {camera_id}: version is not a number") from None
        if op == "delete":
            return cls("delete", camera_id, number)
        return cls("upsert", camera_id, number, _parse_spec(camera_id, fields.get("spec", "")))

    @classmethod
    def from_current_value(cls, camera_id: str, value: str) -> CameraChange:
        try:
            data = json.loads(value)
            return cls(
                "upsert", camera_id, int(data["version"]), _validate(camera_id, data["spec"])
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"camera {camera_id}: unreadable current state: {error}") from None


def _parse_spec(camera_id: str, text: str) -> CameraSpec:
    try:
        return _validate(camera_id, json.loads(text))
    except json.JSONDecodeError as error:
        raise ValueError(f"camera {camera_id}: spec is not JSON: {error}") from None


def _validate(camera_id: str, data: object) -> CameraSpec:
    try:
        spec = CameraSpec.model_validate(data)
    except ValidationError as error:
        raise ValueError(f"camera {camera_id}: invalid spec: {error}") from None
    if spec.id != camera_id:
        raise ValueError(f"camera {camera_id}: the spec names camera {spec.id}")
    return spec


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))
