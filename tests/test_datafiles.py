"""Locating and verifying data files through SHARPEYES_DATA."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from models.datafiles import ENV_VAR, DataFileError, DataFiles, default_search_path


def make_data_dir(root: Path, files: dict[str, bytes], listed: dict[str, bytes] | None = None):
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    sums = listed if listed is not None else files
    (root / "SHA256SUMS").write_text(
        "".join(f"{hashlib.sha256(c).hexdigest()}  {n}\n" for n, c in sums.items())
    )


def test_explicit_setting_is_the_only_place_looked(tmp_path: Path) -> None:
    assert default_search_path({ENV_VAR: str(tmp_path)}) == [tmp_path]
    assert len(default_search_path({})) == 2


def test_missing_file_names_the_file_and_the_setting(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    make_data_dir(tmp_path, {})
    with pytest.raises(DataFileError) as error:
        DataFiles.from_env().path("models/yolox_nano_416.onnx")
    message = str(error.value)
    assert "models/yolox_nano_416.onnx" in message
    assert ENV_VAR in message and str(tmp_path) in message


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    make_data_dir(tmp_path, {"models/m.onnx": b"tampered"}, listed={"models/m.onnx": b"real"})
    with pytest.raises(DataFileError, match="SHA-256"):
        DataFiles([tmp_path]).path("models/m.onnx")


def test_unlisted_file_is_refused(tmp_path: Path) -> None:
    make_data_dir(tmp_path, {"models/m.onnx": b"x"}, listed={})
    with pytest.raises(DataFileError, match="not listed"):
        DataFiles([tmp_path]).path("models/m.onnx")


def test_verified_file_and_sidecar_manifest(tmp_path: Path, data: DataFiles) -> None:
    make_data_dir(tmp_path, {"models/m.onnx": b"weights"})
    assert DataFiles([tmp_path]).path("models/m.onnx").read_bytes() == b"weights"
    # The Mall frames are listed in mall/frames.sha256 rather than in SHA256SUMS.
    assert data.path("mall/frames/seq_000001.jpg").is_file()


def test_real_model_files_verify(data: DataFiles, tmp_path: Path) -> None:
    path = data.path("models/yolox_nano_416_dynbatch.onnx")
    copy = tmp_path / "models" / path.name
    copy.parent.mkdir()
    shutil.copy(path, copy)
    (tmp_path / "SHA256SUMS").write_text((path.parent.parent / "SHA256SUMS").read_text())
    assert DataFiles([tmp_path]).path(f"models/{path.name}") == copy
