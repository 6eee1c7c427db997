"""The camera specification: where a stream comes from, where the camera stands, its zones.

This is the contract integrators write (YAML or the API) and both the pipeline and the API
read, so it lives in the lowest package and validates everything it can up front: a bad
zone must be rejected when the camera is added, not discovered at 3 a.m. as a silent rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from camera_adapters.ground_spec import GroundCalibration
from camera_adapters.redact import redact_url, secret_forms
from camera_adapters.zone_spec import ClusterSpec, Slug, ZoneSpec

SOURCE_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "file")


class Location(BaseModel):
    """Where the camera stands in the linkage-centre organisation (routes its alerts)."""

    model_config = ConfigDict(extra="forbid")

    district: str = Field(min_length=1, description="District (区) of the district centre.")
    street: str = Field(min_length=1, description="Street or town (街道/镇) sub-centre.")
    community: str = Field(min_length=1, description="Community or village (社区/村).")
    grid_cell: str = Field(min_length=1, description="Grid cell (网格) the camera belongs to.")
    address: str | None = Field(None, description="Free-text address shown to operators.")
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)


class CameraSpec(BaseModel):
    """One camera: its stream, its place in the organisation and its zones."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    name: str = Field(min_length=1)
    source: str = Field(
        description="Stream URL (rtsp://, rtsps://, http(s)://, file://) or a video file path. "
        "Credentials may be given here or in username/password."
    )
    username: str | None = Field(None, description="Stream user, if not in the URL.")
    password: SecretStr | None = Field(
        None,
        description="Stream password; use ${ENV_VAR} to keep it out of the file. Never shown "
        "in logs, errors, reprs or API output.",
    )
    location: Location
    zones: list[ZoneSpec] = Field(default_factory=list)
    enabled: bool = True
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport.")
    analysis_fps: float | None = Field(
        None, gt=0.0, le=30.0, description="Analyses per second; default from pipeline settings."
    )
    loop: bool = Field(False, description="Loop a file source (for demos and tests).")
    calibration: GroundCalibration | None = Field(
        None,
        description="Four image points and their ground positions in metres: enables people "
        "per m² per zone and clustering in metres (see docs/gathering.md).",
    )
    clusters: ClusterSpec | None = Field(
        None, description="Zone-free gathering: tight groups anywhere in the view (off if unset)."
    )

    @field_serializer("password")
    def _dump_password(self, password: SecretStr | None, info: SerializationInfo) -> object:
        """Masked in any dump, except where the caller stores or forwards the camera itself
        (the registry, the message to pipeline workers): ``context={"reveal_secrets": True}``."""
        if password is None:
            return None
        if (info.context or {}).get("reveal_secrets"):
            return password.get_secret_value()
        return password if info.mode == "python" else str(password)

    @field_validator("source")
    @classmethod
    def _valid_source(cls, source: str) -> str:
        source = source.strip()
        if "://" not in source:
            if not source:
                raise ValueError("source is empty: give an rtsp:// URL or a video file path")
            return source
        scheme = urlsplit(source).scheme.lower()
        if scheme not in SOURCE_SCHEMES:
            raise ValueError(
                f"unsupported source scheme '{scheme}://' in {redact_url(source)}: use one of "
                + ", ".join(f"{s}://" for s in SOURCE_SCHEMES)
            )
        if scheme != "file" and not urlsplit(source).hostname:
            raise ValueError(f"source URL {redact_url(source)} has no host")
        return source

    @model_validator(mode="after")
    def _unique_zone_ids(self) -> CameraSpec:
        seen: set[str] = set()
        for zone in self.zones:
            if zone.id in seen:
                raise ValueError(f"zone id '{zone.id}' is used twice in camera '{self.id}'")
            seen.add(zone.id)
        return self

    @model_validator(mode="after")
    def _zones_on_the_ground(self) -> CameraSpec:
        if self.calibration is not None:
            for zone in self.zones:
                problem = self.calibration.zone_problem(zone.polygon)
                if problem:
                    raise ValueError(f"zone '{zone.id}': {problem}")
        return self

    @property
    def is_file(self) -> bool:
        return "://" not in self.source or self.source.startswith("file://")

    def stream_url(self) -> str:
        """The URL to open, with username/password merged in when given separately."""
        if self.is_file:
            path = self.source.removeprefix("file://")
            return str(Path(path).expanduser())
        if self.username is None:
            return self.source
        parts = urlsplit(self.source)
        host = parts.netloc.rsplit("@", 1)[-1]
        userinfo = quote(self.username, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password.get_secret_value(), safe="")
        return parts._replace(netloc=f"{userinfo}@{host}").geturl()

    def secrets(self) -> set[str]:
        """Every form of this camera's password (separate field or inside the URL), so that
        messages about the camera can be scrubbed of it."""
        found = secret_forms(self.password.get_secret_value() if self.password else None)
        if not self.is_file:
            try:
                embedded = urlsplit(self.source).password
            except ValueError:
                embedded = None
            if embedded:
                found |= secret_forms(embedded) | secret_forms(unquote(embedded))
        return found

    def display_source(self) -> str:
        """The source as it may be shown anywhere: credentials masked."""
        return redact_url(self.source)

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        """Reprs (and so tracebacks and debug logs) show the source with credentials masked."""
        for name, value in super().__repr_args__():
            yield name, (self.display_source() if name == "source" else value)
