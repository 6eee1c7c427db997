"""The deblocking benchmark runs end to end on tiny clips and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import deblock

CLIPS = ("video", "photos", "mall, GOP 2 s", "mall, GOP 10 s", "mall, GOP 2 s, tiled 640×480")


def test_deblock_benchmark_tiny_run_compares_both_decodes(tmp_path: Path) -> None:
    tiny = ["--seconds", "3", "--size", "320x180", "--gop", "10", "--repeat", "1"]
    mall = ["--mall-frames", "12", "--tiled", "640x480"]
    report = deblock.main([*tiny, *mall, "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "deblock.json").read_text())
    assert saved["results"] == report["results"]
    rows = {(row["clip"], row["pictures"]): row for row in saved["results"]}
    assert set(rows) == {(c, p) for c in CLIPS for p in ("keyframes", "between keyframes")}
    for clip in CLIPS:
        key, between = rows[clip, "keyframes"], rows[clip, "between keyframes"]
        assert key["count"] >= 1 and between["count"] > key["count"]
        # Keyframes are decoded exactly either way: same pixels, same boxes.
        assert key["psnr_min_db"] == deblock.EXACT_PSNR
        assert key["boxes_exact"] == key["boxes_fast"] == key["matched"]
        # Between keyframes the pictures differ (the filter really was skipped), but little.
        assert 30 < between["psnr_min_db"] < deblock.EXACT_PSNR
        assert between["exact_ms"] > 0 and between["fast_ms"] > 0
        assert 0 <= between["precision"] <= 1 and 0 <= between["recall"] <= 1
    # 12 Mall frames at 2 fps: a keyframe every 4 frames, or only the first.
    assert rows["mall, GOP 2 s", "keyframes"]["count"] == 3
    assert rows["mall, GOP 10 s", "keyframes"]["count"] == 1
    assert saved["config"]["tiled"] == [640, 480]
    for (clip, _), row in rows.items():  # counts are checked where annotations exist
        annotated = clip.startswith("mall")
        assert (row["mae_exact"] is not None) == annotated == (row["mae_fast"] is not None)
        if annotated:
            assert row["boxes_exact"] > 0 and row["mae_exact"] >= 0
    markdown = (tmp_path / "deblock.md").read_text()
    assert "| clip | pictures | n | decoder ms exact |" in markdown
    assert "| mall, GOP 2 s | between keyframes | 9 |" in markdown
