"""``sharpeyes models export`` end to end with real ultralytics and torch (optional).

Runs only where the ``export`` extra is installed — ``make export-check`` builds that
environment (CPU torch, ultralytics without its CUDA dependencies) and runs this file; the
default ``make test`` leaves ultralytics out on purpose. There are no trained weights here,
so the model is built from ultralytics' yolov8n.yaml config: untrained, but its export goes
through the same path and has the real YOLOv8 output layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("ultralytics", reason="optional export extra: run `make export-check`")

from models.datafiles import sha256_of
from models.onnx_detector import load_detector
from models.settings import DetectorSettings
from sharpeyes.cli import main


@pytest.mark.slow
def test_export_yolov8_config_to_dynamic_batch_onnx(tmp_path: Path, monkeypatch) -> None:
    import ultralytics

    config = Path(ultralytics.__file__).parent / "cfg" / "models" / "v8" / "yolov8.yaml"
    weights = tmp_path / "yolov8n.yaml"
    weights.write_text(config.read_text())
    out = tmp_path / "exported"
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    result = CliRunner().invoke(
        main,
        [
            "models", "export", str(weights), "--out", str(out), "--imgsz", "320",
            "--person-class", "0",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    onnx, card_file = out / "yolov8n.onnx", out / "yolov8n.card.json"
    card = json.loads(card_file.read_text())
    assert card["layout"] == "yolov8" and card["input_size"] == [320, 320]
    assert card["opset"] == 17 and card["dynamic_batch"] and card["sha256"] == sha256_of(onnx)
    assert "AGPL" in card["license"]

    verify = CliRunner().invoke(main, ["models", "verify", str(onnx)])
    assert verify.exit_code == 0, verify.output

    detector = load_detector(DetectorSettings(name="yolov8n", path=onnx, score_threshold=0.01))
    frames = [np.full((240, 320, 3), v, np.uint8) for v in (0, 128, 255)]
    found = detector.detect(frames)
    assert len(found) == 3 and detector.fixed_batch is None
