"""``sharpeyes models``: list, show, verify (against real and tampered files), export errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from models.datafiles import DataFiles
from models.registry import CARDS
from sharpeyes.cli import main


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def test_list_shows_every_card_verified(cli: CliRunner) -> None:
    result = cli.invoke(main, ["models", "list"])
    assert result.exit_code == 0, result.output
    for name in CARDS:
        line = next(line for line in result.output.splitlines() if line.startswith(name + " "))
        assert "verified" in line
    assert "(default)" in result.output and "tf_ssd" in result.output


def test_show_prints_the_model_card(cli: CliRunner) -> None:
    result = cli.invoke(main, ["models", "show", "ssdlite_mobilenet_v2_person"])
    assert result.exit_code == 0
    for expected in ("license:       MIT", "300×300", "person = 1", "pedestrian-detection"):
        assert expected in result.output
    bad = cli.invoke(main, ["models", "show", "yolov99"])
    assert bad.exit_code == 2 and "unknown model 'yolov99'" in bad.output


def test_verify_passes_on_the_data_directory(cli: CliRunner) -> None:
    result = cli.invoke(main, ["models", "verify"])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == len(CARDS)


def test_verify_names_a_tampered_file_and_exits_1(
    cli: CliRunner, data: DataFiles, tmp_path: Path, monkeypatch
) -> None:
    copy = tmp_path / "data"
    (copy / "models").mkdir(parents=True)
    root = data.root()
    shutil.copy(root / "SHA256SUMS", copy / "SHA256SUMS")
    for card in CARDS.values():
        shutil.copy(root / card.file, copy / card.file)
    with (copy / "models" / "nanodet_m_416.onnx").open("ab") as handle:
        handle.write(b"\0")
    monkeypatch.setenv("SHARPEYES_DATA", str(copy))
    result = cli.invoke(main, ["models", "verify"])
    assert result.exit_code == 1
    assert "FAILED  nanodet_m_416:" in result.output and "SHA-256" in result.output
    assert "ok      yolox_nano_416 " in result.output


def test_verify_of_an_unknown_target_is_bad_input(cli: CliRunner) -> None:
    result = cli.invoke(main, ["models", "verify", "no-such-model"])
    assert result.exit_code == 2
    assert "TARGETS: 'no-such-model' is neither a known model" in result.output


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.pt", "WEIGHTS: .*missing.pt does not exist"),
        (lambda tmp: tmp, "is not a file"),
        (lambda tmp: _touch(tmp / "model.onnx"), "model.onnx is not ultralytics weights"),
    ],
)
def test_export_refuses_bad_weights_with_exit_2(
    cli: CliRunner, tmp_path: Path, make, message: str
) -> None:
    result = cli.invoke(main, ["models", "export", str(make(tmp_path))])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: WEIGHTS")
    import re

    assert re.search(message, result.output)
    assert "Traceback" not in result.output


def test_export_refuses_bad_options_with_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    weights = _touch(tmp_path / "w.pt")
    result = cli.invoke(main, ["models", "export", str(weights), "--imgsz", "650"])
    assert result.exit_code == 2 and "--imgsz 650: use a multiple of 32" in result.output
    result = cli.invoke(main, ["models", "export", str(weights), "--opset", "7"])
    assert result.exit_code == 2 and "--opset 7" in result.output


def test_export_without_the_extra_says_how_to_install_it(cli: CliRunner, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ultralytics is installed here (the export venv): see test_models_export")
    result = cli.invoke(main, ["models", "export", str(_touch(tmp_path / "w.pt"))])
    assert result.exit_code == 1
    assert "ultralytics is not installed" in result.output and "sharpeyes[export]" in result.output


def _touch(path: Path) -> Path:
    path.write_bytes(b"not really weights")
    return path
