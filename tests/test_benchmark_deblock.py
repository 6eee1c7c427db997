"""The deblocking benchmark runs end to end on tiny clips and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import deblock


def test_deblock_benchmark_tiny_run_compares_both_decodes(tmp_path: Path) -> None:
    report = deblock.main(
        [
            "--seconds",
            "3",
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
    saved = json.loads((tmp_path / "deblock.json").read_text())
    assert saved["results"] == report["results"]
    rows = {(row["clip"], row["pictures"]): row for row in saved["results"]}
    assert set(rows) == {
        (clip, pictures)
        for clip in ("video", "photos")
        for pictures in ("keyframes", "between keyframes")
    }
    for clip in ("video", "photos"):
        key, between = rows[clip, "keyframes"], rows[clip, "between keyframes"]
        assert key["count"] >= 3 and between["count"] > key["count"]
        # Keyframes are decoded exactly either way: same pixels, same boxes.
        assert key["psnr_min_db"] == deblock.EXACT_PSNR
        assert key["boxes_exact"] == key["boxes_fast"] == key["matched"]
        # Between keyframes the pictures differ (the filter really was skipped), but little.
        assert 30 < between["psnr_min_db"] < deblock.EXACT_PSNR
        assert between["exact_ms"] > 0 and between["fast_ms"] > 0
        assert 0 <= between["precision"] <= 1 and 0 <= between["recall"] <= 1
    assert rows["photos", "keyframes"]["boxes_exact"] > 0  # the photos have people to find
    markdown = (tmp_path / "deblock.md").read_text()
    assert "| clip | pictures | n | decoder ms exact |" in markdown
