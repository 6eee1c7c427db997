"""The RTSP/TCP depacketizer against real encoded video.

Clips are encoded here with PyAV's libx264 and libx265 (both are in PyAV's wheels), packetized
by the small RFC 6184 / RFC 7798 packetizers below (single NAL units, STAP-A / AP for the
parameter sets, FU-A / FU above a 1200-byte MTU, a marker on each picture's last packet, 90 kHz
timestamps that wrap, sequence numbers starting at 65530 so they wrap too, and some packets with
CSRCs, a header extension and padding), framed as RTSP interleaved data mixed with RTCP and
RTSP messages, and fed to the reader in random-sized chunks. What comes out must be the
encoder's own access units, and must decode to the very same pictures.
"""

from __future__ import annotations

import base64
import random
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import pytest

from camera_adapters.rtp_depacketizer import (
    MAX_MESSAGE_HEADER,
    AccessUnit,
    H264Depacketizer,
    H265Depacketizer,
    InterleavedReader,
    RtpProtocolError,
    RtspMessage,
    UnsupportedStream,
    depacketizer_for,
)

START = b"\x00\x00\x00\x01"
MTU = 1200
FRAMES = 60
KEYINT = 10
SEQ0 = 65530  # wraps after six packets
TS0 = 2**32 - 3600 * 30  # the 32-bit timestamp wraps at picture 30
SSRC = 0x5E0E5E0E
RTCP_SR = bytes.fromhex("80c80006") + struct.pack(">I", SSRC) + bytes(20)
REPLY = b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nContent-Length: 4\r\n\r\nabcd"
REQUEST = b"SET_PARAMETER rtsp://cam/stream RTSP/1.0\r\nCSeq: 9\r\nSession: 42\r\n\r\n"


def split_nals(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (3- or 4-byte start codes)."""
    starts = [match.end() for match in re.finditer(b"\x00\x00\x01", data)]
    nals = []
    for i, start in enumerate(starts):
        if i + 1 < len(starts):
            nals.append(data[start : starts[i + 1] - 3].rstrip(b"\x00"))
        else:
            nals.append(data[start:])
    return nals


def annexb(nals: Sequence[bytes]) -> bytes:
    return b"".join(START + nal for nal in nals)


# --- RFC 6184 / RFC 7798 packetizers -------------------------------------------------------------


def h264_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def h265_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


def h264_aggregate(nals: Sequence[bytes]) -> bytes:
    """STAP-A: F|NRI|24, then (16-bit size, NAL unit) for each."""
    nri = max(nal[0] & 0x60 for nal in nals)
    return bytes([nri | 24]) + b"".join(struct.pack(">H", len(nal)) + nal for nal in nals)


def h265_aggregate(nals: Sequence[bytes]) -> bytes:
    """AP: payload header of type 48 with the lowest TID, then (16-bit size, NAL unit) each."""
    tid = min(nal[1] & 0x07 for nal in nals)
    return bytes([48 << 1, tid]) + b"".join(struct.pack(">H", len(nal)) + nal for nal in nals)


def fragments(
    nal: bytes, header_len: int, fu_prefix: Callable[[bytes, int], bytes]
) -> Iterator[tuple[str, bytes]]:
    body = nal[header_len:]
    size = MTU - header_len - 1
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    for i, piece in enumerate(pieces):
        flags = (0x80 if i == 0 else 0) | (0x40 if i == len(pieces) - 1 else 0)
        kind = "fu-start" if i == 0 else "fu-end" if i == len(pieces) - 1 else "fu-middle"
        yield kind, fu_prefix(nal, flags) + piece


def h264_fu(nal: bytes, flags: int) -> bytes:
    """FU indicator (F|NRI|28), FU header (S|E|R|type)."""
    return bytes([(nal[0] & 0xE0) | 28, flags | (nal[0] & 0x1F)])


def h265_fu(nal: bytes, flags: int) -> bytes:
    """Payload header (type 49, the NAL unit's F, layer and TID), FU header (S|E|type)."""
    return bytes([(nal[0] & 0x81) | (49 << 1), nal[1], flags | h265_type(nal)])


@dataclass(frozen=True)
class Codec:
    sdp_name: str
    encoder: str
    decoder: str
    options: dict[str, str]
    nal_type: Callable[[bytes], int]
    header_len: int
    parameter_set_types: tuple[int, ...]
    aggregate: Callable[[Sequence[bytes]], bytes]
    fu_prefix: Callable[[bytes, int], bytes]
    depacketizer: type[H264Depacketizer] | type[H265Depacketizer]

    def sprops(self, parameter_sets: Sequence[bytes]) -> dict[str, str]:
        """The SDP fmtp parameters carrying these parameter sets."""

        def b64(nal: bytes) -> str:
            return base64.b64encode(nal).decode()

        if self.sdp_name == "H264":
            joined = ",".join(b64(nal) for nal in parameter_sets)
            return {"packetization-mode": "1", "sprop-parameter-sets": joined}
        names = {32: "sprop-vps", 33: "sprop-sps", 34: "sprop-pps"}
        return {names[h265_type(nal)]: b64(nal) for nal in parameter_sets}


H264 = Codec(
    "H264",
    "libx264",
    "h264",
    # Four slices per picture give pictures of several NAL units, some small enough for one
    # packet and some fragmented; access unit delimiters check where SDP parameter sets go.
    {
        "preset": "ultrafast",
        "x264-params": f"keyint={KEYINT}:min-keyint={KEYINT}:scenecut=0:bframes=0:slices=4:aud=1",
    },
    h264_type,
    1,
    (7, 8),
    h264_aggregate,
    h264_fu,
    H264Depacketizer,
)
H265 = Codec(
    "H265",
    "libx265",
    "hevc",
    {
        "preset": "ultrafast",
        "x265-params": f"keyint={KEYINT}:min-keyint={KEYINT}:scenecut=0:bframes=0:open-gop=0"
        ":slices=4:aud=1:log-level=none",
    },
    h265_type,
    2,
    (32, 33, 34),
    h265_aggregate,
    h265_fu,
    H265Depacketizer,
)
CODECS = {"H264": H264, "H265": H265}


@dataclass(frozen=True)
class Payload:
    au: int  # index of the access unit (picture) it belongs to
    kind: str  # single, aggregate, fu-start, fu-middle, fu-end
    data: bytes
    last: bool  # the picture's last payload: its packet carries the marker


def payloads(codec: Codec, aus: Sequence[Sequence[bytes]]) -> list[Payload]:
    out: list[Payload] = []
    for index, nals in enumerate(aus):
        items: list[tuple[str, bytes]] = []
        n = 0
        while n < len(nals):
            run = n
            while run < len(nals) and codec.nal_type(nals[run]) in codec.parameter_set_types:
                run += 1
            if run - n > 1:  # consecutive parameter sets: one aggregation packet
                items.append(("aggregate", codec.aggregate(nals[n:run])))
                n = run
                continue
            nal = nals[n]
            if len(nal) <= MTU:
                items.append(("single", nal))
            else:
                items.extend(fragments(nal, codec.header_len, codec.fu_prefix))
            n += 1
        for n, (kind, data) in enumerate(items):
            out.append(Payload(index, kind, data, n == len(items) - 1))
    return out


def rtp_packets(
    items: Sequence[Payload], *, seq0: int = SEQ0, ssrc: int = SSRC, marker: bool = True
) -> list[bytes]:
    """RTP packets (RFC 3550), every seventh with a CSRC, a header extension and padding."""
    packets = []
    for n, item in enumerate(items):
        seq = (seq0 + n) & 0xFFFF
        ts = (TS0 + 3600 * item.au) & 0xFFFFFFFF
        second = (0x80 if marker and item.last else 0) | 96
        if n % 7 == 3:
            header = struct.pack(">BBHII", 0x80 | 0x20 | 0x10 | 1, second, seq, ts, ssrc)
            header += struct.pack(">I", 0xC5C5C5C5)  # CSRC
            header += struct.pack(">HH", 0xBEDE, 2) + bytes(range(8))  # extension, 2 words
            packets.append(header + item.data + b"\x00\x00\x03")  # 3 bytes of padding
        else:
            packets.append(struct.pack(">BBHII", 0x80, second, seq, ts, ssrc) + item.data)
    return packets


def interleaved(channel: int, payload: bytes) -> bytes:
    return b"$" + struct.pack(">BH", channel, len(payload)) + payload


def tcp_stream(packets: Sequence[bytes]) -> tuple[bytes, int, int]:
    """The byte stream after PLAY: RTP on channel 0, RTCP on 1, RTSP messages in between.
    Returns (bytes, RTCP packets, RTSP messages)."""
    out = []
    rtcp = messages = 0
    for n, packet in enumerate(packets):
        out.append(interleaved(0, packet))
        if n % 25 == 7:
            out.append(interleaved(1, RTCP_SR))
            rtcp += 1
        if n % 97 == 40:
            out.append(REPLY if n % 2 else REQUEST)
            messages += 1
    return b"".join(out), rtcp, messages


def random_chunks(data: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    pos = 0
    while pos < len(data):
        size = rng.choice((1, 1, 2, 3, 5, rng.randint(1, 200), rng.randint(1, 5000)))
        yield data[pos : pos + size]
        pos += size


@dataclass
class Received:
    units: list[AccessUnit]
    rtcp: list[bytes]
    messages: list[RtspMessage]
    reader: InterleavedReader


def receive(stream: bytes, depacketizer: H264Depacketizer | H265Depacketizer) -> Received:
    reader = InterleavedReader()
    got = Received([], [], [], reader)
    for chunk in random_chunks(stream, seed=len(stream)):
        for channel, payload in reader.feed(chunk):
            if channel == 0:
                unit = depacketizer.push(payload)
                if unit is not None:
                    got.units.append(unit)
            else:
                got.rtcp.append(payload)
        got.messages += reader.messages
        reader.messages.clear()
    return got


def push_all(
    depacketizer: H264Depacketizer | H265Depacketizer, packets: Sequence[bytes]
) -> list[AccessUnit]:
    return [unit for unit in map(depacketizer.push, packets) if unit is not None]


def decode(codec: Codec, units: Sequence[bytes]) -> list[np.ndarray]:
    """Every picture a fresh decoder makes of these access units."""
    decoder = av.CodecContext.create(codec.decoder, "r")
    frames = []
    for data in units:
        frames += decoder.decode(av.Packet(data))
    frames += decoder.decode(None)
    return [frame.to_ndarray(format="yuv420p") for frame in frames]


def decoded_or_refused(codec: Codec, units: Sequence[bytes]) -> list[np.ndarray]:
    """The pictures decoded, or none when the decoder refuses the data."""
    try:
        return decode(codec, units)
    except av.error.InvalidDataError:
        return []


def assert_same_pictures(got: Sequence[np.ndarray], expected: Sequence[np.ndarray]) -> None:
    assert len(got) == len(expected)
    for n, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert np.array_equal(a, b), f"picture {n} differs"


@dataclass(frozen=True)
class Clip:
    codec: Codec
    aus: list[list[bytes]]  # the encoder's access units as NAL unit lists
    keyframes: list[bool]  # the encoder's keyframe flags
    pictures: list[np.ndarray]  # the encoder output decoded directly

    def ts(self, index: int) -> int:
        return (TS0 + 3600 * index) & 0xFFFFFFFF


def encode(codec: Codec) -> Clip:
    """FRAMES pictures of a shifting gradient with a moving block of fresh noise (which keeps
    predicted pictures large enough to need fragmentation)."""
    encoder = av.CodecContext.create(codec.encoder, "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 360, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.framerate = Fraction(25)
    encoder.options = codec.options
    rng = np.random.default_rng(7)
    packets = []
    for i in range(FRAMES):
        image = np.empty((360, 640, 3), np.uint8)
        image[:] = ((np.arange(640) + 4 * i) % 256).astype(np.uint8)[None, :, None]
        y, x = 40 + 3 * i, 20 + 8 * i
        image[y : y + 100, x : x + 120] = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    data = [bytes(packet) for packet in packets]
    assert len(data) == FRAMES
    return Clip(
        codec,
        [split_nals(d) for d in data],
        [packet.is_keyframe for packet in packets],
        decode(codec, data),
    )


@pytest.fixture(scope="module", params=["H264", "H265"])
def clip(request: pytest.FixtureRequest) -> Clip:
    # libx265 ships in PyAV's wheels (checked: "libx265" in av.codecs_available), so H.265 gets
    # the same real round trip as H.264 rather than hand-made NAL units only.
    assert CODECS[request.param].encoder in av.codecs_available
    return encode(CODECS[request.param])


def test_clip_exercises_every_packet_kind(clip: Clip) -> None:
    kinds = {item.kind for item in payloads(clip.codec, clip.aus)}
    assert kinds == {"single", "aggregate", "fu-start", "fu-middle", "fu-end"}
    assert clip.keyframes == [i % KEYINT == 0 for i in range(FRAMES)]
    assert len(clip.pictures) == FRAMES


# --- round trip ----------------------------------------------------------------------------------


def test_round_trip_gives_the_encoders_access_units(clip: Clip) -> None:
    codec = clip.codec
    depacketizer = depacketizer_for(codec.sdp_name, {})
    assert type(depacketizer) is codec.depacketizer
    stream, rtcp, messages = tcp_stream(rtp_packets(payloads(codec, clip.aus)))
    got = receive(stream, depacketizer)

    assert [split_nals(unit.data) for unit in got.units] == clip.aus
    assert all(unit.data.startswith(START) for unit in got.units)
    assert [unit.keyframe for unit in got.units] == clip.keyframes
    assert [unit.timestamp for unit in got.units] == [clip.ts(i) for i in range(FRAMES)]
    assert (depacketizer.lost_packets, depacketizer.dropped_units) == (0, 0)
    assert depacketizer.unsupported == 0

    assert got.rtcp == [RTCP_SR] * rtcp
    assert messages >= 2
    reply = RtspMessage("RTSP/1.0 200 OK", {"cseq": "5", "content-length": "4"}, b"abcd")
    request = RtspMessage(
        "SET_PARAMETER rtsp://cam/stream RTSP/1.0", {"cseq": "9", "session": "42"}, b""
    )
    assert len(got.messages) == messages
    assert all(message in (reply, request) for message in got.messages)
    assert reply in got.messages and request in got.messages
    assert got.reader.buffered == 0

    assert_same_pictures(decode(codec, [unit.data for unit in got.units]), clip.pictures)


def test_marker_less_stream_completes_units_at_the_next_timestamp(clip: Clip) -> None:
    depacketizer = clip.codec.depacketizer()
    items = payloads(clip.codec, clip.aus)
    packets = rtp_packets(items, marker=False)
    units = push_all(depacketizer, packets)
    # The last picture is complete only when a packet of the next one arrives.
    assert [split_nals(unit.data) for unit in units] == clip.aus[:-1]
    assert [unit.keyframe for unit in units] == clip.keyframes[:-1]
    next_picture = Payload(FRAMES, "single", clip.aus[1][-1], True)
    last = depacketizer.push(rtp_packets([next_picture], seq0=SEQ0 + len(packets), marker=False)[0])
    assert last is not None
    assert split_nals(last.data) == clip.aus[-1]
    assert last.timestamp == clip.ts(FRAMES - 1)
    assert (depacketizer.lost_packets, depacketizer.dropped_units) == (0, 0)
    assert_same_pictures(decode(clip.codec, [unit.data for unit in [*units, last]]), clip.pictures)


# --- parameter sets from the SDP -----------------------------------------------------------------


def test_sdp_parameter_sets_let_a_fresh_decoder_start_at_a_keyframe(clip: Clip) -> None:
    codec = clip.codec
    parameter_sets = [
        nal for nal in clip.aus[0] if codec.nal_type(nal) in codec.parameter_set_types
    ]
    assert len(parameter_sets) == len(codec.parameter_set_types)
    stripped = [
        [nal for nal in nals if codec.nal_type(nal) not in codec.parameter_set_types]
        for nals in clip.aus
    ]
    # Join mid-GOP, as a real PLAY does: the pictures before the first keyframe are dropped.
    items = [item for item in payloads(codec, stripped) if item.au >= 3]
    depacketizer = depacketizer_for(codec.sdp_name.lower(), codec.sprops(parameter_sets))
    got = receive(tcp_stream(rtp_packets(items))[0], depacketizer)

    assert depacketizer.dropped_units == KEYINT - 3
    assert depacketizer.lost_packets == 0
    assert [unit.timestamp for unit in got.units] == [clip.ts(i) for i in range(KEYINT, FRAMES)]
    for index, unit in enumerate(got.units, KEYINT):
        expected = stripped[index]
        if clip.keyframes[index]:  # after the access unit delimiter, which stays first
            assert codec.nal_type(expected[0]) in (9, 35)
            expected = expected[:1] + parameter_sets + expected[1:]
        assert split_nals(unit.data) == expected, index
        assert unit.keyframe == clip.keyframes[index]
    assert_same_pictures(decode(codec, [unit.data for unit in got.units]), clip.pictures[KEYINT:])

    # Without them the same stream cannot be decoded at all.
    bare = codec.depacketizer()
    units = push_all(bare, rtp_packets(items))
    assert [split_nals(unit.data) for unit in units] == stripped[KEYINT:]
    assert decoded_or_refused(codec, [unit.data for unit in units]) == []


# --- loss ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "renumber"),
    [
        ("fu-middle", False),  # a sequence gap inside a picture
        ("fu-end", False),  # a gap that takes the marker: the next picture is damaged too
        ("fu-start", True),  # no gap at all (a proxy lost it): an FU without its start
    ],
)
def test_damage_drops_units_until_the_next_keyframe(clip: Clip, kind: str, renumber: bool) -> None:
    codec = clip.codec
    items = payloads(codec, clip.aus)
    victim = next(
        n
        for n, item in enumerate(items)
        if item.au > 12 and not clip.keyframes[item.au] and item.kind == kind
    )
    damaged = items[victim].au
    next_key = clip.keyframes.index(True, damaged)
    if renumber:
        packets = rtp_packets(items[:victim] + items[victim + 1 :])
    else:
        packets = rtp_packets(items)
        del packets[victim]
    depacketizer = codec.depacketizer()
    got = receive(tcp_stream(packets)[0], depacketizer)

    kept = [*range(damaged), *range(next_key, FRAMES)]
    assert [unit.timestamp for unit in got.units] == [clip.ts(i) for i in kept]
    assert [split_nals(unit.data) for unit in got.units] == [clip.aus[i] for i in kept]
    assert depacketizer.lost_packets == (0 if renumber else 1)
    assert depacketizer.dropped_units == next_key - damaged
    assert got.units[damaged].keyframe
    pictures = decode(codec, [unit.data for unit in got.units])
    assert_same_pictures(pictures, [clip.pictures[i] for i in kept])


@pytest.mark.parametrize(
    ("jump", "new_ssrc"),
    [(-50, False), (40000, False), (5, True)],
    ids=["backwards", "far-ahead", "new-ssrc"],
)
def test_source_restart_is_not_a_loss(clip: Clip, jump: int, new_ssrc: bool) -> None:
    items = payloads(clip.codec, clip.aus)
    before = [item for item in items if item.au < 15]
    before = before[: -min(2, sum(item.au == 14 for item in before) - 1)]  # 14 is cut short
    after = [item for item in items if item.au >= 20]
    restart = (SEQ0 + len(before) - 1 + jump) & 0xFFFF
    packets = rtp_packets(before) + rtp_packets(
        after, seq0=restart, ssrc=SSRC + 1 if new_ssrc else SSRC
    )
    depacketizer = clip.codec.depacketizer()
    units = push_all(depacketizer, packets)
    kept = [*range(14), *range(20, FRAMES)]
    assert [split_nals(unit.data) for unit in units] == [clip.aus[i] for i in kept]
    assert depacketizer.lost_packets == 0
    assert depacketizer.dropped_units == 1  # picture 14, cut short


# --- hand-made H.264 -----------------------------------------------------------------------------

SPS = bytes.fromhex("6742c01eda0280bfe584")
PPS = bytes.fromhex("68ce0fc8")
AUD = bytes.fromhex("09f0")
IDR = b"\x65" + bytes(range(1, 250)) * 8
P_SLICE = b"\x41" + bytes(range(7, 90))


def rtp(seq: int, ts: int, payload: bytes, *, marker: bool = True, first: int = 0x80) -> bytes:
    return struct.pack(">BBHII", first, (0x80 if marker else 0) | 96, seq, ts, 7) + payload


def test_h264_parameter_sets_follow_an_access_unit_delimiter() -> None:
    depacketizer = H264Depacketizer(annexb([SPS, PPS]))
    assert depacketizer.push(rtp(1, 0, AUD, marker=False)) is None
    unit = depacketizer.push(rtp(2, 0, IDR))
    assert unit == AccessUnit(annexb([AUD, SPS, PPS, IDR]), 0, True)
    unit = depacketizer.push(rtp(3, 3000, P_SLICE))
    assert unit == AccessUnit(annexb([P_SLICE]), 3000, False)
    # A keyframe with its own SPS gets nothing prepended.
    assert depacketizer.push(rtp(4, 6000, h264_aggregate([SPS, PPS]), marker=False)) is None
    unit = depacketizer.push(rtp(5, 6000, IDR))
    assert unit == AccessUnit(annexb([SPS, PPS, IDR]), 6000, True)


def test_h264_unsupported_and_malformed_packets_drop_until_a_keyframe() -> None:
    depacketizer = H264Depacketizer()
    assert depacketizer.push(rtp(1, 0, P_SLICE)) is None  # before any keyframe
    assert depacketizer.dropped_units == 1
    fu = list(fragments(IDR, 1, h264_fu))
    assert [kind for kind, _ in fu] == ["fu-start", "fu-end"]
    assert depacketizer.push(rtp(2, 3000, fu[0][1], marker=False)) is None
    unit = depacketizer.push(rtp(3, 3000, fu[1][1]))
    assert unit == AccessUnit(annexb([IDR]), 3000, True)

    # STAP-B (25), as used by the interleaved mode.
    assert depacketizer.push(rtp(4, 6000, bytes([25, 0, 1]) + P_SLICE)) is None
    assert (depacketizer.unsupported, depacketizer.dropped_units) == (1, 2)
    assert depacketizer.push(rtp(5, 9000, P_SLICE)) is None  # depends on the dropped one
    assert depacketizer.dropped_units == 3
    # Reserved types (0, 30, 31) are ignored; an RTP version 1 packet is damage.
    assert depacketizer.push(rtp(6, 12000, IDR, marker=False)) is None
    assert depacketizer.push(rtp(7, 12000, b"\x1e\x00")) == AccessUnit(annexb([IDR]), 12000, True)
    assert depacketizer.push(rtp(8, 15000, P_SLICE, marker=False)) is None
    assert depacketizer.push(rtp(9, 15000, P_SLICE, first=0x40)) is None
    assert depacketizer.dropped_units == 3
    assert depacketizer.push(rtp(10, 15000, P_SLICE)) is None
    assert depacketizer.dropped_units == 4
    assert depacketizer.lost_packets == 1  # the version-1 packet's sequence number is unknown
    # An FU interrupted by another NAL unit is damage too.
    assert depacketizer.push(rtp(11, 18000, fu[0][1], marker=False)) is None
    assert depacketizer.push(rtp(12, 18000, IDR)) is None
    assert depacketizer.dropped_units == 5
    # A STAP-A whose sizes overrun the packet is damage.
    assert depacketizer.push(rtp(13, 21000, h264_aggregate([SPS, IDR])[:-5])) is None
    assert depacketizer.dropped_units == 6
    assert depacketizer.push(rtp(14, 24000, IDR)) == AccessUnit(annexb([IDR]), 24000, True)
    assert depacketizer.lost_packets == 1


def test_rtp_header_extension_csrcs_and_padding_are_skipped() -> None:
    depacketizer = H264Depacketizer()
    header = struct.pack(">BBHII", 0x80 | 0x20 | 0x10 | 2, 0x80 | 96, 1, 0, 7)
    header += bytes(8) + struct.pack(">HH", 0xABAC, 1) + b"\xff" * 4
    unit = depacketizer.push(header + IDR + bytes(6) + b"\x07")
    assert unit == AccessUnit(annexb([IDR]), 0, True)


# --- hand-made H.265 -----------------------------------------------------------------------------


def hevc_nal(nal_type: int, body: bytes, tid: int = 1) -> bytes:
    return bytes([nal_type << 1, tid]) + body


VPS = hevc_nal(32, bytes(range(20)))
HSPS = hevc_nal(33, bytes(range(30, 60)))
HPPS = hevc_nal(34, bytes(range(60, 70)))
HIDR = hevc_nal(19, bytes(range(1, 250)) * 12)  # IDR_W_RADL, fragmented
HCRA = hevc_nal(21, bytes(range(3, 90)))  # CRA, one packet
HTRAIL = hevc_nal(1, bytes(range(9, 200)), tid=2)  # TRAIL_R
HEOS = hevc_nal(36, b"")  # end of sequence: a bare 2-byte header


def test_h265_aggregation_fragmentation_and_keyframes() -> None:
    depacketizer = H265Depacketizer(annexb([VPS, HSPS, HPPS]))
    fu = list(fragments(HIDR, 2, h265_fu))
    assert [kind for kind, _ in fu] == ["fu-start", "fu-middle", "fu-end"]
    packets = [rtp(10, 0, h265_aggregate([VPS, HSPS, HPPS]), marker=False)]
    packets += [rtp(11 + n, 0, data, marker=n == 2) for n, (_, data) in enumerate(fu)]
    packets += [rtp(14, 3000, HTRAIL), rtp(15, 6000, HCRA, marker=False), rtp(16, 6000, HEOS)]
    assert push_all(depacketizer, packets) == [
        AccessUnit(annexb([VPS, HSPS, HPPS, HIDR]), 0, True),
        AccessUnit(annexb([HTRAIL]), 3000, False),
        # CRA is IRAP; no SPS of its own, so the SDP's parameter sets come first.
        AccessUnit(annexb([VPS, HSPS, HPPS, HCRA, HEOS]), 6000, True),
    ]
    assert (depacketizer.lost_packets, depacketizer.dropped_units) == (0, 0)

    # PACI (50) is dropped as unsupported; pictures depending on it wait for the next IRAP.
    paci = bytes([50 << 1, 1, 0, 0]) + HTRAIL
    assert push_all(depacketizer, [rtp(17, 9000, paci), rtp(18, 12000, HTRAIL)]) == []
    assert (depacketizer.unsupported, depacketizer.dropped_units) == (1, 2)
    # A missing fragment: the FU's end alone is damage.
    assert push_all(depacketizer, [rtp(19, 15000, fu[2][1])]) == []
    assert depacketizer.dropped_units == 3
    assert push_all(depacketizer, [rtp(20, 18000, HCRA)])[0].keyframe


# --- the SDP factory -----------------------------------------------------------------------------


def test_depacketizer_for_reads_the_sdp() -> None:
    unpadded = base64.b64encode(SPS).decode().rstrip("=") + "," + base64.b64encode(PPS).decode()
    for encoding in ("H264", "h264"):
        depacketizer = depacketizer_for(
            encoding, {"packetization-mode": "1", "sprop-parameter-sets": unpadded}
        )
        assert isinstance(depacketizer, H264Depacketizer)
        assert depacketizer.push(rtp(1, 0, IDR)) == AccessUnit(annexb([SPS, PPS, IDR]), 0, True)
    sprops = {
        "sprop-vps": base64.b64encode(VPS).decode(),
        "sprop-sps": base64.b64encode(HSPS).decode(),
        "sprop-pps": base64.b64encode(HPPS).decode(),
        "sprop-max-don-diff": "0",
    }
    for encoding in ("H265", "hevc"):
        depacketizer = depacketizer_for(encoding, sprops)
        assert isinstance(depacketizer, H265Depacketizer)
        expected = AccessUnit(annexb([VPS, HSPS, HPPS, HCRA]), 0, True)
        assert depacketizer.push(rtp(1, 0, HCRA)) == expected
    assert isinstance(depacketizer_for("H264", {}), H264Depacketizer)


@pytest.mark.parametrize(
    ("encoding", "fmtp", "message"),
    [
        ("MP4V-ES", {}, "'MP4V-ES'"),
        ("H264", {"packetization-mode": "2"}, "packetization-mode 2"),
        ("H264", {"sprop-parameter-sets": "Z0LAHtoCgL/l$$,aM4PyA=="}, "sprop-parameter-sets"),
        ("H265", {"sprop-max-don-diff": "3"}, "sprop-max-don-diff"),
        ("H265", {"sprop-sps": "QgE!"}, "sprop-sps"),
    ],
)
def test_depacketizer_for_refuses(encoding: str, fmtp: dict[str, str], message: str) -> None:
    with pytest.raises(UnsupportedStream, match=re.escape(message)):
        depacketizer_for(encoding, fmtp)


# --- the interleaved reader ----------------------------------------------------------------------


def test_reader_keeps_incomplete_tails() -> None:
    reader = InterleavedReader()
    frame = interleaved(0, b"x" * 300)
    assert reader.feed(b"") == []
    assert reader.feed(frame[:2]) == []
    assert reader.buffered == 2
    assert reader.feed(frame[2:100]) == []
    assert reader.buffered == 100
    assert reader.feed(frame[100:] + REPLY[:10]) == [(0, b"x" * 300)]
    assert reader.buffered == 10
    assert reader.messages == []
    assert reader.feed(bytearray(REPLY[10:] + interleaved(1, b"rtcp"))) == [(1, b"rtcp")]
    assert reader.messages == [
        RtspMessage("RTSP/1.0 200 OK", {"cseq": "5", "content-length": "4"}, b"abcd")
    ]
    assert reader.buffered == 0


def test_reader_parses_messages_byte_by_byte() -> None:
    message = (
        b"RTSP/1.0 200 OK\r\nCSeq: 6\r\nX-Thing:a\r\nx-thing: b\r\nContent-Length: 2\r\n\r\nok"
    )
    stream = interleaved(0, b"a") + message + REQUEST + interleaved(3, b"")
    reader = InterleavedReader()
    frames = [frame for byte in stream for frame in reader.feed(bytes([byte]))]
    assert frames == [(0, b"a"), (3, b"")]
    assert reader.messages == [
        RtspMessage(
            "RTSP/1.0 200 OK", {"cseq": "6", "x-thing": "a, b", "content-length": "2"}, b"ok"
        ),
        RtspMessage(
            "SET_PARAMETER rtsp://cam/stream RTSP/1.0", {"cseq": "9", "session": "42"}, b""
        ),
    ]


@pytest.mark.parametrize(
    ("garbage", "found"),
    [
        (b"\x00\x01\x02\x03", r"b'\x00\x01\x02\x03'"),
        (b"HTTP/1.1 200 OK\r\n\r\n", "b'HTTP/1.1 200 OK"),
        (b"rtsp/1.0 200 OK\r\n\r\n", "b'rtsp/1.0"),
        (b"GET_PARAMETER\r\n\r\n", "b'GET_PARAMETER\\r\\n\\r\\n'"),
        (b"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ", "b'ABCDEFGH"),
        (b"RTSP/1.0 200 OK\r\nContent-Length: lots\r\n\r\n", "Content-Length 'lots'"),
    ],
)
def test_reader_refuses_what_is_not_interleaved_rtsp(garbage: bytes, found: str) -> None:
    reader = InterleavedReader()
    lead = interleaved(0, b"fine") + interleaved(1, b"also fine")
    assert reader.feed(lead) == [(0, b"fine"), (1, b"also fine")]
    with pytest.raises(RtpProtocolError, match=re.escape(found)) as error:
        reader.feed(garbage)
    if not found.startswith("Content"):
        assert f"at byte {len(lead)} of the stream" in str(error.value)


def test_reader_caps_an_rtsp_header_that_never_ends() -> None:
    reader = InterleavedReader()
    reader.feed(b"RTSP/1.0 200 OK\r\nX-Junk: ")
    with pytest.raises(RtpProtocolError, match=f"longer than {MAX_MESSAGE_HEADER} bytes"):
        for _ in range(1000):
            reader.feed(b"a" * 1000)
            assert reader.buffered < MAX_MESSAGE_HEADER + 1000
