"""``sharpeyes cameras``: find cameras (WS-Discovery) and read what they offer (ONVIF, RTSP).

Output is for integrators adding cameras: what the device is, which streams it has, which one
SharpEyes would analyse and how it would decode it, and a ``cameras:`` entry to paste into the
config. Passwords are read from an option or the environment and never printed: the entry
refers to an environment variable instead.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from sharpeyes import logs
from sharpeyes.commands.common import EXIT_BAD_INPUT, EXIT_RUNTIME, fail

PASSWORD_ENV = "SHARPEYES_CAMERA_PASSWORD"


@click.group()
def cameras() -> None:
    """Discover ONVIF cameras and probe cameras or streams before adding them."""


def _quiet_logging(verbose: bool) -> None:
    # onvif-zeep-async calls logging.basicConfig on import; configure ours first.
    logs.configure("DEBUG" if verbose else "WARNING")


@cameras.command("discover")
@click.option(
    "--timeout",
    type=click.FloatRange(0.2, 60),
    default=3.0,
    show_default=True,
    help="Seconds to wait for answers.",
)
@click.option(
    "--address",
    "addresses",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Also send a directed (unicast) probe here (default port 3702); repeatable. "
    "Finds cameras beyond the local network segment.",
)
@click.option(
    "--multicast/--no-multicast",
    default=True,
    show_default=True,
    help="Probe the local network segment by multicast (239.255.255.250:3702).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--verbose", is_flag=True, help="Log the discovery traffic.")
def discover(
    timeout: float, addresses: tuple[str, ...], multicast: bool, as_json: bool, verbose: bool
) -> None:
    """Find ONVIF cameras (NetworkVideoTransmitter) by WS-Discovery."""
    _quiet_logging(verbose)
    from camera_adapters.onvif_discovery import discover as run_discovery
    from camera_adapters.onvif_discovery import parse_target

    targets = []
    for address in addresses:
        try:
            targets.append(parse_target(address))
        except ValueError as error:
            fail(f"--address: {error}", EXIT_BAD_INPUT)
    if not targets and not multicast:
        fail("nothing to do: give --address HOST[:PORT] or allow --multicast", EXIT_BAD_INPUT)
    try:
        devices = run_discovery(timeout, targets=targets, multicast=multicast)
    except OSError as error:
        fail(f"discovery failed: {error.strerror or error}")
    if as_json:
        click.echo(json.dumps([d.as_dict() for d in devices], indent=2))
        return
    if not devices:
        where = "on the local network segment" if multicast else "at the given addresses"
        click.echo(
            f"no ONVIF camera answered {where} within {timeout:g} s (multicast does not cross "
            "routers: use --address HOST for cameras on other subnets)"
        )
        return
    click.echo(f"{len(devices)} ONVIF camera(s):")
    for device in devices:
        label = " / ".join(v for v in (device.name, device.hardware) if v) or "(no name scope)"
        click.echo(f"  {device.address or '?':24} {label}")
        click.echo(f"      id:      {device.epr}")
        for xaddr in device.xaddrs:
            click.echo(f"      service: {xaddr}")
        if device.location:
            click.echo(f"      location scope: {device.location}")
    click.echo(
        "next: sharpeyes cameras probe HOST:PORT --username USER (password from "
        f"${PASSWORD_ENV} or --password)"
    )


@cameras.command("probe")
@click.argument("target")
@click.option("--username", "-u", help="Camera user (ONVIF and RTSP).")
@click.option(
    "--password",
    "-p",
    envvar=PASSWORD_ENV,
    show_envvar=True,
    help="Camera password (better: set the environment variable).",
)
@click.option("--transport", type=click.Choice(["tcp", "udp"]), default="tcp", show_default=True)
@click.option("--profile", "profile_token", help="ONVIF: analyse this media profile token.")
@click.option(
    "--min-width",
    type=click.IntRange(1, 10000),
    default=640,
    show_default=True,
    help="ONVIF: pick the smallest H.264/H.265 profile at least this wide.",
)
@click.option(
    "--analysis-fps",
    type=click.FloatRange(0.01, 30),
    default=1.0,
    show_default=True,
    help="Analyses per second, to say which decode mode the stream needs.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(0.5, 60),
    default=5.0,
    show_default=True,
    help="Stream time to watch when checking a stream.",
)
@click.option("--timeout", type=click.FloatRange(1, 120), default=15.0, show_default=True)
@click.option(
    "--check-stream/--no-check-stream",
    default=True,
    show_default=True,
    help="ONVIF: also open the chosen stream and measure it.",
)
@click.option(
    "--nat-override",
    is_flag=True,
    help="ONVIF: the camera is behind NAT; replace the host in the URIs it returns with TARGET's.",
)
@click.option(
    "--snapshot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONVIF: save the chosen profile's snapshot (JPEG) here.",
)
@click.option(
    "--id", "camera_id", help="Camera id for the config entry (default: from the device)."
)
@click.option("--name", help="Camera name for the config entry.")
@click.option("--district", default="unassigned", show_default=True)
@click.option("--street", default="unassigned", show_default=True)
@click.option("--community", default="unassigned", show_default=True)
@click.option("--grid-cell", default="unassigned", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--verbose", is_flag=True, help="Log the ONVIF exchange.")
def probe(target: str, **options: Any) -> None:
    """Read a camera: TARGET is an rtsp:// URL (the stream itself) or an ONVIF device as
    HOST, HOST:PORT or http://HOST:PORT (identity, profiles, stream URIs)."""
    _quiet_logging(options["verbose"])
    if target.strip().lower().startswith(("rtsp://", "rtsps://")):
        _probe_rtsp(target.strip(), options)
    else:
        _probe_onvif(target, options)


def _location(options: dict[str, Any]) -> dict[str, str]:
    return {
        "district": options["district"],
        "street": options["street"],
        "community": options["community"],
        "grid_cell": options["grid_cell"],
    }


def _spec_from_url(url: str, options: dict[str, Any]):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from camera_adapters.redact import redact_text
    from camera_adapters.spec import CameraSpec

    try:
        return CameraSpec(
            id=options["camera_id"] or "probe",
            name=options["name"] or "probe",
            source=url,
            username=options["username"],
            password=options["password"] if options["username"] else None,
            transport=options["transport"],
            location=_location(options),
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in error.errors()
        )
        fail(redact_text(problems), EXIT_BAD_INPUT)


def _probe_rtsp(url: str, options: dict[str, Any]) -> None:
    from camera_adapters.stream_probe import StreamProbeError, probe_stream

    spec = _spec_from_url(url, options)
    try:
        info = probe_stream(spec, seconds=options["seconds"], timeout=options["timeout"])
    except StreamProbeError as error:
        fail(str(error))
    mode = info.decode_mode(options["analysis_fps"])
    if options["as_json"]:
        click.echo(json.dumps(info.as_dict() | {"decode_mode": mode}, indent=2))
        return
    _print_stream(info, options["analysis_fps"])
    click.echo("")
    click.echo("config entry (cameras:):")
    click.echo(_yaml_entry(spec, bool(options["password"])))


def _print_stream(info: Any, analysis_fps: float, indent: str = "") -> None:
    gop = f"{info.keyframe_interval_s:.2f} s" if info.keyframe_interval_s else "not seen"
    fps = f"{info.fps:g}" if info.fps else "?"
    click.echo(f"{indent}stream:    {info.source} ({info.transport or 'file'})")
    click.echo(
        f"{indent}video:     {info.codec} {info.profile or ''} {info.width}×{info.height} "
        f"at {fps} fps, {info.bitrate_kbps or '?'} kbit/s"
    )
    click.echo(
        f"{indent}keyframes: every {gop} ({info.keyframes} in {info.seconds:.1f} s); "
        f"opened in {info.open_s:.2f} s"
    )
    mode = info.decode_mode(analysis_fps)
    why = (
        "keyframes come at least as often as analyses"
        if mode == "keyframes"
        else "keyframes are too sparse for the analysis rate"
    )
    click.echo(f"{indent}decode:    {mode} at {analysis_fps:g} analyses/s ({why})")


def _probe_onvif(target: str, options: dict[str, Any]) -> None:
    from camera_adapters import onvif_probe
    from camera_adapters.spec import Location
    from camera_adapters.stream_probe import StreamProbeError, probe_stream

    try:
        address = onvif_probe.parse_device_address(target)
    except ValueError as error:
        fail(f"TARGET: {error}", EXIT_BAD_INPUT)
    if options["password"] and not options["username"]:
        fail("--password needs --username", EXIT_BAD_INPUT)
    try:
        camera = onvif_probe.probe(
            address,
            options["username"],
            options["password"],
            timeout=options["timeout"],
            nat_override=options["nat_override"],
        )
        profile = camera.choose_profile(options["profile_token"], options["min_width"])
        spec = camera.camera_spec(
            profile=profile,
            camera_id=options["camera_id"],
            name=options["name"],
            location=Location(**_location(options)),
            password=options["password"],
            transport=options["transport"],
        )
    except onvif_probe.OnvifError as error:
        fail(str(error))
    snapshot_note = None
    if options["snapshot"]:
        snapshot_note = _save_snapshot(camera, profile, options)
    stream = stream_error = None
    if options["check_stream"]:
        try:
            stream = probe_stream(spec, seconds=options["seconds"], timeout=options["timeout"])
        except StreamProbeError as error:
            stream_error = str(error)
    if options["as_json"]:
        payload = {
            "device": _camera_dict(camera),
            "chosen_profile": profile.token,
            "camera": _entry(spec, bool(options["password"])),
            "stream": None if stream is None else stream.as_dict(),
            "stream_error": stream_error,
            "snapshot": snapshot_note,
        }
        click.echo(json.dumps(payload, indent=2, default=str))
    else:
        _print_camera(camera, profile)
        if stream is not None:
            _print_stream(stream, options["analysis_fps"], indent="  ")
        if stream_error:
            click.echo(f"  stream check FAILED: {stream_error}")
        if snapshot_note:
            click.echo(f"  snapshot:  {snapshot_note}")
        click.echo("")
        click.echo("config entry (cameras:):")
        click.echo(_yaml_entry(spec, bool(options["password"])))
    if stream_error:
        sys.exit(EXIT_RUNTIME)


def _save_snapshot(camera: Any, profile: Any, options: dict[str, Any]) -> str:
    from camera_adapters import onvif_probe

    try:
        data = onvif_probe.fetch_snapshot(
            profile, options["username"], options["password"], timeout=options["timeout"]
        )
    except onvif_probe.OnvifError as error:  # a failed snapshot must not hide the rest
        return f"failed: {error}"
    path: Path = options["snapshot"]
    path.write_bytes(data)
    return f"{len(data)} bytes saved to {path}"


def _camera_dict(camera: Any) -> dict[str, object]:
    from dataclasses import asdict

    from camera_adapters.redact import redact_url

    data = asdict(camera)
    data["address"] = str(camera.address)
    data["media2"] = camera.media2
    for profile in data["profiles"]:
        for key in ("stream_uri", "snapshot_uri"):
            if profile[key]:
                profile[key] = redact_url(profile[key])
    return data


def _print_camera(camera: Any, chosen: Any) -> None:
    from camera_adapters.redact import redact_url

    info = camera.info
    click.echo(f"ONVIF device {camera.address}")
    click.echo(
        f"  {info.manufacturer or '?'} {info.model or '?'}, firmware {info.firmware or '?'}, "
        f"serial {info.serial or '?'}, hardware {info.hardware_id or '?'}"
    )
    media = "Media2 and Media" if camera.media2 else "Media (no Media2)"
    offset = (
        f"; camera clock {camera.clock_offset_s:+.0f} s from ours"
        if camera.clock_offset_s is not None and abs(camera.clock_offset_s) >= 2
        else ""
    )
    click.echo(f"  services: {media}{offset}")
    for note in camera.notes:
        click.echo(f"  note: {note}")
    click.echo(f"  profiles ({len(camera.profiles)}):")
    for profile in camera.profiles:
        mark = "*" if profile.token == chosen.token else " "
        click.echo(f"   {mark} {profile.describe()} [{profile.service}]")
        click.echo(
            f"       {redact_url(profile.stream_uri) if profile.stream_uri else 'no stream URI'}"
        )
    click.echo(f"  chosen: {chosen.token} (* above; --profile TOKEN picks another)")


def _password_env(camera_id: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", camera_id.upper()).strip("_") + "_PASSWORD"


def _entry(spec: Any, has_password: bool) -> dict[str, object]:
    entry: dict[str, object] = {
        "id": spec.id,
        "name": spec.name,
        "source": spec.display_source() if "@" in spec.source else spec.source,
    }
    if spec.username:
        entry["username"] = spec.username
        if has_password:
            entry["password"] = "${" + _password_env(spec.id) + "}"
    entry["transport"] = spec.transport
    entry["location"] = spec.location.model_dump(exclude_none=True)
    entry["zones"] = []
    return entry


def _yaml_entry(spec: Any, has_password: bool) -> str:
    text = yaml.safe_dump([_entry(spec, has_password)], sort_keys=False, allow_unicode=True)
    lines = ["  " + line for line in text.rstrip().splitlines()]
    notes = []
    if has_password:
        notes.append(f"  # set {_password_env(spec.id)} in the environment to the password")
    if "unassigned" in spec.location.model_dump().values():
        notes.append("  # fill in location (district/street/community/grid_cell) and add zones")
    return "\n".join(notes + lines)
