"""The API load benchmark runs end to end in a tiny configuration and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import api_load


@pytest.mark.slow
def test_api_load_benchmark_quick(tmp_path: Path) -> None:
    assert api_load.main(["--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "api_load.json").read_text())
    for backend in ("sqlite", "postgresql"):
        ingest = report["ingest"][backend]
        assert ingest["cases"] == report["config"]["alerts"] // 2  # one case per episode
        assert ingest["sharpeyes_alerts_per_s"] > 0 and ingest["ratio_to_baseline"] > 0
        feed = report["feed"][backend]["sharpeyes_feed"]
        assert feed["operators_missing_alerts"] == 0
        assert feed["samples"] == report["config"]["operators"] * report["config"]["feed_alerts"]
    assert "| postgresql |" in (tmp_path / "api_load.md").read_text()
