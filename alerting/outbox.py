"""The pipeline worker's outbox: an append-only, fsync'd file of alerts not yet in Redis.

Every alert is written here before it is published (write-ahead), and marked delivered
once Redis has it. While Redis is unreachable the records simply stay, in order, and are
replayed oldest first when it returns — also after a restart of the worker. Only the
publishing thread writes the file; the analysis loop never touches it.

Layout (big-endian)::

    file   := HEADER record*
    HEADER := b"SEOUTBOX" u16 version u8[6] reserved                   (16 bytes)
    record := b"\\xa1\\xe7" u8 type u32 length u32 crc32(type+payload) payload
    type E := u64 seq f64 spooled_at u32 width u32 height u32 json_len json jpeg
    type D := u64 seq                                   (the event `seq` was delivered)

Crash consistency: a record counts only once it is complete and its CRC matches. A torn
last record (the process or machine died mid-append) is cut off when the file is opened; a
damaged record in the middle is skipped by searching for the next record that checks out,
and the file is rewritten clean. A delivered marker that did not reach the disk makes the
event publish again after a crash; the publisher's idempotency-key check in Redis (and the
API's unique key) turn that into a no-op. When nothing is pending the file is truncated
back to its header; when delivered records make up most of a large file it is compacted
(rewritten to a temporary file, fsync'd, renamed over the old one).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import mmap
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FILE_MAGIC = b"SEOUTBOX"
VERSION = 1
HEADER = struct.Struct(">8sH6x")
RECORD_MAGIC = b"\xa1\xe7"
RECORD = struct.Struct(">2scII")  # magic, type, payload length, crc32
EVENT = struct.Struct(">QdIII")  # seq, spooled_at, width, height, json length
DONE = struct.Struct(">Q")
TYPE_EVENT = b"E"
TYPE_DONE = b"D"
MAX_RECORD = 64 * 1024 * 1024  # anything claiming to be larger is damage, not data
COMPACT_MIN_BYTES = 1024 * 1024


class OutboxError(RuntimeError):
    """The outbox cannot be used (locked by another process, not an outbox, I/O failure)."""


class OutboxFull(OutboxError):
    """The event does not fit under ``max_bytes`` even without its snapshot."""


@dataclass(frozen=True)
class OutboxRecord:
    seq: int
    spooled_at: float
    event_json: bytes
    snapshot: bytes | None
    width: int
    height: int


@dataclass(frozen=True)
class _Entry:
    offset: int
    length: int
    spooled_at: float


@dataclass(frozen=True)
class Recovery:
    """What opening the file found."""

    pending: int
    delivered: int
    torn_bytes: int  # cut off the end: an append that never completed
    skipped_bytes: int  # damaged bytes skipped in the middle


class Outbox:
    """A durable FIFO of alert events for one pipeline worker (single writer)."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        snapshot_max_bytes: int = 128 * 1024 * 1024,
        fsync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.snapshot_max_bytes = snapshot_max_bytes
        self.fsync = fsync
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._pending: dict[int, _Entry] = {}  # insertion order is seq order
        self._next_seq = 1
        self._size = 0
        self._dead_bytes = 0
        self._mutex = threading.Lock()
        self.recovery: Recovery | None = None

    # -- opening and closing ----------------------------------------------------------
    def open(self) -> Recovery:
        """Lock the file, recover it after a crash and index the pending events."""
        if self._fd is not None:
            raise OutboxError(f"outbox {self.path} is already open")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutboxError(
                f"cannot create the outbox directory {self.path.parent}: {error.strerror}; "
                "set redis.outbox.path to a writable location"
            ) from None
        self._lock()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
            self.recovery = self._recover()
        except BaseException:
            self.close()
            raise
        if self.recovery.torn_bytes or self.recovery.skipped_bytes:
            log.warning(
                "outbox recovered after an interrupted write",
                extra={
                    "path": str(self.path),
                    "torn_bytes": self.recovery.torn_bytes,
                    "skipped_bytes": self.recovery.skipped_bytes,
                    "pending": self.recovery.pending,
                },
            )
        return self.recovery

    def _lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as error:
            raise OutboxError(f"cannot open {lock_path}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise OutboxError(
                    f"outbox {self.path} is in use by pid {holder}: every pipeline worker "
                    "needs its own outbox (give each a distinct pipeline.worker_id, or set "
                    "redis.outbox.path)"
                ) from None
            raise OutboxError(f"cannot lock {lock_path}: {error.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Outbox:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- state ------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def size_bytes(self) -> int:
        return self._size

    def pending_seqs(self) -> list[int]:
        with self._mutex:
            return list(self._pending)

    def oldest_age_s(self, now: float | None = None) -> float:
        """Seconds the oldest pending event has waited (0 when empty): the delivery lag."""
        with self._mutex:
            first = next(iter(self._pending.values()), None)
        if first is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - first.spooled_at)

    # -- writing ----------------------------------------------------------------------
    def append(
        self,
        event_json: bytes,
        snapshot: bytes | None = None,
        width: int = 0,
        height: int = 0,
        *,
        spooled_at: float | None = None,
    ) -> tuple[int, bool]:
        """Write one event durably; returns (seq, whether its snapshot was kept).

        The snapshot is left out when it would take the file past ``snapshot_max_bytes`` or
        when only that makes the event fit; ``OutboxFull`` when even the bare event does not fit.
        """
        with self._mutex:
            self._require_open()
            seq = self._next_seq
            at = time.time() if spooled_at is None else spooled_at
            record = self._event_record(seq, at, event_json, snapshot, width, height)
            keep = snapshot is not None and self._size + len(record) <= self.snapshot_max_bytes
            if snapshot is not None and not keep:
                record = self._event_record(seq, at, event_json, None, width, height)
            if self._size + len(record) > self.max_bytes and self._dead_bytes:
                self._compact_locked()
            if keep and self._size + len(record) > self.max_bytes:
                keep = False
                record = self._event_record(seq, at, event_json, None, width, height)
            if self._size + len(record) > self.max_bytes:
                raise OutboxFull(
                    f"outbox {self.path} is full ({self._size} of {self.max_bytes} bytes, "
                    f"{len(self._pending)} events waiting for Redis)"
                )
            offset = self._size
            self._write(self._require_open(), record, sync=self.fsync)  # new fd if compacted
            self._pending[seq] = _Entry(offset, len(record), at)
            self._next_seq = seq + 1
            return seq, keep

    def mark_delivered(self, seq: int) -> None:
        """Record that Redis has the event (not fsync'd: a lost marker means a harmless replay)."""
        with self._mutex:
            fd = self._require_open()
            entry = self._pending.pop(seq, None)
            if entry is None:
                return
            if not self._pending:
                # Nothing waits: start the file afresh instead of growing it forever.
                os.ftruncate(fd, HEADER.size)
                self._size = HEADER.size
                self._dead_bytes = 0
                return
            marker = self._record(TYPE_DONE, DONE.pack(seq))
            self._write(fd, marker, sync=False)
            self._dead_bytes += entry.length + len(marker)
            if self._dead_bytes >= COMPACT_MIN_BYTES and self._dead_bytes * 2 >= self._size:
                self._compact_locked()

    # -- reading ----------------------------------------------------------------------
    def oldest(self) -> OutboxRecord | None:
        with self._mutex:
            fd = self._require_open()
            seq = next(iter(self._pending), None)
            if seq is None:
                return None
            entry = self._pending[seq]
            raw = os.pread(fd, entry.length, entry.offset)
        return self._parse_event(raw[RECORD.size :])

    def read(self, seq: int) -> OutboxRecord:
        with self._mutex:
            fd = self._require_open()
            entry = self._pending[seq]
            raw = os.pread(fd, entry.length, entry.offset)
        return self._parse_event(raw[RECORD.size :])

    # -- internals --------------------------------------------------------------------
    def _require_open(self) -> int:
        if self._fd is None:
            raise OutboxError(f"outbox {self.path} is not open")
        return self._fd

    @staticmethod
    def _record(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return RECORD.pack(RECORD_MAGIC, kind, len(payload), crc) + payload

    def _event_record(
        self,
        seq: int,
        at: float,
        event_json: bytes,
        snapshot: bytes | None,
        width: int,
        height: int,
    ) -> bytes:
        payload = (
            EVENT.pack(seq, at, width, height, len(event_json)) + event_json + (snapshot or b"")
        )
        return self._record(TYPE_EVENT, payload)

    @staticmethod
    def _parse_event(payload: bytes) -> OutboxRecord:
        seq, at, width, height, json_len = EVENT.unpack_from(payload)
        start = EVENT.size
        event_json = payload[start : start + json_len]
        snapshot = payload[start + json_len :] or None
        return OutboxRecord(seq, at, event_json, snapshot, width, height)

    def _write(self, fd: int, data: bytes, *, sync: bool) -> None:
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(fd, view[written:])
            if sync:
                os.fsync(fd)
        except OSError as error:
            # Take back a partial record so the file stays well-formed for later appends.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)
            raise OutboxError(f"cannot write the outbox {self.path}: {error.strerror}") from None
        self._size += len(data)

    def _recover(self) -> Recovery:
        fd = self._require_open()
        size = os.fstat(fd).st_size
        if size < HEADER.size:
            existing = os.pread(fd, size, 0)
            if existing and HEADER.pack(FILE_MAGIC, VERSION)[:size] != existing:
                raise self._not_an_outbox()
            os.ftruncate(fd, 0)
            os.write(fd, HEADER.pack(FILE_MAGIC, VERSION))
            os.fsync(fd)
            self._size = HEADER.size
            return Recovery(0, 0, torn_bytes=size, skipped_bytes=0)
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as data:
            magic, version = HEADER.unpack_from(data, 0)
            if magic != FILE_MAGIC:
                raise self._not_an_outbox()
            if version != VERSION:
                raise OutboxError(
                    f"outbox {self.path} has format version {version}, this SharpEyes "
                    f"reads version {VERSION}: deliver it with the version that wrote it"
                )
            offset = HEADER.size
            delivered = skipped = 0
            end = HEADER.size
            while offset < size:
                parsed = self._parse_at(data, offset, size)
                if parsed is None:
                    resume = self._resync(data, offset + 1, size)
                    if resume is None:
                        break  # the rest is a torn tail
                    skipped += resume - offset
                    offset = resume
                    continue
                kind, payload, length = parsed
                if kind == TYPE_EVENT:
                    seq, at = struct.unpack_from(">Qd", payload)
                    self._pending[seq] = _Entry(offset, length, at)
                    self._next_seq = max(self._next_seq, seq + 1)
                else:
                    (seq,) = DONE.unpack_from(payload)
                    done = self._pending.pop(seq, None)
                    delivered += done is not None
                    self._dead_bytes += length + (done.length if done else 0)
                    self._next_seq = max(self._next_seq, seq + 1)
                offset += length
                end = offset
        torn = size - end
        self._size = end
        if skipped:
            self._compact_locked()  # rewrite without the damaged bytes
        elif torn:
            os.ftruncate(fd, end)
            os.fsync(fd)
        if not self._pending and self._size > HEADER.size:
            os.ftruncate(fd, HEADER.size)
            self._size = HEADER.size
            self._dead_bytes = 0
        return Recovery(len(self._pending), delivered, torn_bytes=torn, skipped_bytes=skipped)

    def _not_an_outbox(self) -> OutboxError:
        return OutboxError(
            f"{self.path} is not a SharpEyes outbox file: move it away or point "
            "redis.outbox.path elsewhere"
        )

    @staticmethod
    def _parse_at(data: mmap.mmap, offset: int, size: int) -> tuple[bytes, bytes, int] | None:
        if offset + RECORD.size > size:
            return None
        magic, kind, length, crc = RECORD.unpack_from(data, offset)
        if magic != RECORD_MAGIC or kind not in (TYPE_EVENT, TYPE_DONE) or length > MAX_RECORD:
            return None
        end = offset + RECORD.size + length
        if end > size:
            return None
        payload = data[offset + RECORD.size : end]
        if zlib.crc32(kind + payload) != crc:
            return None
        minimum = EVENT.size if kind == TYPE_EVENT else DONE.size
        if len(payload) < minimum:
            return None
        return kind, payload, RECORD.size + length

    def _resync(self, data: mmap.mmap, start: int, size: int) -> int | None:
        """The offset of the next intact record after damage, if any."""
        position = start
        while (found := data.find(RECORD_MAGIC, position, size)) != -1:
            if self._parse_at(data, found, size) is not None:
                return found
            position = found + 1
        return None

    def _compact_locked(self) -> None:
        """Rewrite the file with only the pending events (atomic rename, fsync'd)."""
        fd = self._require_open()
        temporary = self.path.with_name(self.path.name + ".compact")
        new_fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o640)
        try:
            os.write(new_fd, HEADER.pack(FILE_MAGIC, VERSION))
            offset = HEADER.size
            moved: dict[int, _Entry] = {}
            for seq, entry in self._pending.items():
                raw = os.pread(fd, entry.length, entry.offset)
                os.write(new_fd, raw)
                moved[seq] = _Entry(offset, entry.length, entry.spooled_at)
                offset += entry.length
            os.fsync(new_fd)
            os.replace(temporary, self.path)
        except OSError as error:
            os.close(new_fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise OutboxError(f"cannot compact the outbox {self.path}: {error.strerror}") from None
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        os.close(fd)
        self._fd = new_fd
        self._pending = moved
        self._size = offset
        self._dead_bytes = 0
