"""ONVIF: the real client libraries (onvif-zeep-async, wsdiscovery) against a test camera.

The camera (tests/onvif_device) is a standards-following SOAP device with WS-UsernameToken
digest authentication, Media and Media2, HTTP-digest snapshots and a WS-Discovery responder,
on 127.0.0.1; its stream URIs point at a real GStreamer RTSP server. Multicast discovery runs
inside a private network namespace that the test creates (``unshare --net``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from camera_adapters import onvif_discovery, onvif_probe
from camera_adapters.pyav_source import PyAVSource, SourceOptions
from sharpeyes import sample_clips
from sharpeyes.cli import main as cli
from sharpeyes.config import parse_config
from sharpeyes.devservers.rtsp import RtspServer, free_port
from tests.helpers import wait_for
from tests.netns import run_module_in_netns
from tests.onvif_device import DeviceConfig, DiscoveryResponder, OnvifTestDevice, Profile

USER, PASSWORD = "admin", "Cam-p@ss:1"


@pytest.fixture(scope="module")
def camera_streams(sample_clip: Path) -> Iterator[RtspServer]:
    """The camera's own RTSP server: a main stream and a smaller sub-stream, with login."""
    sub = sample_clips.transcode(sample_clip, size=(384, 216), fps=10, gop=10, seconds=20)
    with RtspServer({"main": sample_clip, "sub": sub}, user=USER, password=PASSWORD) as server:
        yield server


def profiles(server: RtspServer, *, h265: bool = False) -> list[Profile]:
    found = [
        Profile("main", "Main stream", server.url("main"), 768, 432, 10, 10),
        Profile("sub", "Sub stream", server.url("sub"), 384, 216, 10, 10),
    ]
    if h265:
        found.append(Profile("hevc", "H.265 main", server.url("main"), 768, 432, 10, 20, "H265"))
    return found


@pytest.fixture
def device(camera_streams: RtspServer) -> Iterator[OnvifTestDevice]:
    config = DeviceConfig(
        username=USER,
        password=PASSWORD,
        profiles=profiles(camera_streams),
        snapshot_jpeg=b"\xff\xd8\xff\xe0 test snapshot \xff\xd9",
    )
    with OnvifTestDevice(config) as running:
        yield running


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_probe_reads_identity_profiles_and_stream_uris(
    device: OnvifTestDevice, camera_streams: RtspServer
) -> None:
    camera = onvif_probe.probe(f"127.0.0.1:{device.port}", USER, PASSWORD, timeout=20)
    assert camera.info == onvif_probe.DeviceInfo("SharpEyes", "TestCam-1", "1.0.0", "SE0001", "TC1")
    assert camera.media2 and abs(camera.clock_offset_s or 0) < 5
    by_token = {p.token: p for p in camera.profiles}
    assert set(by_token) == {"main", "sub"}
    main = by_token["main"]
    assert (main.encoding, main.width, main.height, main.fps, main.gov_length) == (
        "H264",
        768,
        432,
        10.0,
        10,
    )
    assert main.keyframe_interval_s == pytest.approx(1.0)
    assert main.stream_uri == camera_streams.url("main")
    assert main.snapshot_uri == f"{device.base}/onvif/snapshot/main.jpg"
    operations = device.log.operations
    for operation in (
        "device_service:GetSystemDateAndTime",
        "device_service:GetServices",
        "device_service:GetDeviceInformation",
        "media_service:GetProfiles",
        "media_service:GetStreamUri",
        "media_service:GetSnapshotUri",
        "media2_service:GetProfiles",
        "media2_service:GetStreamUri",
        "media2_service:GetSnapshotUri",
    ):
        assert operation in operations
    assert device.log.rejected == []  # every authenticated call carried a valid digest
    assert "Cam-p@ss" not in repr(camera)
    jpeg = onvif_probe.fetch_snapshot(main, USER, PASSWORD, timeout=10)
    assert jpeg == device.config.snapshot_jpeg and device.log.snapshots == 1
    with pytest.raises(onvif_probe.OnvifAuthError):
        onvif_probe.fetch_snapshot(main, USER, "not-it", timeout=10)


def test_the_probed_camera_is_a_spec_the_pipeline_runs(device: OnvifTestDevice) -> None:
    camera = onvif_probe.probe(f"127.0.0.1:{device.port}", USER, PASSWORD, timeout=20)
    profile = camera.choose_profile(min_width=640)
    assert profile.token == "main"  # the smallest stream at least 640 wide
    assert camera.choose_profile(min_width=300).token == "sub"
    spec = camera.camera_spec(profile=profile, password=PASSWORD)
    assert spec.id == "sharpeyes-testcam-1-se0001" and spec.username == USER
    assert "@" not in spec.source and spec.location.district == "unassigned"
    source = PyAVSource(spec, SourceOptions(analysis_size=(416, 416)))
    source.start()
    try:
        frame = wait_for(source.frames.take, 20)
    finally:
        assert source.stop(10)
    assert frame.image.shape == (234, 416, 3) and frame.source_size == (768, 432)


def test_media1_only_device_and_media2_only_h265(camera_streams: RtspServer) -> None:
    config = DeviceConfig(
        username=USER, password=PASSWORD, profiles=profiles(camera_streams), media2=False
    )
    with OnvifTestDevice(config) as old:
        camera = onvif_probe.probe(f"127.0.0.1:{old.port}", USER, PASSWORD, timeout=20)
    assert not camera.media2
    assert {p.service for p in camera.profiles} == {"media"}
    assert not any(op.startswith("media2") for op in old.log.operations)

    config = DeviceConfig(
        username=USER, password=PASSWORD, profiles=profiles(camera_streams, h265=True)
    )
    with OnvifTestDevice(config) as new:
        camera = onvif_probe.probe(f"127.0.0.1:{new.port}", USER, PASSWORD, timeout=20)
    hevc = next(p for p in camera.profiles if p.token == "hevc")
    assert (hevc.service, hevc.encoding, hevc.gov_length) == ("media2", "H265", 20)
    assert hevc.stream_uri == camera_streams.url("main")


def test_wrong_password_is_an_auth_error_that_hides_it(device: OnvifTestDevice) -> None:
    with pytest.raises(onvif_probe.OnvifAuthError) as error:
        onvif_probe.probe(f"127.0.0.1:{device.port}", USER, "wrong-Secret-9", timeout=20)
    message = str(error.value)
    assert "rejected user 'admin'" in message and "wrong-Secret-9" not in message
    assert device.log.rejected and "wrong username or password" in device.log.rejected[0]


def test_a_camera_clock_hours_off_still_authenticates(camera_streams: RtspServer) -> None:
    config = DeviceConfig(
        username=USER,
        password=PASSWORD,
        profiles=profiles(camera_streams),
        clock_offset=timedelta(hours=2),
    )
    with OnvifTestDevice(config) as skewed:
        camera = onvif_probe.probe(f"127.0.0.1:{skewed.port}", USER, PASSWORD, timeout=20)
        assert camera.clock_offset_s == pytest.approx(7200, abs=5)
        assert skewed.log.rejected == []


def test_unreachable_device_and_bad_addresses() -> None:
    with pytest.raises(onvif_probe.OnvifUnreachable, match="connection refused"):
        onvif_probe.probe(f"127.0.0.1:{free_port()}", USER, PASSWORD, timeout=10)
    for bad in ("", "rtsp://host/x", "http://admin:pw@host", "http://[::1"):
        with pytest.raises(ValueError):
            onvif_probe.parse_device_address(bad)
    address = onvif_probe.parse_device_address("http://192.0.2.7:8080/onvif/device_service")
    assert (address.host, address.port, address.device_service) == (
        "192.0.2.7",
        8080,
        "http://192.0.2.7:8080/onvif/device_service",
    )


def test_directed_ws_discovery_finds_the_camera(device: OnvifTestDevice) -> None:
    scopes = [
        "onvif://www.onvif.org/name/Plaza%20East",
        "onvif://www.onvif.org/hardware/TC1",
        "onvif://www.onvif.org/location/city/Guangzhou",
    ]
    with DiscoveryResponder(
        epr=device.uuid, xaddrs=[device.device_service], scopes=scopes
    ) as responder:
        silent = free_port()  # nothing listens there: no answer, no error
        found = onvif_discovery.discover(
            1.5, targets=[("127.0.0.1", responder.port), ("127.0.0.1", silent)], multicast=False
        )
    assert len(found) == 1
    camera = found[0]
    assert camera.epr == device.uuid and camera.xaddrs == (device.device_service,)
    assert (camera.name, camera.hardware, camera.location) == (
        "Plaza East",
        "TC1",
        "city/Guangzhou",
    )
    assert camera.address == f"127.0.0.1:{device.port}"
    assert responder.probes >= 1


def test_cli_probe_prints_profiles_and_a_config_entry_that_loads(
    device: OnvifTestDevice, restore_logging: None, tmp_path: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "cameras",
            "probe",
            f"127.0.0.1:{device.port}",
            "-u",
            USER,
            "--id",
            "plaza-east",
            "--snapshot",
            str(tmp_path / "snapshot.jpg"),
            "--seconds",
            "2.5",
            "--json",
        ],
        env={"SHARPEYES_CAMERA_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    report = json.loads(result.output)
    assert report["chosen_profile"] == "main"
    assert (tmp_path / "snapshot.jpg").read_bytes() == device.config.snapshot_jpeg
    assert report["stream"]["codec"] == "h264" and report["stream"]["width"] == 768
    assert report["stream"]["keyframe_interval_s"] == pytest.approx(1.0, abs=0.05)
    entry = report["camera"]
    assert entry["password"] == "${PLAZA_EAST_PASSWORD}"
    config = parse_config(
        json.dumps({"cameras": [entry]}), environ={"PLAZA_EAST_PASSWORD": PASSWORD}
    )
    spec = config.cameras[0]
    assert spec.password is not None and spec.password.get_secret_value() == PASSWORD
    assert spec.stream_url().startswith("rtsp://admin:Cam-p%40ss%3A1@127.0.0.1")

    text = runner.invoke(
        cli,
        ["cameras", "probe", f"127.0.0.1:{device.port}", "-u", USER, "--no-check-stream"],
        env={"SHARPEYES_CAMERA_PASSWORD": PASSWORD},
    )
    assert text.exit_code == 0 and "* main (Main stream): H264 768×432 10 fps" in text.output
    assert "password: ${SHARPEYES_TESTCAM_1_SE0001_PASSWORD}" in text.output


def test_cli_errors_have_exit_codes_and_no_traceback(
    device: OnvifTestDevice, camera_streams: RtspServer, restore_logging: None
) -> None:
    runner = CliRunner()
    wrong = runner.invoke(
        cli, ["cameras", "probe", f"127.0.0.1:{device.port}", "-u", USER, "-p", "nope-nope"]
    )
    assert wrong.exit_code == 1 and "rejected user 'admin'" in wrong.output
    assert "nope-nope" not in wrong.output and "Traceback" not in wrong.output
    bad = runner.invoke(cli, ["cameras", "probe", "ftp://camera.example"])
    assert bad.exit_code == 2 and "TARGET" in bad.output
    rtsp_wrong = runner.invoke(
        cli, ["cameras", "probe", camera_streams.url("main"), "-u", USER, "-p", "nope-nope"]
    )
    assert rtsp_wrong.exit_code == 1 and "rejected the credentials" in rtsp_wrong.output
    assert "nope-nope" not in rtsp_wrong.output
    rtsp_ok = runner.invoke(
        cli,
        [
            *("cameras", "probe", camera_streams.url("sub"), "-u", USER),
            *("--analysis-fps", "4", "--seconds", "2.5"),
        ],
        env={"SHARPEYES_CAMERA_PASSWORD": PASSWORD},
    )
    assert rtsp_ok.exit_code == 0, rtsp_ok.output
    assert "h264" in rtsp_ok.output and "384×216" in rtsp_ok.output
    assert "decode:    all at 4 analyses/s" in rtsp_ok.output


def test_cli_discover_with_a_directed_probe(device: OnvifTestDevice, restore_logging: None) -> None:
    with DiscoveryResponder(
        epr=device.uuid,
        xaddrs=[device.device_service],
        scopes=["onvif://www.onvif.org/name/Gate"],
    ) as responder:
        result = CliRunner().invoke(
            cli,
            [
                "cameras",
                "discover",
                "--no-multicast",
                "--address",
                f"127.0.0.1:{responder.port}",
                "--timeout",
                "1",
            ],
        )
    assert result.exit_code == 0, result.output
    assert f"127.0.0.1:{device.port}" in result.output and "Gate" in result.output
    assert device.uuid in result.output
    bad = CliRunner().invoke(cli, ["cameras", "discover", "--no-multicast"])
    assert bad.exit_code == 2


@pytest.mark.slow
def test_multicast_discovery_in_a_private_network_namespace() -> None:
    """Multicast WS-Discovery and the real CLI, where the only network is a private loopback
    (wsdiscovery skips loopback addresses, so it gets a private non-loopback one). Where no
    namespace can be made this is skipped; the directed-probe tests above still run the same
    Probe / ProbeMatches messages and parsing on 127.0.0.1."""
    report = run_module_in_netns("tests.onvif_device", "netns-check")
    assert report["discover_returncode"] == 0, report["discover_stderr"]
    assert report["probes_answered"] >= 1
    found = report["found"]
    assert [d["epr"] for d in found] == [report["expected_epr"]]
    assert found[0]["xaddrs"] == [report["expected_xaddr"]]
    assert found[0]["name"] == "SharpEyes TestCam"
    assert report["probe_returncode"] == 0, report["probe_stderr"]
    assert report["probe"]["device"]["info"]["model"] == "TestCam-1"
    assert report["probe"]["camera"]["source"] == "rtsp://10.203.0.1:8554/main"
