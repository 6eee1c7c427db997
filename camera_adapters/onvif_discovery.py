"""Finding ONVIF cameras with WS-Discovery (the wsdiscovery library's messages and daemon).

Two ways to probe for NetworkVideoTransmitter devices:

- **multicast** (the usual way): a Probe to 239.255.255.250:3702 on every local interface
  through wsdiscovery's ThreadedWSDiscovery. Multicast does not cross routers, so this finds
  cameras on the same network segment only, and wsdiscovery skips loopback interfaces.
- **directed** (WS-Discovery 1.1 §5.2.2): the same Probe sent unicast to HOST:PORT — for a
  camera on another subnet whose address is known, or a discovery proxy. It uses wsdiscovery's
  own message building and parsing over a UDP socket bound only to the local address that
  reaches the target.

Either way the answers are ProbeMatches parsed by wsdiscovery; a device is reported with its
endpoint reference, its XAddrs (device service URLs) and its scopes (name, hardware,
location, profiles).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

NVT_NAMESPACE = "http://www.onvif.org/ver10/network/wsdl"
NVT_TYPE = "NetworkVideoTransmitter"
DISCOVERY_PORT = 3702


@dataclass(frozen=True)
class DiscoveredDevice:
    epr: str  # endpoint reference: the device's stable identity (urn:uuid:…)
    xaddrs: tuple[str, ...]  # device service URLs
    scopes: tuple[str, ...]
    types: tuple[str, ...]
    responder: str | None = None  # the address the answer came from

    def scope(self, kind: str) -> str | None:
        """The value of an ``onvif://www.onvif.org/<kind>/<value>`` scope, decoded."""
        prefix = f"onvif://www.onvif.org/{kind}/"
        for scope in self.scopes:
            if scope.lower().startswith(prefix):
                return unquote(scope[len(prefix) :])
        return None

    @property
    def name(self) -> str | None:
        return self.scope("name")

    @property
    def hardware(self) -> str | None:
        return self.scope("hardware")

    @property
    def location(self) -> str | None:
        return self.scope("location")

    @property
    def address(self) -> str | None:
        """HOST:PORT of the first XAddr, ready for ``sharpeyes cameras probe``."""
        for xaddr in self.xaddrs:
            parts = urlsplit(xaddr)
            if parts.hostname:
                host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
                default = 443 if parts.scheme == "https" else 80
                return f"{host}:{parts.port or default}"
        return None

    def as_dict(self) -> dict[str, object]:
        return {
            "epr": self.epr,
            "address": self.address,
            "xaddrs": list(self.xaddrs),
            "name": self.name,
            "hardware": self.hardware,
            "location": self.location,
            "scopes": list(self.scopes),
            "types": list(self.types),
            "responder": self.responder,
        }


def parse_target(text: str) -> tuple[str, int]:
    """``HOST`` or ``HOST:PORT`` (default 3702) for a directed probe."""
    raw = text.strip()
    try:
        parts = urlsplit(f"udp://{raw}")
        port = parts.port
    except ValueError:
        raise ValueError(f"'{raw}' is not HOST or HOST:PORT") from None
    if not parts.hostname:
        raise ValueError(f"'{raw}' has no host: give HOST or HOST:PORT")
    return parts.hostname, port or DISCOVERY_PORT


def discover(
    timeout: float = 3.0,
    *,
    targets: Sequence[tuple[str, int]] = (),
    multicast: bool = True,
) -> list[DiscoveredDevice]:
    """Probe for ONVIF cameras; each device once (by endpoint reference), sorted by address."""
    found: dict[str, DiscoveredDevice] = {}
    if targets:
        for device in _directed(targets, timeout):
            found.setdefault(device.epr, device)
    if multicast:
        for device in _multicast(timeout):
            found.setdefault(device.epr, device)
    return sorted(found.values(), key=lambda d: (d.address or "", d.epr))


def _nvt_type():  # type: ignore[no-untyped-def]
    from wsdiscovery import QName

    return QName(NVT_NAMESPACE, NVT_TYPE, "dn")


def _multicast(timeout: float) -> list[DiscoveredDevice]:
    from wsdiscovery.discovery import ThreadedWSDiscovery

    daemon = ThreadedWSDiscovery()
    daemon.start()
    try:
        services = daemon.searchServices(types=[_nvt_type()], timeout=timeout)
    finally:
        daemon.stop()
    return [
        DiscoveredDevice(
            epr=str(service.getEPR()),
            xaddrs=tuple(service.getXAddrs() or ()),
            scopes=tuple(str(s) for s in service.getScopes() or ()),
            types=tuple(_type_name(t) for t in service.getTypes() or ()),
        )
        for service in services
    ]


def _directed(targets: Iterable[tuple[str, int]], timeout: float) -> list[DiscoveredDevice]:
    from wsdiscovery.actions import NS_ACTION_PROBE_MATCH, constructProbe
    from wsdiscovery.message import createSOAPMessage, parseSOAPMessage

    found: list[DiscoveredDevice] = []
    sockets: list[tuple[socket.socket, str]] = []
    try:
        for host, port in targets:
            try:
                info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
            except OSError as error:
                log.warning("cannot resolve %s", host, extra={"error": str(error)})
                continue
            sock = socket.socket(info[0], socket.SOCK_DGRAM)
            # connect() binds to the local address that reaches the target, nothing wider,
            # and lets only the target's answers in.
            sock.connect(info[4])
            sock.setblocking(False)
            probe = constructProbe([_nvt_type()], [])
            message = createSOAPMessage(probe).encode()
            sockets.append((sock, probe.getMessageId()))
            for _ in range(2):  # SOAP-over-UDP: a unicast message is sent twice
                with contextlib.suppress(OSError):
                    sock.send(message)
        deadline = time.monotonic() + timeout
        while sockets and time.monotonic() < deadline:
            for sock, message_id in sockets:
                try:
                    data, sender = sock.recvfrom(65535)
                except (BlockingIOError, ConnectionRefusedError):
                    continue
                except OSError:
                    continue
                try:
                    envelope = parseSOAPMessage(data, sender[0])
                except Exception:
                    log.debug("ignored a reply that is not WS-Discovery", extra={"from": sender})
                    continue
                if envelope is None or envelope.getAction() != NS_ACTION_PROBE_MATCH:
                    continue
                if envelope.getRelatesTo() != message_id:
                    continue
                for match in envelope.getProbeResolveMatches():
                    found.append(
                        DiscoveredDevice(
                            epr=str(match.getEPR()),
                            xaddrs=tuple(match.getXAddrs() or ()),
                            scopes=tuple(str(s) for s in match.getScopes() or ()),
                            types=tuple(_type_name(t) for t in match.getTypes() or ()),
                            responder=f"{sender[0]}:{sender[1]}",
                        )
                    )
            time.sleep(0.02)
    finally:
        for sock, _ in sockets:
            sock.close()
    return found


def _type_name(qname: object) -> str:
    local = getattr(qname, "getLocalname", None)
    namespace = getattr(qname, "getNamespace", None)
    if local and namespace:
        return f"{{{namespace()}}}{local()}"
    return str(qname)
