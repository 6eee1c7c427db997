"""Decode cost per camera: OpenCV vs PyAV full decoding vs SharpEyes' keyframe-only decoding.

One H.264 stream (by default 60 s of 1080p25 with a keyframe every 50 frames, transcoded from
the real sample video in ``../shared/videos``) is decoded in one process, case after case,
repeated and interleaved so that load on a shared machine hits every case alike:

    opencv_all               cv2.VideoCapture reads every frame (BGR, full size): the baseline
    pyav_all                 PyAV decodes every frame, one thread, BGR at full size
    pyav_all_frame_threads   the same with FFmpeg frame threads
    pyav_keyframes_resized   skip_frame=NONKEY, one thread, BGR resized to the model's input
                             inside the decoder's conversion (what a SharpEyes camera costs)
    pyav_keyframes_frame_threads  the same with frame threads (they cost more than they save)
    sharpeyes_source_keyframes    the real PyAVSource in offline mode, keyframes only

The cost is CPU time (user + system of the whole process, so FFmpeg's own threads count) per
second of video, from ``resource.getrusage``, never wall time. Ratios are against OpenCV in the
same run. Writes ``decode.json`` and ``decode.md`` to ``benchmarks/results/``.

    python -m benchmarks.decode                      # the full run (a few minutes)
    python -m benchmarks.decode --seconds 5 --size 640x360 --repeat 1 --out /tmp/x   # tiny
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import cv2

from camera_adapters.decoder import FULL_DECODE_MAX_THREADS
from camera_adapters.pyav_source import PyAVSource, SourceOptions, fit_inside
from camera_adapters.spec import CameraSpec
from models.datafiles import DataFiles
from sharpeyes import sample_clips

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "opencv_all"


@dataclass(frozen=True)
class Clip:
    path: Path
    width: int
    height: int
    fps: float
    seconds: float
    frames: int
    keyframes: int
    bitrate_kbps: float


@dataclass
class CaseResult:
    case: str
    description: str
    frames_decoded: int
    cpu_s: float  # median over repeats
    wall_s: float
    cpu_s_per_stream_s: float
    cheaper_than_opencv: float | None = None  # OpenCV CPU ÷ this case's CPU
    realtime_factor: float | None = None  # video seconds decoded per wall second
    runs_cpu_s: list[float] | None = None


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def describe_clip(path: Path) -> Clip:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = keyframes = size = 0
        last_time = 0.0
        for packet in container.demux(stream):
            if not packet.size:
                continue
            frames += 1
            keyframes += bool(packet.is_keyframe)
            size += packet.size
            if packet.pts is not None:
                last_time = max(last_time, float(packet.pts * packet.time_base))
        fps = float(stream.average_rate or 25)
        seconds = frames / fps
        return Clip(
            path=path,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=fps,
            seconds=seconds,
            frames=frames,
            keyframes=keyframes,
            bitrate_kbps=round(size * 8 / seconds / 1000, 1),
        )


def opencv_all(clip: Clip, _analysis: tuple[int, int]) -> int:
    capture = cv2.VideoCapture(str(clip.path))
    count = 0
    try:
        while True:
            ok, _image = capture.read()
            if not ok:
                break
            count += 1
    finally:
        capture.release()
    return count


def _pyav(clip: Clip, keyframes_only: bool, threads: int, size: tuple[int, int] | None) -> int:
    count = 0
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        if threads > 1:
            stream.codec_context.thread_type = "FRAME"
            stream.codec_context.thread_count = threads
        else:
            stream.codec_context.thread_count = 1
        if keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        for frame in container.decode(stream):
            if size is None:
                frame.to_ndarray(format="bgr24")
            else:
                frame.to_ndarray(
                    width=size[0], height=size[1], format="bgr24", interpolation="AREA"
                )
            count += 1
    return count


def _threads() -> int:
    return max(2, min(FULL_DECODE_MAX_THREADS, os.cpu_count() or 2))


def pyav_all(clip: Clip, _analysis: tuple[int, int]) -> int:
    return _pyav(clip, False, 1, None)


def pyav_all_frame_threads(clip: Clip, _analysis: tuple[int, int]) -> int:
    return _pyav(clip, False, _threads(), None)


def pyav_keyframes_resized(clip: Clip, analysis: tuple[int, int]) -> int:
    return _pyav(clip, True, 1, fit_inside(clip.width, clip.height, analysis))


def pyav_keyframes_frame_threads(clip: Clip, analysis: tuple[int, int]) -> int:
    return _pyav(clip, True, _threads(), fit_inside(clip.width, clip.height, analysis))


def sharpeyes_source_keyframes(clip: Clip, analysis: tuple[int, int]) -> int:
    spec = CameraSpec(
        id="bench",
        name="Benchmark",
        source=str(clip.path),
        location={"district": "-", "street": "-", "community": "-", "grid_cell": "-"},
    )
    # An analysis rate above the keyframe rate would switch to full decoding; at the
    # keyframe rate every keyframe is handed on, converted at the model's size.
    options = SourceOptions(
        analysis_size=analysis,
        analysis_fps=clip.fps,
        decode="keyframes",
        realtime=False,
    )
    source = PyAVSource(spec, options)
    source.start()
    deadline = time.monotonic() + max(60.0, clip.seconds * 2)
    while source.snapshot().state.value != "ended" and time.monotonic() < deadline:
        time.sleep(0.01)
    source.stop(10)
    return source.snapshot().frames_in


CASES: dict[str, tuple[Callable[[Clip, tuple[int, int]], int], str]] = {
    "opencv_all": (opencv_all, "OpenCV VideoCapture, every frame, BGR full size (baseline)"),
    "pyav_all": (pyav_all, "PyAV, every frame, 1 thread, BGR full size"),
    "pyav_all_frame_threads": (
        pyav_all_frame_threads,
        "PyAV, every frame, frame threads, BGR full size",
    ),
    "pyav_keyframes_resized": (
        pyav_keyframes_resized,
        "PyAV, keyframes only (skip_frame=NONKEY), 1 thread, BGR at model size",
    ),
    "pyav_keyframes_frame_threads": (
        pyav_keyframes_frame_threads,
        "PyAV, keyframes only, frame threads, BGR at model size",
    ),
    "sharpeyes_source_keyframes": (
        sharpeyes_source_keyframes,
        "SharpEyes PyAVSource (offline file), keyframes only, at model size",
    ),
}


def run(clip: Clip, analysis: tuple[int, int], repeat: int, cases: list[str]) -> list[CaseResult]:
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    wall: dict[str, list[float]] = {name: [] for name in cases}
    frames: dict[str, int] = {}
    for _ in range(repeat):
        for name in cases:  # interleaved: background load touches every case alike
            function = CASES[name][0]
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            frames[name] = function(clip, analysis)
            cpu[name].append(cpu_seconds() - cpu0)
            wall[name].append(time.perf_counter() - wall0)
    results = []
    for name in cases:
        cpu_s = statistics.median(cpu[name])
        wall_s = statistics.median(wall[name])
        results.append(
            CaseResult(
                case=name,
                description=CASES[name][1],
                frames_decoded=frames[name],
                cpu_s=round(cpu_s, 4),
                wall_s=round(wall_s, 4),
                cpu_s_per_stream_s=round(cpu_s / clip.seconds, 5),
                realtime_factor=round(clip.seconds / wall_s, 1) if wall_s > 0 else None,
                runs_cpu_s=[round(v, 4) for v in cpu[name]],
            )
        )
    baseline = next((r for r in results if r.case == BASELINE), None)
    for result in results:
        if baseline is not None and result.cpu_s > 0:
            result.cheaper_than_opencv = round(baseline.cpu_s / result.cpu_s, 2)
    return results


def machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "pyav": av.__version__,
        "ffmpeg_in_pyav": av.library_versions.get("libavcodec"),
        "opencv": cv2.__version__,
    }


def render_markdown(report: dict[str, object]) -> str:
    clip = report["clip"]
    assert isinstance(clip, dict)
    lines = [
        "# Decode benchmark",
        "",
        f"One H.264 stream, {clip['width']}×{clip['height']} at {clip['fps']:g} fps, "
        f"{clip['seconds']:.1f} s, {clip['frames']} frames of which {clip['keyframes']} "
        f"keyframes (GOP {report['config']['gop']}), {clip['bitrate_kbps']} kbit/s, "
        "transcoded from the real sample video. Cost is process CPU time (user + system, all "
        "threads) per second of video, median of "
        f"{report['config']['repeat']} interleaved run(s); "
        "ratios against OpenCV in the same run.",
        "",
        "| case | frames decoded | CPU-s per stream-s | vs OpenCV (× cheaper) | "
        "× real time (wall) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in report["results"]:  # type: ignore[union-attr]
        ratio = row["cheaper_than_opencv"]
        lines.append(
            f"| {row['case']} — {row['description']} | {row['frames_decoded']} | "
            f"{row['cpu_s_per_stream_s']:.4f} | "
            f"{'—' if ratio is None else f'{ratio:.2f}'} | {row['realtime_factor']} |"
        )
    machine_info = report["machine"]
    assert isinstance(machine_info, dict)
    lines += [
        "",
        f"Machine: {machine_info['platform']}, {machine_info['cpus']} CPUs, load average "
        f"at start {machine_info['load_average_at_start']}; PyAV {machine_info['pyav']}, "
        f"OpenCV {machine_info['opencv']}.",
        "",
        *[f"- {note}" for note in report["notes"]],  # type: ignore[union-attr]
        "",
        "Re-run: `python -m benchmarks.decode` (see `--help`).",
        "",
    ]
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f"size {text} is too small")
    return width, height


def clip_config(args: argparse.Namespace) -> dict[str, object]:
    """The options of ``add_clip_arguments`` as the report's ``config`` holds them."""
    return {
        "size": list(args.size),
        "fps": args.fps,
        "gop": args.gop,
        "seconds": args.seconds,
        "analysis_size": list(args.analysis_size),
        "repeat": args.repeat,
    }


def write_report(out: Path, name: str, report: dict[str, object], markdown: str) -> None:
    """``name``.json (every figure) and ``name``.md (the tables) in ``out``; the tables also
    to the terminal."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(markdown)


def add_clip_arguments(parser: argparse.ArgumentParser, seconds: float, repeat_help: str) -> None:
    """The stream the decoding benchmarks transcode (size, rate, GOP, length), the model's
    input size and the repeats: the same options in each of them."""
    parser.add_argument("--size", type=parse_size, default=(1920, 1080), help="WxH of the stream")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop", type=int, default=50, help="frames between keyframes")
    parser.add_argument("--seconds", type=float, default=seconds, help="length of the stream")
    parser.add_argument(
        "--analysis-size", type=parse_size, default=(416, 416), help="the model's input"
    )
    parser.add_argument("--repeat", type=int, default=3, help=repeat_help)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.decode", description=__doc__.split("\n\n")[0]
    )
    add_clip_arguments(parser, seconds=60.0, repeat_help="runs per case (median)")
    parser.add_argument(
        "--case", action="append", choices=sorted(CASES), help="run only these cases"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="report directory")
    args = parser.parse_args(argv)

    data = DataFiles.from_env()
    source = sample_clips.demo_camera_clip(data)
    print(f"preparing {args.size[0]}x{args.size[1]}@{args.fps} GOP {args.gop} …", flush=True)
    path = sample_clips.transcode(
        source, size=args.size, fps=args.fps, gop=args.gop, seconds=args.seconds
    )
    clip = describe_clip(path)
    cases = args.case or list(CASES)
    if BASELINE not in cases:
        cases.insert(0, BASELINE)
    results = run(clip, args.analysis_size, max(1, args.repeat), cases)
    by_case = {r.case: r for r in results}
    notes = [
        "The machine may have been shared with other work: ratios from one run are "
        "meaningful, absolute figures less so.",
        "The clip is the 768×432 sample video scaled up, so it is smoother and cheaper to "
        "decode than native 1080p camera footage; the ratios carry over, the absolute cost "
        "per stream will be higher on real cameras.",
    ]
    keyed = by_case.get("pyav_keyframes_resized")
    if keyed is not None and keyed.frames_decoded != clip.keyframes:
        notes.append(
            f"keyframe-only decoding returned {keyed.frames_decoded} frames for "
            f"{clip.keyframes} keyframes"
        )
    report: dict[str, object] = {
        "benchmark": "decode",
        "config": {
            **clip_config(args),
            "frame_threads": _threads(),
        },
        "clip": {**asdict(clip), "path": clip.path.name},
        "machine": machine(),
        "results": [asdict(r) for r in results],
        "notes": notes,
    }
    write_report(args.out, "decode", report, render_markdown(report))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
