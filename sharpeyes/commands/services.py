"""Running the services: a pipeline worker, the API, the all-in-one demo."""

from __future__ import annotations

from pathlib import Path

import click

from sharpeyes import logs
from sharpeyes.commands.common import CONFIG_OPTION, EXIT_BAD_INPUT, fail, load, stop_on_signals


@click.command()
@CONFIG_OPTION
def run(config_path: Path) -> None:
    """Run a pipeline worker: cameras → detector → gathering rules → Redis alerts."""
    loaded = load(config_path)
    from alerting.outbox import OutboxError
    from alerting.publisher import AlertPublisher
    from models.datafiles import DataFileError
    from models.onnx_detector import load_detector
    from models.tiling import with_tiling
    from pipeline.camera_updates import CameraConfigFollower
    from pipeline.inference_plan import plan_inference
    from pipeline.service import PipelineService

    config = loaded.config.pipeline_config()
    if not config.cameras and not config.pipeline.api_cameras:
        fail(
            f"{config_path}: no cameras configured (add them under `cameras:`, or set "
            "pipeline.api_cameras to run the cameras added through the API)",
            EXIT_BAD_INPUT,
        )
    plan = plan_inference(config.pipeline, config.model)
    try:
        detector = with_tiling(load_detector(plan.model), plan.model.tiling)
    except DataFileError as error:
        fail(str(error))
    publisher = AlertPublisher.from_settings(config.redis)
    settings = plan.pipeline(config.pipeline)
    service = PipelineService(config.cameras, detector, publisher, settings)
    follower = None
    if config.pipeline.api_cameras:
        follower = CameraConfigFollower(
            publisher.client,
            config.redis.camera_config_stream,
            service.apply,
            wants=config.pipeline.runs_api_camera,
            reserved=frozenset(camera.id for camera in config.cameras),
        )
        follower.start()
    try:
        service.run(stop_on_signals())
    except OutboxError as error:  # e.g. a second worker with the same worker_id
        fail(str(error))
    finally:
        if follower is not None:
            follower.stop()


@click.command()
@CONFIG_OPTION
@click.option("--host", help="Override api.host.")
@click.option("--port", type=click.IntRange(1, 65535), help="Override api.port.")
def api(config_path: Path, host: str | None, port: int | None) -> None:
    """Run the linkage-centre API (and its alert consumer)."""
    loaded = load(config_path)
    import uvicorn

    from api.app import create_app

    config = loaded.config.api_config()
    app = create_app(config)
    uvicorn.run(
        app,
        host=host or config.http.host,
        port=port or config.http.port,
        log_config=None,
        access_log=False,
    )


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="API port (0 picks a free one).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=0,
    help="Stop after this many seconds (0: run until Ctrl-C).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Where the demo keeps its config, database and logs.",
)
def demo(port: int, duration: float, workdir: Path) -> None:
    """Everything on this machine: a sample clip as an RTSP camera, Redis, pipeline, API."""
    logs.configure("INFO")
    from sharpeyes.demo import DemoError, run_demo

    try:
        run_demo(port=port, duration=duration or None, workdir=workdir)
    except DemoError as error:
        fail(str(error))
