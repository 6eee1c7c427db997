"""Cameras for integrators: the registry, zones and thresholds, connection test, health."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import redis
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.cameras import spec_of, store_spec
from api.deps import DbSession, Principal, requires
from api.organisation import ensure_location
from api.orm import Alert, Camera, GridCell, Snapshot
from api.probe import ProbeRefused, ProbeResult, check_host, probe
from api.timeutil import utcnow
from camera_adapters.spec import CameraSpec, Location
from camera_adapters.zone_spec import ZoneSpec

router = APIRouter(prefix="/cameras", tags=["cameras"])

Reader = Annotated[Principal, Depends(requires("cameras.read"))]
Writer = Annotated[Principal, Depends(requires("cameras.write"))]
NOT_FOUND = {404: {"description": "No such camera (or not in your centre)"}}


class CameraOut(BaseModel):
    id: str
    name: str
    origin: str = Field(description="config (read-only here: edit the file) or api")
    source: str = Field(description="The stream URL with credentials masked.")
    username: str | None
    has_password: bool
    location: Location
    zones: list[ZoneSpec]
    enabled: bool
    transport: str
    analysis_fps: float | None
    grid_cell: str
    centre_id: int | None
    version: int
    created_at: datetime
    updated_at: datetime
    published: bool | None = Field(
        None, description="Whether this change reached Redis for the pipeline workers."
    )


class ProbeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=2000)
    username: str | None = Field(None, max_length=200)
    password: str | None = Field(None, max_length=200)


class ProbeOut(BaseModel):
    ok: bool
    stage: str
    message: str
    url: str
    address: str | None
    status: int | None
    server: str | None
    latency_ms: float | None
    media: list[str]


def camera_out(camera: Camera, published: bool | None = None) -> CameraOut:
    spec = spec_of(camera)
    return CameraOut(
        id=camera.id,
        name=camera.name,
        origin=camera.origin,
        source=spec.display_source(),
        username=spec.username,
        has_password=spec.password is not None,
        location=spec.location,
        zones=spec.zones,
        enabled=spec.enabled,
        transport=spec.transport,
        analysis_fps=spec.analysis_fps,
        grid_cell=camera.grid_cell,
        centre_id=camera.centre_id,
        version=camera.version,
        created_at=camera.created_at,
        updated_at=camera.updated_at,
        published=published,
    )


def visible_camera(session: Session, principal: Principal, camera_id: str) -> Camera:
    camera = session.get(Camera, camera_id)
    if camera is None or not principal.sees(camera.centre_id):
        raise HTTPException(404, f"camera '{camera_id}' does not exist")
    return camera


def editable(camera: Camera) -> None:
    if camera.origin == "config":
        raise HTTPException(
            409,
            f"camera '{camera.id}' is declared in the config file: change it there "
            "(the file is its source of truth) and restart the API and pipeline",
        )


def centre_for(session: Session, principal: Principal, spec: CameraSpec) -> int:
    """The community workstation of the camera's grid cell, within the writer's scope."""
    cell = session.get(GridCell, spec.location.grid_cell)
    if cell is None and principal.scope is not None:
        raise HTTPException(
            422,
            f"grid cell '{spec.location.grid_cell}' is not in your centre: use one of its grid "
            "cells (GET /centres) or ask an admin to add it",
        )
    centre_id = ensure_location(session, spec.location) if cell is None else cell.centre_id
    if not principal.sees(centre_id):
        raise HTTPException(422, f"grid cell '{spec.location.grid_cell}' is not in your centre")
    return centre_id


def publisher(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.camera_publisher


@router.get("", response_model=list[CameraOut])
def list_cameras(session: DbSession, principal: Reader) -> list[CameraOut]:
    """Config-file and API cameras in your centre."""
    query = select(Camera).order_by(Camera.id)
    if principal.scope is not None:
        query = query.where(Camera.centre_id.in_(list(principal.scope)))
    return [camera_out(c) for c in session.scalars(query)]


@router.get("/health")
def camera_health(request: Request, session: DbSession, principal: Reader) -> dict[str, Any]:
    """Latest health each pipeline worker reported for the cameras in your centre."""
    settings = request.app.state.config.redis
    try:
        raw = request.app.state.redis.hgetall(settings.health_key)
    except redis.RedisError as error:
        return {"cameras": {}, "error": f"Redis unavailable: {error}"}
    cameras = {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}
    if principal.scope is not None:
        visible = set(
            session.scalars(
                select(Camera.id).where(Camera.centre_id.in_(list(principal.scope)))
            ).all()
        )
        cameras = {k: v for k, v in cameras.items() if k in visible}
    return {"cameras": cameras}


@router.post(
    "/test", response_model=ProbeOut, responses={403: {}, 422: {}}, summary="Test a stream URL"
)
async def test_source(body: ProbeRequest, request: Request, principal: Writer) -> ProbeOut:
    """Probe a stream before saving it (RTSP DESCRIBE; internal addresses refused)."""
    return await _probe(request, body.source, body.username, body.password)


async def _probe(
    request: Request, source: str, username: str | None, password: str | None
) -> ProbeOut:
    settings = request.app.state.config.http.camera_probe
    try:
        result: ProbeResult = await run_in_threadpool(probe, source, settings, username, password)
    except ProbeRefused as refused:
        raise HTTPException(refused.status, str(refused)) from None
    return ProbeOut(**result.__dict__)


@router.post("", response_model=CameraOut, status_code=201, responses={409: {}, 422: {}})
def create_camera(
    spec: CameraSpec, request: Request, session: DbSession, principal: Writer
) -> CameraOut:
    """Add a camera; zones are validated (a self-intersecting zone is a 422)."""
    if session.get(Camera, spec.id) is not None:
        raise HTTPException(409, f"camera '{spec.id}' already exists: PUT /cameras/{spec.id}")
    centre_id = centre_for(session, principal, spec)
    camera = Camera(
        id=spec.id,
        name=spec.name,
        origin="api",
        spec=store_spec(spec),
        grid_cell=spec.location.grid_cell,
        centre_id=centre_id,
    )
    session.add(camera)
    session.commit()
    return camera_out(camera, publisher(request).upsert(camera))


@router.get("/{camera_id}", response_model=CameraOut, responses=NOT_FOUND)
def get_camera(camera_id: str, session: DbSession, principal: Reader) -> CameraOut:
    return camera_out(visible_camera(session, principal, camera_id))


@router.put("/{camera_id}", response_model=CameraOut, responses={**NOT_FOUND, 409: {}, 422: {}})
def replace_camera(
    camera_id: str, spec: CameraSpec, request: Request, session: DbSession, principal: Writer
) -> CameraOut:
    """Replace a camera's spec. A null password with an unchanged username keeps the stored
    password (it is never returned, so a form cannot send it back)."""
    camera = visible_camera(session, principal, camera_id)
    editable(camera)
    if spec.id != camera_id:
        raise HTTPException(422, f"the body's id '{spec.id}' differs from the URL's '{camera_id}'")
    old = spec_of(camera)
    if spec.password is None and spec.username == old.username and old.password is not None:
        spec = spec.model_copy(update={"password": old.password})
    return _save(request, session, principal, camera, spec)


@router.put(
    "/{camera_id}/zones", response_model=CameraOut, responses={**NOT_FOUND, 409: {}, 422: {}}
)
def replace_zones(
    camera_id: str,
    zones: list[ZoneSpec],
    request: Request,
    session: DbSession,
    principal: Writer,
) -> CameraOut:
    """Replace the zones and their gathering thresholds."""
    camera = visible_camera(session, principal, camera_id)
    editable(camera)
    data = {**camera.spec, "zones": [z.model_dump(mode="json") for z in zones]}
    try:
        spec = CameraSpec.model_validate(data)
    except ValueError as error:
        raise HTTPException(422, str(error).split("\n", 1)[-1].strip()) from None
    return _save(request, session, principal, camera, spec)


def _save(
    request: Request, session: Session, principal: Principal, camera: Camera, spec: CameraSpec
) -> CameraOut:
    camera.centre_id = centre_for(session, principal, spec)
    camera.spec = store_spec(spec)
    camera.name = spec.name
    camera.grid_cell = spec.location.grid_cell
    camera.version += 1
    camera.updated_at = utcnow()
    session.commit()
    return camera_out(camera, publisher(request).upsert(camera))


@router.delete("/{camera_id}", status_code=204, responses={**NOT_FOUND, 409: {}})
def delete_camera(camera_id: str, request: Request, session: DbSession, principal: Writer) -> None:
    """Remove an API camera; its cases stay."""
    camera = visible_camera(session, principal, camera_id)
    editable(camera)
    version = camera.version + 1
    session.delete(camera)
    session.commit()
    publisher(request).delete(camera_id, version)


@router.post(
    "/{camera_id}/test", response_model=ProbeOut, responses={**NOT_FOUND, 403: {}, 422: {}}
)
async def test_camera(camera_id: str, request: Request, principal: Writer) -> ProbeOut:
    """Probe a registered camera's stream with its stored credentials."""

    def load() -> CameraSpec:
        with request.app.state.sessions() as session:
            return spec_of(visible_camera(session, principal, camera_id))

    spec = await run_in_threadpool(load)
    if spec.is_file:
        raise HTTPException(422, f"camera '{camera_id}' reads a file, there is no stream to test")
    return await _probe(request, spec.source, spec.username, spec.password)


@router.get("/{camera_id}/health", responses=NOT_FOUND)
def one_camera_health(
    camera_id: str, request: Request, session: DbSession, principal: Reader
) -> dict[str, Any]:
    visible_camera(session, principal, camera_id)
    settings = request.app.state.config.redis
    try:
        raw = request.app.state.redis.hget(settings.health_key, camera_id)
    except redis.RedisError as error:
        raise HTTPException(503, f"Redis unavailable: {error}") from None
    if raw is None:
        return {"camera_id": camera_id, "state": "unknown", "reported": False}
    return {"camera_id": camera_id, "reported": True, **json.loads(raw)}


class OnvifProbeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(
        min_length=1,
        max_length=500,
        description="The device: HOST, HOST:PORT or http(s)://HOST[:PORT] (ONVIF is often on "
        "port 80, 8000, 8080 or 8899).",
    )
    username: str | None = Field(None, max_length=200)
    password: str | None = Field(None, max_length=200)


class OnvifProfileOut(BaseModel):
    token: str
    name: str
    service: str = Field(description="media (ONVIF Media) or media2 (Media2, H.265 aware)")
    encoding: str | None
    width: int | None
    height: int | None
    fps: float | None
    keyframe_interval_s: float | None
    stream_uri: str | None = Field(description="The RTSP URI, without credentials.")


class OnvifProbeOut(BaseModel):
    ok: bool
    stage: str = Field(description="connect, auth, onvif (not an ONVIF answer) or done")
    message: str
    address: str = Field(description="The device address that was contacted (checked IP).")
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    profiles: list[OnvifProfileOut] = Field(default_factory=list)
    recommended_profile: str | None = Field(
        None, description="The profile to analyse: the smallest H.264/H.265 stream ≥ 640 px."
    )
    suggested_id: str | None = None
    suggested_name: str | None = None
    notes: list[str] = Field(default_factory=list)


@router.post(
    "/onvif-probe",
    response_model=OnvifProbeOut,
    responses={403: {}, 422: {}},
    summary="Read an ONVIF camera's identity and streams",
)
async def onvif_probe_device(
    body: OnvifProbeRequest, request: Request, principal: Writer
) -> OnvifProbeOut:
    """Ask an ONVIF device for its identity and media profiles (GetProfiles, GetStreamUri),
    to add it as a camera by one of its RTSP URIs.

    Guarded like the connection test: the host is resolved once and must be public or in
    ``api.camera_probe.allowed_networks``, and every SOAP request goes to that checked
    address — service addresses the device advertises are rewritten to it, so a device
    cannot send the API elsewhere. A device that does not answer, refuses the credentials
    or is not ONVIF is ``ok: false`` with the ``stage`` it failed at.
    """
    from camera_adapters import onvif_probe

    settings = request.app.state.config.http.camera_probe
    try:
        target = onvif_probe.parse_device_address(body.address)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    try:
        address = await run_in_threadpool(
            check_host, target.host, target.port, settings, "the ONVIF probe"
        )
    except ProbeRefused as refused:
        raise HTTPException(refused.status, str(refused)) from None
    checked = onvif_probe.DeviceAddress(str(address), target.port, target.scheme)
    try:
        camera = await onvif_probe.probe_async(
            checked,
            body.username or None,
            body.password,
            timeout=max(10.0, 3 * settings.timeout_s),
            nat_override=True,  # every request to the checked address, never to an XAddr
        )
    except onvif_probe.OnvifError as error:
        stage = (
            "auth"
            if isinstance(error, onvif_probe.OnvifAuthError)
            else "connect"
            if isinstance(error, onvif_probe.OnvifUnreachable)
            else "onvif"
        )
        return OnvifProbeOut(ok=False, stage=stage, message=str(error), address=str(checked))
    profiles = [
        OnvifProfileOut(
            token=p.token,
            name=p.name,
            service=p.service,
            encoding=p.encoding,
            width=p.width,
            height=p.height,
            fps=p.fps,
            keyframe_interval_s=p.keyframe_interval_s,
            stream_uri=_without_userinfo(p.stream_uri),
        )
        for p in camera.profiles
    ]
    try:
        recommended: str | None = camera.choose_profile().token
        spec = camera.camera_spec(password=body.password)
        message = f"{len(camera.streamable_profiles())} stream(s); recommended: {recommended}"
    except onvif_probe.OnvifError as error:
        recommended, spec, message = None, None, str(error)
    return OnvifProbeOut(
        ok=recommended is not None,
        stage="done",
        message=message,
        address=str(checked),
        manufacturer=camera.info.manufacturer,
        model=camera.info.model,
        firmware=camera.info.firmware,
        serial=camera.info.serial,
        profiles=profiles,
        recommended_profile=recommended,
        suggested_id=spec.id if spec else camera.default_id(),
        suggested_name=spec.name if spec else None,
        notes=list(camera.notes),
    )


def _without_userinfo(uri: str | None) -> str | None:
    if not uri:
        return None
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


@router.get(
    "/{camera_id}/thumbnail.jpg",
    response_class=Response,
    responses={
        200: {
            "content": {"image/jpeg": {}},
            "description": "The JPEG; header X-Thumbnail-Source says live or alert",
        },
        404: {"description": "No such camera, or no picture of it"},
        503: {"description": "Redis unavailable"},
    },
    summary="The camera's current view (for drawing zones)",
)
def camera_thumbnail(
    camera_id: str,
    request: Request,
    session: DbSession,
    principal: Reader,
    fallback: Annotated[
        Literal["none", "alert"],
        Query(description="alert: when there is no live thumbnail, the newest alert snapshot"),
    ] = "none",
) -> Response:
    """The latest frame the camera's pipeline worker stored in Redis (refreshed with its
    health report, kept ``redis.thumbnail_ttl_s``). The API never decodes video."""
    camera = visible_camera(session, principal, camera_id)
    settings = request.app.state.config.redis
    problem = None
    try:
        data = request.app.state.redis.get(settings.thumbnail_key(camera.id))
    except redis.RedisError as error:
        data, problem = None, f"Redis unavailable: {error}"
    if data:
        return Response(
            data,
            media_type="image/jpeg",
            headers={"Cache-Control": "no-store", "X-Thumbnail-Source": "live"},
        )
    if fallback == "alert":
        row = session.execute(
            select(Snapshot.data, Snapshot.content_type, Alert.occurred_at)
            .join(Alert, Snapshot.alert_id == Alert.id)
            .where(Alert.camera_id == camera.id)
            .order_by(Alert.occurred_at.desc(), Alert.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            return Response(
                row.data,
                media_type=row.content_type,
                headers={
                    "Cache-Control": "no-store",
                    "X-Thumbnail-Source": "alert",
                    "X-Thumbnail-Taken-At": row.occurred_at.isoformat(),
                },
            )
    if problem is not None:
        raise HTTPException(503, problem)
    ttl = settings.thumbnail_ttl_s
    raise HTTPException(
        404,
        f"camera '{camera.id}' has no current picture: no pipeline worker has stored a frame "
        f"of it in the last {ttl} s (is the camera running and live? see "
        f"GET /cameras/{camera.id}/health)"
        + ("" if fallback == "alert" else "; ?fallback=alert serves its newest alert snapshot"),
    )
