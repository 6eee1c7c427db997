"""The outbox file: durability, crash recovery, bounds and compaction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alerting.outbox import HEADER, RECORD, Outbox, OutboxError, OutboxFull
from alerting.settings import OutboxSettings


def event_json(n: int) -> bytes:
    return f'{{"n": {n}, "idempotency_key": "ep{n}:started:1"}}'.encode()


def test_events_survive_reopening_in_order(tmp_path: Path) -> None:
    path = tmp_path / "w.outbox"
    with Outbox(path) as outbox:
        assert outbox.append(event_json(1), b"\xff\xd8jpeg-one", 640, 360) == (1, True)
        assert outbox.append(event_json(2)) == (2, False)
        outbox.append(event_json(3), b"jpeg-three", 1280, 720)
    with Outbox(path) as outbox:
        assert outbox.recovery is not None and outbox.recovery.pending == 3
        assert outbox.pending_seqs() == [1, 2, 3]
        first = outbox.oldest()
        assert first is not None and first.event_json == event_json(1)
        assert (first.snapshot, first.width, first.height) == (b"\xff\xd8jpeg-one", 640, 360)
        assert outbox.read(2).snapshot is None
        outbox.mark_delivered(1)
        outbox.mark_delivered(2)
    with Outbox(path) as outbox:
        assert outbox.pending_seqs() == [3], "delivered markers are honoured after a restart"
        assert outbox.recovery.delivered == 2
        outbox.mark_delivered(3)
        assert outbox.size_bytes == HEADER.size, "an empty outbox is truncated to its header"
        assert outbox.append(event_json(4))[0] == 4, "sequence numbers keep increasing"
    assert path.stat().st_size > HEADER.size


def test_a_torn_last_record_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "w.outbox"
    with Outbox(path) as outbox:
        outbox.append(event_json(1), b"x" * 500)
        outbox.append(event_json(2))
        whole = path.stat().st_size
        outbox.append(event_json(3), b"y" * 500)
    # The machine died halfway through writing record 3.
    with path.open("r+b") as f:
        f.truncate(whole + 37)
    with Outbox(path) as outbox:
        assert outbox.recovery.torn_bytes == 37 and outbox.recovery.skipped_bytes == 0
        assert outbox.pending_seqs() == [1, 2]
        assert path.stat().st_size == whole
        assert outbox.append(event_json(3))[0] == 3
    with Outbox(path) as outbox:
        assert outbox.pending_seqs() == [1, 2, 3] and outbox.recovery.torn_bytes == 0


def test_a_damaged_record_in_the_middle_is_skipped_and_the_file_rewritten(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.outbox"
    with Outbox(path) as outbox:
        outbox.append(event_json(1))
        start_of_second = path.stat().st_size
        outbox.append(event_json(2), b"z" * 300)
        outbox.append(event_json(3))
    with path.open("r+b") as f:  # a bit flip inside record 2's payload
        f.seek(start_of_second + RECORD.size + 40)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x55]))
    with Outbox(path) as outbox:
        assert outbox.pending_seqs() == [1, 3]
        assert outbox.recovery.skipped_bytes > 300
        assert outbox.read(3).event_json == event_json(3)
    with Outbox(path) as outbox:
        assert outbox.recovery.skipped_bytes == 0, "the damaged bytes were rewritten away"
        assert outbox.pending_seqs() == [1, 3]


def test_snapshots_are_dropped_before_events_and_a_full_outbox_refuses(tmp_path: Path) -> None:
    with Outbox(tmp_path / "w.outbox", max_bytes=8_000, snapshot_max_bytes=3_000) as outbox:
        assert outbox.append(event_json(1), b"s" * 2_000)[1] is True
        assert outbox.append(event_json(2), b"s" * 2_000)[1] is False, "past the snapshot budget"
        seq, _kept = outbox.append(event_json(3), None)
        while True:
            try:
                outbox.append(event_json(seq + 1), b"s" * 100)
                seq += 1
            except OutboxFull as error:
                assert "is full" in str(error) and "waiting for Redis" in str(error)
                break
        assert outbox.size_bytes <= 8_000
        # Delivering makes room again (delivered records are compacted away when needed).
        for pending in outbox.pending_seqs()[:-1]:
            outbox.mark_delivered(pending)
        assert outbox.append(event_json(999), b"s" * 100)[0] == seq + 1


def test_compaction_keeps_only_what_waits(tmp_path: Path) -> None:
    path = tmp_path / "w.outbox"
    big = b"j" * 200_000
    with Outbox(path) as outbox:
        for n in range(12):
            outbox.append(event_json(n), big)
        before = path.stat().st_size
        for seq in outbox.pending_seqs()[:9]:
            outbox.mark_delivered(seq)
        assert path.stat().st_size < before * 0.6, "delivered records were compacted away"
        assert outbox.pending_seqs() == [10, 11, 12]
        assert outbox.read(11).snapshot == big
    with Outbox(path) as outbox:
        assert outbox.pending_seqs() == [10, 11, 12]
        assert not list(tmp_path.glob("*.compact"))


def test_one_outbox_per_worker(tmp_path: Path) -> None:
    path = tmp_path / "w.outbox"
    with Outbox(path), pytest.raises(OutboxError, match=r"in use by pid \d+.*worker_id"):
        Outbox(path).open()
    Outbox(path).open()  # free again once closed


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are somebody's notes, not alerts\n")
    with pytest.raises(OutboxError, match="not a SharpEyes outbox"):
        Outbox(path).open()
    assert path.read_text().startswith("these are"), "and left untouched"


def test_outbox_settings_path_per_worker() -> None:
    settings = OutboxSettings()
    assert settings.path_for("worker 1/a") == Path("var/outbox/worker_1_a.outbox")
    assert OutboxSettings(path="/srv/{worker_id}/o.bin").path_for("w2") == Path("/srv/w2/o.bin")
    with pytest.raises(ValueError, match=r"unknown placeholder \{host\}"):
        OutboxSettings(path="/srv/{host}.outbox")
    with pytest.raises(ValueError, match="retry_initial_s"):
        OutboxSettings(retry_initial_s=10, retry_max_s=5)


WRITER = textwrap.dedent(
    """
    import sys
    from alerting.outbox import Outbox
    outbox = Outbox(sys.argv[1])
    outbox.open()
    n = 0
    while True:
        n += 1
        seq, _ = outbox.append(b'{"n": %d}' % n, b"p" * (n % 7) * 1000)
        if n % 3 == 0:
            outbox.mark_delivered(seq - 1)
        print(seq, flush=True)
    """
)


def test_sigkill_while_appending_loses_nothing_that_was_acknowledged(tmp_path: Path) -> None:
    """A real crash: every append that returned (fsync'd) is there after SIGKILL."""
    path = tmp_path / "w.outbox"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert child.stdout is not None
    acknowledged = []
    for line in child.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) >= 150:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    acknowledged += [int(line) for line in child.stdout.read().split()]
    delivered = {seq - 1 for seq in acknowledged if seq % 3 == 0}
    last = max(acknowledged)
    if (last + 1) % 3 == 0:  # killed after appending last+1, maybe after marking `last`
        delivered.add(last)
    with Outbox(path) as outbox:
        pending = set(outbox.pending_seqs())
        assert len(pending) > 50
        for seq in acknowledged:
            if seq not in delivered:
                assert seq in pending, f"event {seq} was acknowledged but is gone"
                assert outbox.read(seq).event_json == b'{"n": %d}' % seq
        # Only the append in flight when the process died may be there unacknowledged.
        assert pending - set(acknowledged) <= {last + 1}
