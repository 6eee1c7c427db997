"""The decode benchmark runs end to end on a tiny clip and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import decode


def test_decode_benchmark_tiny_run_writes_json_and_markdown(tmp_path: Path) -> None:
    report = decode.main(
        [
            "--seconds",
            "2",
            "--size",
            "320x180",
            "--gop",
            "10",
            "--repeat",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    saved = json.loads((tmp_path / "decode.json").read_text())
    assert saved["clip"] == report["clip"]
    clip = saved["clip"]
    assert (clip["width"], clip["height"], clip["fps"]) == (320, 180, 25.0)
    results = {row["case"]: row for row in saved["results"]}
    assert set(results) == set(decode.CASES)
    assert results["opencv_all"]["frames_decoded"] == clip["frames"]
    assert results["pyav_all"]["frames_decoded"] == clip["frames"]
    for case in ("pyav_keyframes_resized", "sharpeyes_source_keyframes"):
        assert results[case]["frames_decoded"] == clip["keyframes"] < clip["frames"]
    for row in results.values():  # a tiny run may be below the CPU clock's resolution
        assert row["cpu_s_per_stream_s"] >= 0 and len(row["runs_cpu_s"]) == 1
        assert row["cheaper_than_opencv"] is None or row["cheaper_than_opencv"] > 0
    markdown = (tmp_path / "decode.md").read_text()
    assert "| case | frames decoded | CPU-s per stream-s |" in markdown
    assert "python -m benchmarks.decode" in markdown
