"""What an ONVIF camera is and which streams it offers, turned into a runnable camera spec.

Uses onvif-zeep-async (the client Home Assistant uses) with WS-UsernameToken digest
authentication: GetSystemDateAndTime first (unauthenticated, so that the digest's timestamp can
follow the camera's clock, which is often wrong), GetServices, GetDeviceInformation, then
GetProfiles, GetStreamUri and GetSnapshotUri on the Media service and, where the camera offers
it, on Media2 (the only one that can describe H.265 streams). Media2 is called through
``onvif_media2.wsdl``, a subset written for SharpEyes because the library bundles Media only.

The camera's password is never stored in the result, in its reprs or in error messages.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from camera_adapters.redact import redact_text, redact_url, secret_forms
from camera_adapters.spec import CameraSpec, Location

log = logging.getLogger(__name__)

MEDIA2_NS = "http://www.onvif.org/ver20/media/wsdl"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
MEDIA2_WSDL = Path(__file__).with_name("onvif_media2.wsdl")
MEDIA2_BINDING = "{http://www.onvif.org/ver20/media/wsdl}Media2Binding"
DEFAULT_PORT = 80
UNASSIGNED = "unassigned"
STREAMABLE = ("H264", "H265", "HEVC", "JPEG", "MJPEG", "MPEG4")


class OnvifError(RuntimeError):
    """The device could not be read; the message says what failed and what to check."""


class OnvifAuthError(OnvifError):
    pass


class OnvifUnreachable(OnvifError):
    pass


@dataclass(frozen=True)
class DeviceAddress:
    host: str
    port: int
    scheme: Literal["http", "https"] = "http"

    @property
    def device_service(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/onvif/device_service"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_device_address(text: str) -> DeviceAddress:
    """``HOST``, ``HOST:PORT`` or ``http(s)://HOST[:PORT][/onvif/device_service]``."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty device address: give HOST, HOST:PORT or http://HOST:PORT")
    candidate = raw if "://" in raw else f"http://{raw}"
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{redact_url(raw)} is not a valid device address: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(
            f"{redact_url(raw)}: an ONVIF device is addressed by http:// or https:// (or a bare "
            "HOST[:PORT]); for an rtsp:// URL probe the stream itself"
        )
    if not parts.hostname:
        raise ValueError(f"{redact_url(raw)} has no host")
    if parts.username or parts.password:
        raise ValueError(
            "put the device's credentials in --username/--password, not in the address"
        )
    default = 443 if scheme == "https" else DEFAULT_PORT
    return DeviceAddress(parts.hostname, port or default, scheme)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DeviceInfo:
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    hardware_id: str | None = None


@dataclass(frozen=True)
class OnvifProfile:
    """One media profile: an encoder configuration the camera streams on its own URI."""

    token: str
    name: str
    service: Literal["media", "media2"]
    encoding: str | None = None  # H264, H265, JPEG, MPEG4 as the camera names them
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    gov_length: int | None = None  # frames from one keyframe to the next, if reported
    stream_uri: str | None = None
    snapshot_uri: str | None = None

    @property
    def keyframe_interval_s(self) -> float | None:
        if self.gov_length and self.fps:
            return self.gov_length / self.fps
        return None

    def describe(self) -> str:
        size = f"{self.width}×{self.height}" if self.width and self.height else "?×?"
        fps = f"{self.fps:g} fps" if self.fps else "? fps"
        gop = (
            f", keyframe every {self.keyframe_interval_s:.1f} s" if self.keyframe_interval_s else ""
        )
        return f"{self.token} ({self.name}): {self.encoding or '?'} {size} {fps}{gop}"


@dataclass(frozen=True)
class OnvifCamera:
    """What probing one device found. Holds the username, never the password."""

    address: DeviceAddress
    info: DeviceInfo
    profiles: tuple[OnvifProfile, ...]
    services: tuple[str, ...] = ()
    clock_offset_s: float | None = None  # camera clock minus ours
    username: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def media2(self) -> bool:
        return MEDIA2_NS in self.services

    def streamable_profiles(self) -> list[OnvifProfile]:
        return [p for p in self.profiles if p.stream_uri]

    def choose_profile(self, token: str | None = None, min_width: int = 640) -> OnvifProfile:
        """The profile to analyse: ``token`` if given, else the smallest H.264/H.265 stream
        at least ``min_width`` wide (a sub-stream is cheaper to decode and, at the model's
        416 px input, loses nothing), else the largest there is."""
        usable = self.streamable_profiles()
        if not usable:
            raise OnvifError(
                f"the device at {self.address} offers no stream URI in any media profile"
            )
        if token is not None:
            for profile in usable:
                if profile.token == token:
                    return profile
            tokens = ", ".join(p.token for p in usable)
            raise OnvifError(f"no media profile with token '{token}' (profiles: {tokens})")
        video = [p for p in usable if (p.encoding or "").upper() in ("H264", "H265", "HEVC")]
        pool = video or usable
        wide = [p for p in pool if (p.width or 0) >= min_width]
        if wide:
            return min(
                wide, key=lambda p: ((p.width or 0) * (p.height or 0), p.service != "media2")
            )
        return max(pool, key=lambda p: ((p.width or 0) * (p.height or 0), p.service == "media2"))

    def default_id(self) -> str:
        parts = [self.info.manufacturer, self.info.model, self.info.serial or self.address.host]
        text = "-".join(p for p in parts if p) or f"onvif-{self.address.host}"
        slug = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
        return (slug or "onvif-camera")[:64].rstrip("-_")

    def camera_spec(
        self,
        *,
        profile: OnvifProfile | None = None,
        camera_id: str | None = None,
        name: str | None = None,
        location: Location | None = None,
        password: str | None = None,
        transport: Literal["tcp", "udp"] = "tcp",
    ) -> CameraSpec:
        """A CameraSpec the pipeline can run: the chosen profile's RTSP URI (credentials
        stripped from it), the username and the password given here."""
        chosen = profile or self.choose_profile()
        assert chosen.stream_uri is not None
        source, embedded_user = _strip_userinfo(chosen.stream_uri)
        username = self.username or embedded_user
        return CameraSpec(
            id=camera_id or self.default_id(),
            name=name
            or " ".join(p for p in (self.info.manufacturer, self.info.model) if p)
            or f"ONVIF camera {self.address.host}",
            source=source,
            username=username,
            password=password if username else None,
            transport=transport,
            location=location
            or Location(
                district=UNASSIGNED, street=UNASSIGNED, community=UNASSIGNED, grid_cell=UNASSIGNED
            ),
        )


def _strip_userinfo(uri: str) -> tuple[str, str | None]:
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, None
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=host)), parts.username


def _rewrite_host(uri: str | None, host: str) -> str | None:
    """For cameras behind NAT that advertise their LAN address in every URI."""
    if uri is None:
        return None
    parts = urlsplit(uri)
    if not parts.hostname or parts.hostname == host:
        return uri
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    netloc = f"{userinfo}{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# -- the probe ---------------------------------------------------------------------------


def probe(
    address: str | DeviceAddress,
    username: str | None,
    password: str | None,
    *,
    timeout: float = 15.0,
    nat_override: bool = False,
) -> OnvifCamera:
    """Read a device (blocking): identity, services, media profiles with their URIs."""
    return asyncio.run(
        probe_async(address, username, password, timeout=timeout, nat_override=nat_override)
    )


async def probe_async(
    address: str | DeviceAddress,
    username: str | None,
    password: str | None,
    *,
    timeout: float = 15.0,
    nat_override: bool = False,
) -> OnvifCamera:
    target = address if isinstance(address, DeviceAddress) else parse_device_address(address)
    secrets = secret_forms(password)
    try:
        async with asyncio.timeout(timeout):
            return await _probe(target, username, password, nat_override)
    except OnvifError as error:
        raise type(error)(redact_text(str(error), secrets)) from None
    except TimeoutError:
        raise OnvifUnreachable(
            f"no complete answer from the ONVIF device at {target} within {timeout:g} s"
        ) from None
    except Exception as error:
        raise _explain(error, target, username, secrets) from None


async def _probe(
    target: DeviceAddress, username: str | None, password: str | None, nat_override: bool
) -> OnvifCamera:
    from onvif import ONVIFCamera  # imported here: it configures logging on import

    host = target.host if target.scheme == "http" else f"https://{target.host}"
    camera = ONVIFCamera(
        host,
        target.port,
        username,
        password,
        adjust_time=True,
        no_cache=True,
        nat_override=nat_override,
    )
    notes: list[str] = []
    try:
        await camera.update_xaddrs()
        devicemgmt = await camera.create_devicemgmt_service()
        raw_info = await devicemgmt.GetDeviceInformation()
        info = DeviceInfo(
            manufacturer=_text(raw_info, "Manufacturer"),
            model=_text(raw_info, "Model"),
            firmware=_text(raw_info, "FirmwareVersion"),
            serial=_text(raw_info, "SerialNumber"),
            hardware_id=_text(raw_info, "HardwareId"),
        )
        profiles: dict[str, OnvifProfile] = {}
        if MEDIA_NS in camera.xaddrs:
            for profile in await _media1_profiles(camera):
                profiles[profile.token] = profile
        if MEDIA2_NS in camera.xaddrs:
            try:
                for profile in await _media2_profiles(camera, username, password):
                    profiles[profile.token] = _merge(profiles.get(profile.token), profile)
            except Exception as error:  # Media1 results still stand
                if _is_auth_failure(error):
                    raise
                notes.append(f"Media2 is offered but failed: {type(error).__name__}: {error}")
        if not profiles and MEDIA_NS not in camera.xaddrs and MEDIA2_NS not in camera.xaddrs:
            notes.append("the device offers no media service (is it a camera?)")
        if nat_override:
            # Host only: the library's own rewrite (used for the service addresses) would
            # also put the ONVIF port into the RTSP and snapshot URIs.
            profiles = {
                token: replace(
                    p,
                    stream_uri=_rewrite_host(p.stream_uri, target.host),
                    snapshot_uri=_rewrite_host(p.snapshot_uri, target.host),
                )
                for token, p in profiles.items()
            }
        offset = camera.dt_diff.total_seconds() if camera.dt_diff is not None else None
        return OnvifCamera(
            address=target,
            info=info,
            profiles=tuple(profiles.values()),
            services=tuple(sorted(camera.xaddrs)),
            clock_offset_s=offset,
            username=username,
            notes=tuple(notes),
        )
    finally:
        await camera.close()


async def _media1_profiles(camera: Any) -> list[OnvifProfile]:
    media = await camera.create_media_service()
    found = []
    for raw in await media.GetProfiles() or []:
        token = raw.token
        encoder = getattr(raw, "VideoEncoderConfiguration", None)
        encoding = width = height = fps = gov = None
        if encoder is not None:
            encoding = str(encoder.Encoding) if encoder.Encoding is not None else None
            if encoder.Resolution is not None:
                width, height = encoder.Resolution.Width, encoder.Resolution.Height
            if encoder.RateControl is not None and encoder.RateControl.FrameRateLimit:
                fps = float(encoder.RateControl.FrameRateLimit)
            h264 = getattr(encoder, "H264", None)
            if h264 is not None and h264.GovLength:
                gov = int(h264.GovLength)
        stream_uri = snapshot_uri = None
        try:
            reply = await media.GetStreamUri(
                {
                    "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                    "ProfileToken": token,
                }
            )
            stream_uri = reply.Uri
        except Exception as error:
            if _is_auth_failure(error):
                raise
            log.info("GetStreamUri failed", extra={"profile": token, "error": str(error)})
        try:
            reply = await media.GetSnapshotUri({"ProfileToken": token})
            snapshot_uri = reply.Uri
        except Exception as error:
            if _is_auth_failure(error):
                raise
        found.append(
            OnvifProfile(
                token=token,
                name=str(raw.Name or token),
                service="media",
                encoding=encoding,
                width=width,
                height=height,
                fps=fps,
                gov_length=gov,
                stream_uri=stream_uri,
                snapshot_uri=snapshot_uri,
            )
        )
    return found


async def _media2_profiles(
    camera: Any, username: str | None, password: str | None
) -> list[OnvifProfile]:
    from onvif.client import ONVIFService

    service = ONVIFService(
        camera.xaddrs[MEDIA2_NS],
        username,
        password,
        str(MEDIA2_WSDL),
        True,
        no_cache=True,
        dt_diff=camera.dt_diff,
        binding_name=MEDIA2_BINDING,
        binding_key=("media2", None),
    )
    await service.setup()
    try:
        found = []
        for raw in await service.GetProfiles({"Type": ["VideoSource", "VideoEncoder"]}) or []:
            encoder = _child(raw.Configurations, "VideoEncoder")
            encoding = _leaf(encoder, "Encoding")
            width = _int(_leaf(encoder, "Resolution", "Width"))
            height = _int(_leaf(encoder, "Resolution", "Height"))
            fps_text = _leaf(encoder, "RateControl", "FrameRateLimit")
            gov = encoder.get("GovLength") if encoder is not None else None
            token = raw.token
            stream_uri = snapshot_uri = None
            for protocol in ("RTSP", "RtspUnicast"):  # RTP over RTSP over TCP, then UDP
                try:
                    reply = await service.GetStreamUri(
                        {"Protocol": protocol, "ProfileToken": token}
                    )
                    stream_uri = reply
                    break
                except Exception as error:
                    if _is_auth_failure(error):
                        raise
            try:
                reply = await service.GetSnapshotUri({"ProfileToken": token})
                snapshot_uri = reply
            except Exception as error:
                if _is_auth_failure(error):
                    raise
            found.append(
                OnvifProfile(
                    token=token,
                    name=str(raw.Name or token),
                    service="media2",
                    encoding=encoding,
                    width=width,
                    height=height,
                    fps=float(fps_text) if fps_text else None,
                    gov_length=_int(gov),
                    stream_uri=stream_uri,
                    snapshot_uri=snapshot_uri,
                )
            )
        return found
    finally:
        await service.close()


def _merge(media1: OnvifProfile | None, media2: OnvifProfile) -> OnvifProfile:
    """Media2 describes encoders better (H.265); keep Media1's URIs where Media2 had none."""
    if media1 is None:
        return media2
    return replace(
        media2,
        stream_uri=media2.stream_uri or media1.stream_uri,
        snapshot_uri=media2.snapshot_uri or media1.snapshot_uri,
        gov_length=media2.gov_length or media1.gov_length,
        fps=media2.fps or media1.fps,
    )


def fetch_snapshot(
    profile: OnvifProfile, username: str | None, password: str | None, *, timeout: float = 10.0
) -> bytes:
    """The profile's JPEG snapshot, with HTTP digest authentication (as cameras require)."""
    return asyncio.run(_fetch_snapshot(profile, username, password, timeout))


async def _fetch_snapshot(
    profile: OnvifProfile, username: str | None, password: str | None, timeout: float
) -> bytes:
    import aiohttp

    if not profile.snapshot_uri:
        raise OnvifError(f"profile '{profile.token}' has no snapshot URI")
    uri, _ = _strip_userinfo(profile.snapshot_uri)
    middlewares = (aiohttp.DigestAuthMiddleware(username, password or ""),) if username else ()
    try:
        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout), middlewares=middlewares
            ) as session,
            session.get(uri) as response,
        ):
            if response.status in (401, 403):
                raise OnvifAuthError(f"the camera refused the snapshot at {redact_url(uri)}")
            if response.status >= 300:
                raise OnvifError(f"snapshot {redact_url(uri)} answered HTTP {response.status}")
            return await response.read()
    except aiohttp.ClientError as error:
        raise OnvifUnreachable(f"cannot fetch the snapshot {redact_url(uri)}: {error}") from None
    except TimeoutError:
        raise OnvifUnreachable(f"no snapshot from {redact_url(uri)} within {timeout:g} s") from None


# -- reading replies -----------------------------------------------------------------------


def _text(obj: Any, name: str) -> str | None:
    value = getattr(obj, name, None)
    return None if value is None else str(value)


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _child(configurations: Any, name: str) -> Any:
    """The lxml element ``name`` among a Media2 profile's raw configurations."""
    if configurations is None:
        return None
    elements = getattr(configurations, "_value_1", None) or []
    for element in elements:
        if hasattr(element, "tag") and _local(element.tag) == name:
            return element
    return None


def _leaf(element: Any, *path: str) -> str | None:
    for name in path:
        if element is None:
            return None
        element = next((c for c in element if _local(c.tag) == name), None)
    if element is None or element.text is None:
        return None
    return element.text.strip()


def _int(value: object) -> int | None:
    try:
        return int(float(str(value))) if value is not None else None
    except ValueError:
        return None


# -- errors ---------------------------------------------------------------------------------


def _is_auth_failure(error: BaseException) -> bool:
    import zeep.exceptions

    if isinstance(error, zeep.exceptions.Fault):
        subcodes = [str(getattr(q, "localname", q)) for q in (error.subcodes or [])]
        text = f"{error.message} {error.code} {' '.join(subcodes)}".lower()
        return "notauthorized" in text.replace(" ", "") or "not authorized" in text
    if isinstance(error, zeep.exceptions.TransportError):
        return error.status_code in (401, 403)
    cause = error.__cause__ or error.__context__
    return cause is not None and cause is not error and _is_auth_failure(cause)


def _explain(
    error: BaseException, target: DeviceAddress, username: str | None, secrets: set[str]
) -> OnvifError:
    import aiohttp

    root: BaseException = error
    while root.__cause__ is not None and not isinstance(root, aiohttp.ClientError):
        root = root.__cause__
    if _is_auth_failure(error):
        who = f"user '{username}'" if username else "no credentials"
        return OnvifAuthError(
            f"the ONVIF device at {target} rejected {who} (WS-UsernameToken digest): check the "
            "username and password; digest authentication also needs the camera's clock to be "
            "within minutes of true time"
        )
    if isinstance(root, aiohttp.ClientConnectorError):
        os_error = root.os_error
        if isinstance(os_error, ConnectionRefusedError):
            reason = "connection refused"
        else:
            reason = redact_text(str(os_error.strerror or os_error), secrets)
        return OnvifUnreachable(
            f"cannot connect to the ONVIF device at {target}: {reason} — check the address and "
            "port (cameras often serve ONVIF on 80, 8000, 8080 or 8899)"
        )
    if isinstance(root, aiohttp.ClientError):
        return OnvifUnreachable(
            f"the ONVIF device at {target} broke off the exchange: "
            f"{redact_text(str(root), secrets)}"
        )
    text = redact_text(f"{type(error).__name__}: {error}", secrets)
    return OnvifError(f"the device at {target} did not answer as an ONVIF camera: {text}")
