"""The YAML config: the shipped example validates; bad fields get exit 2 and their path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sharpeyes.config import ConfigError, load_config, parse_config
from tests.helpers import SHARPEYES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sharpeyes.example.yaml"

CAMERA = """
cameras:
  - id: plaza-north
    name: Plaza north
    source: rtsp://10.1.2.3:554/Streaming/Channels/101
    location: {district: D, street: S, community: C, grid_cell: G1}
    zones:
      - id: front
        name: Front
        polygon: [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]]
        gathering: {min_people: 12, min_duration_s: 20}
"""


def test_shipped_example_is_valid() -> None:
    config = load_config(EXAMPLE, environ={"CAM_PASSWORD": "x"}).config
    assert config.cameras and all(camera.zones for camera in config.cameras)


def test_valid_config_round_trip() -> None:
    config = parse_config(CAMERA)
    zone = config.cameras[0].zones[0]
    assert zone.gathering.min_people == 12 and zone.gathering.min_duration_s == 20
    assert config.pipeline_config().cameras[0].id == "plaza-north"
    assert config.api_config().redis.stream == "sharpeyes:alerts"


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            ("min_people: 12", "min_people: 0"),
            "cameras[0].zones[0].gathering.min_people",
            "greater than or equal to 1",
        ),
        (
            ("[0.9, 1.0], [0.1, 1.0]", "[0.1, 1.0], [0.9, 1.0]"),
            "cameras[0].zones[0].polygon",
            "cross",
        ),
        (("[0.9, 1.0]", "[1.9, 1.0]"), "cameras[0].zones[0].polygon", "between 0 and 1"),
        (("id: plaza-north", "id: Plaza North"), "cameras[0].id", "Lower-case"),
        (
            ("grid_cell: G1", "grid_cel: G1"),
            "cameras[0].location.grid_cel",
            "did you mean 'grid_cell'",
        ),
        (("rtsp://10.1.2.3", "ftp://10.1.2.3"), "cameras[0].source", "rtsp://"),
    ],
)
def test_bad_field_names_its_path_and_fix(change, path, words) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(CAMERA.replace(*change), "cams.yaml")
    text = error.value.render()
    assert path in text and words in text
    assert "(line " in text


def test_duplicate_ids_and_missing_env() -> None:
    twice = CAMERA + CAMERA.split("cameras:\n", 1)[1]
    with pytest.raises(ConfigError, match="used twice"):
        parse_config(twice)
    with pytest.raises(ConfigError, match=r"\$\{CAM_PW\} is not set"):
        parse_config(CAMERA + "    password: ${CAM_PW}\n", environ={})
    assert parse_config(CAMERA + "    password: ${CAM_PW:-x}\n", environ={}).cameras[0].password


def test_cli_exit_code_2_with_field_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CAMERA.replace("min_people: 12", "min_people: -3") + "redis:\n  url: nope\n")
    result = subprocess.run(
        [*SHARPEYES, "config", "check", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "cameras[0].zones[0].gathering.min_people" in result.stderr
    assert "redis.url" in result.stderr
    assert "Traceback" not in result.stderr

    good = tmp_path / "good.yaml"
    good.write_text(CAMERA)
    result = subprocess.run(
        [*SHARPEYES, "config", "check", str(good)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "1 camera(s), 1 zone(s)" in result.stdout


def test_missing_config_file_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [*SHARPEYES, "run", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "file not found" in result.stderr and "Traceback" not in result.stderr
