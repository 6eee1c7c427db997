"""RTSP-over-TCP bytes to H.264 / H.265 access units, without doing any I/O.

A native RTSP receiver serves hundreds of cameras from one Python thread, so this module only
turns bytes into pictures: the caller owns the sockets and the decoders. Two layers:

* ``InterleavedReader`` splits the byte stream read after PLAY (RFC 2326 §10.12) into
  interleaved frames and the RTSP messages mixed in with them (keepalive replies, server
  requests).
* ``H264Depacketizer`` / ``H265Depacketizer`` reassemble RTP packets (RFC 6184 / RFC 7798) into
  Annex-B access units that a decoder takes as one packet each.

At ~170 RTP packets per second per camera the per-packet path is the cost that matters: the RTP
header is read with one ``struct.unpack_from`` on the packet itself, the payload is kept as one
slice (no per-packet objects otherwise) and a picture's bytes are joined once, when it is
complete. Nothing here logs; losses and drops are counters the caller reports.

Damaged pictures are never returned. A picture with a missing piece decodes into garbage and so
does every picture predicted from it, and garbage produces false detections; so after any damage
(a sequence gap, a fragment without its start, an unsupported packet type) every access unit is
dropped until the next keyframe. A depacketizer also starts in that state: pictures before the
first keyframe reference pictures the decoder never saw.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

__all__ = [
    "MAX_MESSAGE_BODY",
    "MAX_MESSAGE_HEADER",
    "AccessUnit",
    "H264Depacketizer",
    "H265Depacketizer",
    "InterleavedReader",
    "RtpProtocolError",
    "RtspMessage",
    "UnsupportedStream",
    "depacketizer_for",
]

# An RTSP message's start line and headers must end (CRLFCRLF) within this many bytes, and its
# body be at most MAX_MESSAGE_BODY: a peer sending garbage that happens to start with a capital
# letter, or a huge Content-Length, must not grow the buffer without bound.
MAX_MESSAGE_HEADER = 64 * 1024
MAX_MESSAGE_BODY = 1024 * 1024

_START_CODE = b"\x00\x00\x00\x01"
# Start code + reconstructed H.264 NAL header for every header byte, so that the first fragment
# of an FU-A costs no allocation.
_START_AND_HEADER = tuple(_START_CODE + bytes((value,)) for value in range(256))

_INTERLEAVED = struct.Struct(">BH")  # channel, length (after the '$')
_RTP_HEADER = struct.Struct(">BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
_U16 = struct.Struct(">H")

# Method names are upper-case tokens (RFC 2326 §6.1, extension methods such as GET_PARAMETER);
# replies start "RTSP/". A longer token cannot be either.
_TOKEN = re.compile(rb"[A-Z][A-Z_-]{0,31}")
_TOKEN_LIMIT = 32


class RtpProtocolError(Exception):
    """The byte stream is not RTSP interleaved framing (message says what was found, first bytes
    repr'd)."""


class UnsupportedStream(Exception):
    """The SDP describes a stream this module cannot depacketize (encoding, packetization mode,
    DON interleaving, or parameter sets that cannot be decoded)."""


@dataclass(frozen=True, slots=True)
class RtspMessage:
    """An RTSP message that arrived between interleaved frames."""

    start_line: str  # e.g. "RTSP/1.0 200 OK" or "SET_PARAMETER rtsp://... RTSP/1.0"
    headers: dict[str, str]  # keys lower-cased; repeated headers joined with ", "
    body: bytes


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """One complete, undamaged picture, ready to be one decoder packet."""

    data: bytes  # Annex-B: each NAL unit preceded by b"\x00\x00\x00\x01"
    timestamp: int  # RTP timestamp (32-bit, 90 kHz for video) of the picture
    keyframe: bool  # H.264: contains an IDR slice; H.265: contains an IRAP picture


class InterleavedReader:
    """RFC 2326 §10.12 framing: '$' channel(1 byte) length(2 bytes big-endian) payload, mixed with
    RTSP messages (replies to our keepalives, or requests from the server) which start with
    letters.

    Incomplete data is kept as a list of chunks until enough has arrived to complete the frame
    (or message) at its head, so a large frame arriving in many small reads is joined once rather
    than once per read. After an ``RtpProtocolError`` the framing is lost and the reader must not
    be fed again: the connection has to be re-established.
    """

    __slots__ = ("_chunks", "_consumed", "_need", "_size", "messages")

    def __init__(self) -> None:
        self.messages: list[RtspMessage] = []
        self._chunks: list[bytes] = []  # held bytes, not yet parsed
        self._size = 0  # total length of _chunks
        self._need = 0  # _size at which the head frame or message may be complete
        self._consumed = 0  # bytes parsed since the start, for error messages

    @property
    def buffered(self) -> int:
        """Bytes held waiting for more."""
        return self._size

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Append data; return every complete interleaved frame as (channel, payload) in order;
        complete RTSP messages (start line, headers to CRLFCRLF, Content-Length body) are appended
        to self.messages (a list the caller drains). Incomplete tails are kept for the next feed.
        Raises RtpProtocolError when the next byte starts neither '$' nor an RTSP message
        (letters A-Z of a method or 'RTSP/'); an RTSP message header is capped at
        MAX_MESSAGE_HEADER bytes so garbage cannot grow the buffer unbounded."""
        if not data:
            return []
        if type(data) is not bytes:
            data = bytes(data)  # slices of a bytearray or memoryview would not be bytes
        chunks = self._chunks
        if chunks:
            chunks.append(data)
            self._size += len(data)
            if self._size < self._need:
                return []
            buf = b"".join(chunks)
        else:
            buf = data
        frames: list[tuple[int, bytes]] = []
        pos = 0
        end = len(buf)
        need = 0
        unpack = _INTERLEAVED.unpack_from
        while pos < end:
            if buf[pos] == 0x24:  # '$'
                if end - pos < 4:
                    need = pos + 4
                    break
                channel, length = unpack(buf, pos + 1)
                stop = pos + 4 + length
                if stop > end:
                    need = stop
                    break
                frames.append((channel, buf[pos + 4 : stop]))
                pos = stop
            else:
                stop, need = self._message(buf, pos, end)
                if stop == pos:
                    break
                pos = stop
        self._consumed += pos
        if pos < end:
            tail = buf[pos:] if pos else buf
            self._chunks = [tail]
            self._size = len(tail)
            self._need = need - pos
        elif chunks:
            self._chunks = []
            self._size = 0
        return frames

    def _message(self, buf: bytes, pos: int, end: int) -> tuple[int, int]:
        """Parse the RTSP message at ``pos``: (end of the message, 0) once it is complete, else
        (pos, buffer length needed before trying again). Raises on anything not RTSP."""
        token = _TOKEN.match(buf, pos)
        if token is None:
            raise self._error(buf, pos, "expected '$' or an RTSP message")
        token_end = token.end()
        if token_end == end:
            if token_end - pos >= _TOKEN_LIMIT:
                raise self._error(buf, pos, "expected '$' or an RTSP message")
            return pos, end + 1
        separator = buf[token_end]
        if separator != 0x20 and not (separator == 0x2F and buf[pos:token_end] == b"RTSP"):
            raise self._error(buf, pos, "expected '$' or an RTSP message (method or 'RTSP/')")
        header_end = buf.find(b"\r\n\r\n", pos, pos + MAX_MESSAGE_HEADER)
        if header_end < 0:
            if end - pos >= MAX_MESSAGE_HEADER:
                raise self._error(
                    buf, pos, f"RTSP message header longer than {MAX_MESSAGE_HEADER} bytes"
                )
            return pos, end + 1
        lines = buf[pos:header_end].decode("utf-8", "replace").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                continue
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        length_text = headers.get("content-length", "0")
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_MESSAGE_BODY:
            raise self._error(
                buf, pos, f"RTSP message with an invalid Content-Length {length_text!r}"
            )
        body_start = header_end + 4
        stop = body_start + length
        if stop > end:
            return pos, stop
        self.messages.append(RtspMessage(lines[0].strip(), headers, buf[body_start:stop]))
        return stop, 0

    def _error(self, buf: bytes, pos: int, what: str) -> RtpProtocolError:
        return RtpProtocolError(
            f"{what} at byte {self._consumed + pos} of the stream, found {buf[pos : pos + 32]!r}"
        )


class _Depacketizer:
    """RTP header, sequence and picture-boundary logic shared by both codecs; subclasses
    unpack their payload formats in ``_payload``."""

    __slots__ = (
        "_damaged",
        "_has_ps",
        "_in_fu",
        "_key",
        "_need_key",
        "_open",
        "_parameter_sets",
        "_parts",
        "_seq",
        "_ssrc",
        "_ts",
        "dropped_units",
        "lost_packets",
        "unsupported",
    )

    def __init__(self, parameter_sets: bytes = b"") -> None:
        """parameter_sets: Annex-B parameter sets from the SDP, prepended to any keyframe access
        unit that does not carry its own SPS, so a fresh decoder can start at any keyframe."""
        self.lost_packets = 0
        self.dropped_units = 0
        self.unsupported = 0
        self._parameter_sets = parameter_sets
        # The unit in progress: start codes, NAL headers and payload slices, joined once.
        self._parts: list[bytes] = []
        self._ts = 0
        self._seq = -1  # -1 / -1: no packet yet, the first one is handled like a reset
        self._ssrc = -1
        self._key = False  # the unit in progress has a keyframe NAL
        self._has_ps = False  # ... carries its own SPS
        self._damaged = False  # ... is missing data
        self._in_fu = False  # a fragmented NAL unit is open
        self._open = False  # a packet of the unit in progress has arrived
        self._need_key = True  # drop units until a keyframe (start, or after damage)

    def push(self, packet: bytes) -> AccessUnit | None:
        """One RTP packet (header included, RFC 3550: version 2, CSRC count, extension header,
        padding bit honoured). Returns the access unit it completes, or None. A unit is complete
        at the RTP marker bit, or when a packet with a new timestamp arrives (then the previous
        unit is returned and the new packet starts the next one - cameras that never set the
        marker still work)."""
        size = len(packet)
        if size < 12:
            self._damaged = True
            return None
        flags, marker_pt, seq, ts, ssrc = _RTP_HEADER.unpack_from(packet)
        if flags & 0xC0 != 0x80:
            self._damaged = True
            return None
        start = 12
        if flags & 0x1F:  # CSRCs or a header extension: rare, off the common path
            start += (flags & 0x0F) * 4
            if flags & 0x10:
                if size < start + 4:
                    self._damaged = True
                    return None
                start += 4 + 4 * _U16.unpack_from(packet, start + 2)[0]
        end = size - packet[-1] if flags & 0x20 else size
        if end < start:
            self._damaged = True
            return None

        result = None
        damage = False
        prev = self._seq
        self._seq = seq
        if seq != (prev + 1) & 0xFFFF or ssrc != self._ssrc:
            ahead = (seq - prev) & 0xFFFF
            if ssrc == self._ssrc and ahead <= 32768 and ahead:
                # Packets are missing. They may be the tail of the unit in progress, whole
                # units, or the head of this packet's unit: all of those are damaged.
                self.lost_packets += ahead - 1
                self._damaged = damage = True
            else:
                # A new source or a restarted one (new SSRC, backwards or implausibly far
                # ahead): not a loss, but what was in progress belongs to the old stream and
                # the new one can only be decoded from a keyframe.
                self._ssrc = ssrc
                self._damaged = True
                self._finish()
        if self._open and ts != self._ts:
            result = self._finish()
        self._ts = ts
        self._open = True
        if damage:
            self._damaged = True
        if end > start:
            self._payload(packet, start, end)
        if marker_pt & 0x80 and result is None:
            result = self._finish()
        # With a marker on a packet that also ended the previous (marker-less) unit, two units
        # are complete; this one stays pending until the next timestamp change.
        return result

    def _finish(self) -> AccessUnit | None:
        """Close the unit in progress; return it unless it is damaged or undecodable."""
        parts = self._parts
        key = self._key
        has_ps = self._has_ps
        damaged = self._damaged or self._in_fu  # an unterminated FU is missing its end
        was_open = self._open
        self._parts = []
        self._key = self._has_ps = self._damaged = self._in_fu = self._open = False
        if damaged:
            self._need_key = True
            if was_open:
                self.dropped_units += 1
            return None
        if not parts:  # only ignored packet types: nothing to decode, nothing lost
            return None
        if not key:
            if self._need_key:
                self.dropped_units += 1
                return None
        else:
            self._need_key = False
            if not has_ps and self._parameter_sets:
                # After an access unit delimiter, which must stay the unit's first NAL unit.
                at = 2 if len(parts[0]) == 4 and self._is_aud(parts[1]) else 0
                parts.insert(at, self._parameter_sets)
        return AccessUnit(b"".join(parts), self._ts, key)

    def _aggregate(self, packet: bytes, pos: int, end: int, header_size: int) -> None:
        """An aggregation packet (H.264 STAP-A, H.265 AP) from ``pos``: 16-bit size, NAL
        unit, 16-bit size, NAL unit, … Each NAL unit must hold at least its header."""
        parts = self._parts
        while pos < end:
            if end - pos < 2 + header_size:
                self._damaged = True
                return
            stop = pos + 2 + _U16.unpack_from(packet, pos)[0]
            pos += 2
            if stop > end or stop - pos < header_size:
                self._damaged = True
                return
            self._note(self._nal_type(packet[pos]))
            parts.append(_START_CODE)
            parts.append(packet[pos:stop])
            pos = stop

    def _payload(self, packet: bytes, start: int, end: int) -> None:
        raise NotImplementedError

    @staticmethod
    def _nal_type(first_byte: int) -> int:
        raise NotImplementedError

    def _note(self, nal_type: int) -> None:
        """Mark the unit in progress as a keyframe / as carrying its own parameter sets."""
        raise NotImplementedError

    @staticmethod
    def _is_aud(nal: bytes) -> bool:
        raise NotImplementedError


class H264Depacketizer(_Depacketizer):
    """RFC 6184, packetization modes 0 and 1: single NAL unit (types 1-23), STAP-A (24), FU-A
    (28). STAP-B/MTAP/FU-B (25,26,27,29) -> counted in self.unsupported and the unit is dropped
    (as damaged: those modes interleave, so the picture is incomplete without them)."""

    __slots__ = ()

    def _payload(self, packet: bytes, start: int, end: int) -> None:
        header = packet[start]
        nal_type = header & 0x1F
        parts = self._parts
        if nal_type == 28:  # FU-A
            if end - start < 2:
                self._damaged = True
                return
            fu_header = packet[start + 1]
            if fu_header & 0x80:
                if self._in_fu:  # the previous fragmented NAL unit never ended
                    self._damaged = True
                nal_type = fu_header & 0x1F
                self._note(nal_type)
                parts.append(_START_AND_HEADER[(header & 0xE0) | nal_type])
                self._in_fu = True
            elif not self._in_fu:  # middle or end fragment without its start
                self._damaged = True
                return
            parts.append(packet[start + 2 : end])
            if fu_header & 0x40:
                self._in_fu = False
            return
        if self._in_fu:  # a fragmented NAL unit interrupted before its end
            self._damaged = True
            self._in_fu = False
        if 0 < nal_type < 24:  # single NAL unit
            self._note(nal_type)
            parts.append(_START_CODE)
            parts.append(packet[start:end])
        elif nal_type == 24:  # STAP-A: 16-bit size, NAL unit, ...
            self._aggregate(packet, start + 1, end, 1)
        elif nal_type in (25, 26, 27, 29):  # STAP-B, MTAP16, MTAP24, FU-B
            self.unsupported += 1
            self._damaged = True
        # 0, 30, 31: reserved/undefined, ignored as RFC 6184 §5.2 asks of receivers.

    @staticmethod
    def _nal_type(first_byte: int) -> int:
        return first_byte & 0x1F

    def _note(self, nal_type: int) -> None:
        if nal_type == 5:  # IDR slice
            self._key = True
        elif nal_type == 7:  # SPS
            self._has_ps = True

    @staticmethod
    def _is_aud(nal: bytes) -> bool:
        return nal[0] & 0x1F == 9


class H265Depacketizer(_Depacketizer):
    """RFC 7798: single NAL unit, AP (48), FU (49); PACI (50) dropped. 2-byte NAL header,
    type = (byte0 >> 1) & 0x3F. Parameter sets are VPS(32)/SPS(33)/PPS(34). DONL fields are not
    supported: the factory refuses sprop-max-don-diff > 0."""

    __slots__ = ()

    def _payload(self, packet: bytes, start: int, end: int) -> None:
        if end - start < 2:  # not even a NAL unit header
            self._damaged = True
            return
        header = packet[start]
        nal_type = (header >> 1) & 0x3F
        parts = self._parts
        if nal_type == 49:  # FU: payload header, FU header (S, E, type), fragment
            if end - start < 3:
                self._damaged = True
                return
            fu_header = packet[start + 2]
            if fu_header & 0x80:
                if self._in_fu:
                    self._damaged = True
                nal_type = fu_header & 0x3F
                self._note(nal_type)
                parts.append(
                    _START_CODE + bytes(((header & 0x81) | (nal_type << 1), packet[start + 1]))
                )
                self._in_fu = True
            elif not self._in_fu:
                self._damaged = True
                return
            parts.append(packet[start + 3 : end])
            if fu_header & 0x40:
                self._in_fu = False
            return
        if self._in_fu:
            self._damaged = True
            self._in_fu = False
        if nal_type < 48:  # single NAL unit
            self._note(nal_type)
            parts.append(_START_CODE)
            parts.append(packet[start:end])
        elif nal_type == 48:  # AP: payload header, then 16-bit size, NAL unit, ...
            self._aggregate(packet, start + 2, end, 2)
        elif nal_type == 50:  # PACI
            self.unsupported += 1
            self._damaged = True
        # 51-63: unspecified, ignored.

    @staticmethod
    def _nal_type(first_byte: int) -> int:
        return (first_byte >> 1) & 0x3F

    def _note(self, nal_type: int) -> None:
        if 16 <= nal_type <= 21:  # IRAP picture
            self._key = True
        elif nal_type == 33:  # SPS
            self._has_ps = True

    @staticmethod
    def _is_aud(nal: bytes) -> bool:
        return (nal[0] >> 1) & 0x3F == 35


def _parameter_sets(fmtp: dict[str, str], names: tuple[str, ...]) -> bytes:
    """Annex-B bytes of the base64 parameter sets in the named fmtp parameters, in that order
    (each may list several, comma separated)."""
    out: list[bytes] = []
    for name in names:
        for item in fmtp.get(name, "").split(","):
            text = item.strip()
            if not text:
                continue
            # Cameras often drop the '=' padding; anything outside the alphabet is still an error.
            try:
                nal = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except (binascii.Error, ValueError) as error:
                raise UnsupportedStream(
                    f"malformed base64 in SDP fmtp {name}: {text!r} ({error})"
                ) from None
            # A few cameras encode the NAL unit with its start code.
            for prefix in (_START_CODE, b"\x00\x00\x01"):
                if nal.startswith(prefix):
                    nal = nal[len(prefix) :]
                    break
            if not nal:
                raise UnsupportedStream(f"empty parameter set in SDP fmtp {name}: {text!r}")
            out.append(_START_CODE + nal)
    return b"".join(out)


def _int_parameter(fmtp: dict[str, str], name: str) -> int:
    text = fmtp.get(name, "0").strip() or "0"
    try:
        return int(text)
    except ValueError:
        raise UnsupportedStream(f"SDP fmtp {name} is not a number: {text!r}") from None


def depacketizer_for(encoding: str, fmtp: dict[str, str]) -> H264Depacketizer | H265Depacketizer:
    """encoding is the SDP rtpmap name (case-insensitive 'H264' or 'H265'/'HEVC'); fmtp the
    a=fmtp parameters (keys lower-case). H.264: base64 'sprop-parameter-sets' (comma separated)
    -> Annex-B parameter sets; packetization-mode 2 -> UnsupportedStream. H.265: sprop-vps,
    sprop-sps, sprop-pps; sprop-max-don-diff > 0 (or tx-mode MSST, which also implies DON
    fields) -> UnsupportedStream. Anything else -> UnsupportedStream naming the encoding.
    Malformed base64 -> UnsupportedStream with a clear message."""
    name = encoding.strip().upper()
    if name == "H264":
        mode = _int_parameter(fmtp, "packetization-mode")
        if mode not in (0, 1):
            raise UnsupportedStream(
                f"H.264 packetization-mode {mode} is not supported (only 0 and 1: interleaved "
                "mode needs DON reordering)"
            )
        return H264Depacketizer(_parameter_sets(fmtp, ("sprop-parameter-sets",)))
    if name in ("H265", "HEVC"):
        if _int_parameter(fmtp, "sprop-max-don-diff") > 0:
            raise UnsupportedStream(
                "H.265 with sprop-max-don-diff > 0 (DONL fields, decoding-order interleaving) "
                "is not supported"
            )
        if fmtp.get("tx-mode", "SRST").strip().upper() == "MSST":
            raise UnsupportedStream(
                "H.265 tx-mode MSST (multi-stream, DON fields) is not supported"
            )
        return H265Depacketizer(_parameter_sets(fmtp, ("sprop-vps", "sprop-sps", "sprop-pps")))
    raise UnsupportedStream(
        f"unsupported video encoding {encoding!r} (only H264 and H265/HEVC are depacketized)"
    )
