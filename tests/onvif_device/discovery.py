"""The test camera's WS-Discovery responder (SOAP-over-UDP), built on wsdiscovery's messages.

Answers a Probe for NetworkVideoTransmitter (or for any type) with a ProbeMatches message sent
unicast to the prober, as WS-Discovery 1.1 and the ONVIF Core specification require. Two modes:

- ``unicast``: listens on 127.0.0.1 at a free port for directed probes; runs anywhere.
- ``multicast``: joins 239.255.255.250 on port 3702 on a given interface address; used only
  inside a private network namespace that the test creates for itself.
"""

from __future__ import annotations

import socket
import struct
import threading

from wsdiscovery import QName, Scope
from wsdiscovery.actions import NS_ACTION_PROBE, constructProbeMatch
from wsdiscovery.message import createSOAPMessage, parseSOAPMessage
from wsdiscovery.service import Service

ONVIF_NVT = QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter", "dn")
MULTICAST_GROUP = "239.255.255.250"
MULTICAST_PORT = 3702


class DiscoveryResponder:
    def __init__(
        self,
        *,
        epr: str,
        xaddrs: list[str],
        scopes: list[str],
        mode: str = "unicast",
        interface: str = "127.0.0.1",
    ) -> None:
        self.service = Service([ONVIF_NVT], [Scope(s) for s in scopes], xaddrs, epr, 1)
        self.probes = 0
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if mode == "multicast":
            self.sock.bind(("", MULTICAST_PORT))  # only inside a private network namespace
            membership = struct.pack(
                "4s4s", socket.inet_aton(MULTICAST_GROUP), socket.inet_aton(interface)
            )
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        else:
            self.sock.bind((interface, 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name="ws-discovery", daemon=True)

    def start(self) -> DiscoveryResponder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def __enter__(self) -> DiscoveryResponder:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                envelope = parseSOAPMessage(data, sender[0])
            except Exception:
                continue  # not a WS-Discovery message: ignore, as a camera would
            if envelope is None or envelope.getAction() != NS_ACTION_PROBE:
                continue
            wanted = envelope.getTypes()
            if wanted and not any(
                t.getNamespace() == ONVIF_NVT.getNamespace()
                and t.getLocalname() == ONVIF_NVT.getLocalname()
                for t in wanted
            ):
                continue
            self.probes += 1
            reply = constructProbeMatch([self.service], envelope.getMessageId())
            self.sock.sendto(createSOAPMessage(reply).encode(), sender)
