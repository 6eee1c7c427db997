"""The delivery benchmark runs (tiny configuration) and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import delivery


def test_delivery_benchmark_writes_its_report(tmp_path: Path) -> None:
    assert delivery.main(["--alerts", "10", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "delivery.json").read_text())
    results = report["results"]
    assert {"baseline", "sharpeyes", "sharpeyes_nofsync", "replay"} <= set(results)
    assert results["sharpeyes"]["alerts"] == 10 and results["replay"]["alerts"] == 10
    assert report["ratios"]["sharpeyes_vs_baseline_time_per_alert"] > 0
    assert "| baseline: SET snapshot + XADD |" in (tmp_path / "delivery.md").read_text()
