"""A minimal, standards-following ONVIF camera for the tests: SOAP 1.2 over HTTP.

Device service (GetSystemDateAndTime, GetServices, GetCapabilities, GetDeviceInformation),
Media (GetProfiles, GetStreamUri, GetSnapshotUri) and, optionally, Media2 (the same three).
Requests must carry a WS-Security UsernameToken with a PasswordDigest
(Base64(SHA-1(nonce + created + password))), a Created time within five minutes of the
device's clock (which can be set off true time, as real cameras' clocks often are) and a
nonce not seen before; plain-text passwords are refused. GetSystemDateAndTime is answered
without authentication, as ONVIF requires, so clients can learn the clock offset first.
Failures are SOAP faults with the ONVIF subcodes (ter:NotAuthorized, ter:ActionNotSupported).
Snapshots are JPEGs behind HTTP digest authentication (RFC 7616, MD5, qop=auth).

Real servers and sockets only; the stream URIs point at a real RTSP server. Binds 127.0.0.1
unless told otherwise (the multicast discovery test binds inside its own network namespace).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from lxml import etree

SOAP_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST_TYPE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)
NS = {
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
}
PREAUTH = {"GetSystemDateAndTime"}  # ONVIF Core: answered before authentication
MAX_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Profile:
    token: str
    name: str
    rtsp_uri: str
    width: int
    height: int
    fps: int
    gov_length: int
    encoding: str = "H264"


@dataclass
class DeviceConfig:
    username: str
    password: str
    profiles: list[Profile]
    manufacturer: str = "SharpEyes"
    model: str = "TestCam-1"
    firmware: str = "1.0.0"
    serial: str = "SE0001"
    hardware_id: str = "TC1"
    media2: bool = True
    clock_offset: timedelta = timedelta(0)
    snapshot_jpeg: bytes = b""
    host: str = "127.0.0.1"
    port: int = 0


@dataclass
class RequestLog:
    operations: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    snapshots: int = 0


class AuthFailure(Exception):
    pass


class OnvifTestDevice:
    """The device's HTTP server on a background thread."""

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.log = RequestLog()
        self._nonces: set[str] = set()
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer((config.host, config.port), self._handler_class())
        self._http.daemon_threads = True
        self.port = int(self._http.server_address[1])
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self.uuid = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_DNS, f'{config.serial}.sharpeyes')}"

    @property
    def base(self) -> str:
        host = self.config.host
        return f"http://{host}:{self.port}"

    @property
    def device_service(self) -> str:
        return f"{self.base}/onvif/device_service"

    def start(self) -> OnvifTestDevice:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5)

    def __enter__(self) -> OnvifTestDevice:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- SOAP -----------------------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.now(UTC) + self.config.clock_offset

    def handle_soap(self, path: str, body: bytes) -> tuple[int, str]:
        try:
            envelope = etree.fromstring(body)
        except etree.XMLSyntaxError:
            return 400, fault("Sender", "ter:WellFormed", "the request is not well-formed XML")
        soap_body = envelope.find(f"{{{SOAP_ENV}}}Body")
        if soap_body is None or len(soap_body) == 0:
            return 400, fault("Sender", "ter:InvalidArgs", "no SOAP body")
        request = soap_body[0]
        operation = etree.QName(request).localname
        service = path.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            self.log.operations.append(f"{service}:{operation}")
        if operation not in PREAUTH:
            try:
                self.authenticate(envelope)
            except AuthFailure as error:
                with self._lock:
                    self.log.rejected.append(f"{operation}: {error}")
                return 400, fault("Sender", "ter:NotAuthorized", "Sender not Authorized")
        handler = getattr(self, f"_{service}_{operation}", None)
        if handler is None:
            return 400, fault(
                "Receiver", "ter:ActionNotSupported", f"{operation} is not supported here"
            )
        return 200, envelope_of(handler(request))

    def authenticate(self, envelope: etree._Element) -> None:
        token = envelope.find(f".//{{{WSSE}}}UsernameToken")
        if token is None:
            raise AuthFailure("no UsernameToken")
        username = token.findtext(f"{{{WSSE}}}Username") or ""
        password = token.find(f"{{{WSSE}}}Password")
        nonce = token.findtext(f"{{{WSSE}}}Nonce") or ""
        created = token.findtext(f"{{{WSU}}}Created") or ""
        if password is None or password.get("Type") != DIGEST_TYPE:
            raise AuthFailure("only PasswordDigest is accepted")
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
            raw_nonce = base64.b64decode(nonce, validate=True)
        except ValueError as error:
            raise AuthFailure(f"bad Created or Nonce: {error}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if abs(when - self.now()) > MAX_CLOCK_SKEW:
            raise AuthFailure(f"Created {created} is too far from the device clock")
        expected = base64.b64encode(
            hashlib.sha1(raw_nonce + created.encode() + self.config.password.encode()).digest()
        ).decode()
        if username != self.config.username or (password.text or "").strip() != expected:
            raise AuthFailure("wrong username or password")
        with self._lock:
            if nonce in self._nonces:
                raise AuthFailure("nonce replayed")
            self._nonces.add(nonce)

    # -- device service ---------------------------------------------------------------------
    def _device_service_GetSystemDateAndTime(self, _request: etree._Element) -> str:
        now = self.now()
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false"
            "</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
            f"<tt:UTCDateTime><tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}"
            f"</tt:Minute><tt:Second>{now.second}</tt:Second></tt:Time><tt:Date><tt:Year>"
            f"{now.year}</tt:Year><tt:Month>{now.month}</tt:Month><tt:Day>{now.day}</tt:Day>"
            "</tt:Date></tt:UTCDateTime></tds:SystemDateAndTime>"
            "</tds:GetSystemDateAndTimeResponse>"
        )

    def _services(self) -> list[tuple[str, str, int, int]]:
        services = [
            (NS["tds"], f"{self.base}/onvif/device_service", 2, 60),
            (NS["trt"], f"{self.base}/onvif/media_service", 2, 60),
        ]
        if self.config.media2:
            services.append((NS["tr2"], f"{self.base}/onvif/media2_service", 2, 60))
        return services

    def _device_service_GetServices(self, _request: etree._Element) -> str:
        entries = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{xaddr}</tds:XAddr>"
            f"<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor>"
            "</tds:Version></tds:Service>"
            for ns, xaddr, major, minor in self._services()
        )
        return f"<tds:GetServicesResponse>{entries}</tds:GetServicesResponse>"

    def _device_service_GetCapabilities(self, _request: etree._Element) -> str:
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{self.base}/onvif/device_service</tt:XAddr></tt:Device>"
            f"<tt:Media><tt:XAddr>{self.base}/onvif/media_service</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            "</tt:StreamingCapabilities></tt:Media>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def _device_service_GetDeviceInformation(self, _request: etree._Element) -> str:
        c = self.config
        return (
            "<tds:GetDeviceInformationResponse>"
            f"<tds:Manufacturer>{escape(c.manufacturer)}</tds:Manufacturer>"
            f"<tds:Model>{escape(c.model)}</tds:Model>"
            f"<tds:FirmwareVersion>{escape(c.firmware)}</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{escape(c.serial)}</tds:SerialNumber>"
            f"<tds:HardwareId>{escape(c.hardware_id)}</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )

    # -- media (ver10) ------------------------------------------------------------------------
    def _profile(self, request: etree._Element) -> Profile | None:
        token = request.findtext(".//{*}ProfileToken")
        return next((p for p in self.config.profiles if p.token == token), None)

    def _media_service_GetProfiles(self, _request: etree._Element) -> str:
        items = []
        for p in self.config.profiles:
            if p.encoding not in ("H264", "JPEG", "MPEG4"):
                continue  # Media (ver10) cannot describe H.265: those live in Media2 only
            items.append(
                f'<trt:Profiles token="{escape(p.token)}" fixed="true">'
                f"<tt:Name>{escape(p.name)}</tt:Name>"
                '<tt:VideoSourceConfiguration token="vsc0"><tt:Name>source</tt:Name>'
                "<tt:UseCount>2</tt:UseCount><tt:SourceToken>video0</tt:SourceToken>"
                f'<tt:Bounds x="0" y="0" width="{p.width}" height="{p.height}"/>'
                "</tt:VideoSourceConfiguration>"
                f'<tt:VideoEncoderConfiguration token="vec-{escape(p.token)}">'
                f"<tt:Name>{escape(p.name)}</tt:Name><tt:UseCount>1</tt:UseCount>"
                f"<tt:Encoding>{p.encoding}</tt:Encoding>"
                f"<tt:Resolution><tt:Width>{p.width}</tt:Width><tt:Height>{p.height}"
                "</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality>"
                f"<tt:RateControl><tt:FrameRateLimit>{p.fps}</tt:FrameRateLimit>"
                "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>2048"
                "</tt:BitrateLimit></tt:RateControl>"
                f"<tt:H264><tt:GovLength>{p.gov_length}</tt:GovLength>"
                "<tt:H264Profile>Main</tt:H264Profile></tt:H264>"
                "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0"
                "</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port><tt:TTL>1</tt:TTL>"
                "<tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
                "<tt:SessionTimeout>PT60S</tt:SessionTimeout>"
                "</tt:VideoEncoderConfiguration></trt:Profiles>"
            )
        return f"<trt:GetProfilesResponse>{''.join(items)}</trt:GetProfilesResponse>"

    def _media_uri(self, uri: str) -> str:
        return (
            f"<tt:Uri>{escape(uri)}</tt:Uri><tt:InvalidAfterConnect>false"
            "</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            "<tt:Timeout>PT0S</tt:Timeout>"
        )

    def _media_service_GetStreamUri(self, request: etree._Element) -> str:
        profile = self._profile(request)
        if profile is None:
            raise SoapFault("Sender", "ter:NoProfile", "no such profile")
        return (
            "<trt:GetStreamUriResponse><trt:MediaUri>"
            f"{self._media_uri(profile.rtsp_uri)}</trt:MediaUri></trt:GetStreamUriResponse>"
        )

    def _media_service_GetSnapshotUri(self, request: etree._Element) -> str:
        profile = self._profile(request)
        if profile is None:
            raise SoapFault("Sender", "ter:NoProfile", "no such profile")
        uri = f"{self.base}/onvif/snapshot/{profile.token}.jpg"
        return (
            "<trt:GetSnapshotUriResponse><trt:MediaUri>"
            f"{self._media_uri(uri)}</trt:MediaUri></trt:GetSnapshotUriResponse>"
        )

    # -- media2 (ver20) ----------------------------------------------------------------------
    def _media2_service_GetProfiles(self, _request: etree._Element) -> str:
        items = "".join(
            f'<tr2:Profiles token="{escape(p.token)}" fixed="true">'
            f"<tr2:Name>{escape(p.name)}</tr2:Name><tr2:Configurations>"
            '<tr2:VideoSource token="vsc0"><tt:Name>source</tt:Name><tt:UseCount>2'
            "</tt:UseCount><tt:SourceToken>video0</tt:SourceToken>"
            f'<tt:Bounds x="0" y="0" width="{p.width}" height="{p.height}"/></tr2:VideoSource>'
            f'<tr2:VideoEncoder token="vec-{escape(p.token)}" GovLength="{p.gov_length}" '
            f'Profile="Main"><tt:Name>{escape(p.name)}</tt:Name><tt:UseCount>1</tt:UseCount>'
            f"<tt:Encoding>{p.encoding}</tt:Encoding><tt:Resolution><tt:Width>{p.width}"
            f"</tt:Width><tt:Height>{p.height}</tt:Height></tt:Resolution>"
            f'<tt:RateControl ConstantBitRate="false"><tt:FrameRateLimit>{p.fps}'
            "</tt:FrameRateLimit><tt:BitrateLimit>2048</tt:BitrateLimit></tt:RateControl>"
            "<tt:Quality>5</tt:Quality></tr2:VideoEncoder>"
            "</tr2:Configurations></tr2:Profiles>"
            for p in self.config.profiles
        )
        return f"<tr2:GetProfilesResponse>{items}</tr2:GetProfilesResponse>"

    def _media2_service_GetStreamUri(self, request: etree._Element) -> str:
        profile = self._profile(request)
        protocol = request.findtext("{*}Protocol")
        if profile is None:
            raise SoapFault("Sender", "ter:NoProfile", "no such profile")
        if protocol not in ("RTSP", "RtspUnicast", "RtspOverHttp"):
            raise SoapFault("Sender", "ter:InvalidArgVal", f"unsupported protocol {protocol}")
        return f"<tr2:GetStreamUriResponse><tr2:Uri>{escape(profile.rtsp_uri)}</tr2:Uri>" + (
            "</tr2:GetStreamUriResponse>"
        )

    def _media2_service_GetSnapshotUri(self, request: etree._Element) -> str:
        profile = self._profile(request)
        if profile is None:
            raise SoapFault("Sender", "ter:NoProfile", "no such profile")
        uri = f"{self.base}/onvif/snapshot/{profile.token}.jpg"
        return f"<tr2:GetSnapshotUriResponse><tr2:Uri>{uri}</tr2:Uri></tr2:GetSnapshotUriResponse>"

    # -- HTTP -------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        device = self
        realm = "SharpEyes TestCam"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    status, text = device.handle_soap(self.path, body)
                except SoapFault as error:
                    status, text = 400, fault(error.code, error.subcode, error.reason)
                self._send(status, text.encode(), "application/soap+xml; charset=utf-8")

            def do_GET(self) -> None:
                if not self.path.startswith("/onvif/snapshot/"):
                    self._send(404, b"not found", "text/plain")
                    return
                if not http_digest_ok(
                    self.headers.get("Authorization"),
                    "GET",
                    device.config.username,
                    device.config.password,
                    realm,
                ):
                    nonce = base64.b64encode(os.urandom(16)).decode()
                    challenge = (
                        f'Digest realm="{realm}", qop="auth", nonce="{nonce}", algorithm=MD5'
                    )
                    self._send(401, b"unauthorized", "text/plain", WWW_Authenticate=challenge)
                    return
                with device._lock:
                    device.log.snapshots += 1
                self._send(200, device.config.snapshot_jpeg, "image/jpeg")

        return Handler


class SoapFault(Exception):
    def __init__(self, code: str, subcode: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.subcode, self.reason = code, subcode, reason


def envelope_of(body: str) -> str:
    namespaces = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{SOAP_ENV}" '
        f"{namespaces}><env:Body>{body}</env:Body></env:Envelope>"
    )


def fault(code: str, subcode: str, reason: str) -> str:
    return envelope_of(
        f"<env:Fault><env:Code><env:Value>env:{code}</env:Value><env:Subcode><env:Value>"
        f"{subcode}</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="
        f'"en">{escape(reason)}</env:Text></env:Reason></env:Fault>'
    )


def http_digest_ok(
    header: str | None, method: str, username: str, password: str, realm: str
) -> bool:
    """Check an RFC 7616 (MD5, qop=auth) Authorization header."""
    if not header or not header.startswith("Digest "):
        return False
    fields: dict[str, str] = {}
    for part in _split_header(header[len("Digest ") :]):
        key, _, value = part.partition("=")
        fields[key.strip()] = value.strip().strip('"')
    if fields.get("username") != username or fields.get("realm") != realm:
        return False
    ha1 = hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{fields.get('uri', '')}".encode()).hexdigest()
    if fields.get("qop") == "auth":
        material = ":".join(
            [
                ha1,
                fields.get("nonce", ""),
                fields.get("nc", ""),
                fields.get("cnonce", ""),
                "auth",
                ha2,
            ]
        )
    else:
        material = f"{ha1}:{fields.get('nonce', '')}:{ha2}"
    return hashlib.md5(material.encode()).hexdigest() == fields.get("response")


def _split_header(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts
