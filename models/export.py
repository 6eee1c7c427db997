"""Exporting ultralytics weights to ONNX with a dynamic batch axis, and the card that goes with it.

ultralytics (and torch) are an optional extra, imported only here and only when exporting:
the pipeline runs the exported ONNX file on ONNX Runtime alone. The opset is pinned so an
export made today loads the same way on the deployment's ONNX Runtime and TensorRT.
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.datafiles import sha256_of
from models.registry import ModelCard, card_path_for

DEFAULT_OPSET = 17  # ONNX Runtime ≥ 1.14 and TensorRT ≥ 8.6 support it
WEIGHT_SUFFIXES = (".pt", ".yaml", ".yml")
INSTALL_HINT = (
    "install the export extra: pip install 'sharpeyes[export]' — on a CPU-only machine see "
    "docs/models.md for the route that avoids downloading CUDA torch"
)


class ExportError(RuntimeError):
    """The export could not run or produced a model SharpEyes cannot use."""


class ExportInputError(ValueError):
    """The weights or options given are unusable; the message names which and why."""


@dataclass(frozen=True)
class ExportResult:
    onnx: Path
    card_path: Path
    card: ModelCard


def check_weights(weights: Path) -> None:
    if not weights.exists():
        raise ExportInputError(f"WEIGHTS: {weights} does not exist")
    if not weights.is_file():
        raise ExportInputError(f"WEIGHTS: {weights} is not a file")
    if weights.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ExportInputError(
            f"WEIGHTS: {weights.name} is not ultralytics weights: give a .pt checkpoint "
            "(or a model .yaml, which exports untrained weights)"
        )


def layout_of(output_shape: tuple[int, ...], end2end: bool) -> str:
    """Which SharpEyes layout reads an ultralytics detection output of this shape."""
    if len(output_shape) != 3:
        raise ExportError(f"the exported output has shape {output_shape}, not a detection head")
    _, a, b = output_shape
    if end2end or b == 6:
        return "yolo_end2end"
    return "yolov8" if a < b else "yolov5"


def person_class_of(names: dict[int, str], override: int | None) -> int:
    if override is not None:
        if override not in names:
            raise ExportInputError(
                f"--person-class {override}: the model has classes 0..{max(names)}"
            )
        return override
    for index, label in names.items():
        if label.strip().lower() == "person":
            return index
    raise ExportInputError(
        "the model has no class named 'person' (its names are "
        f"{', '.join(list(names.values())[:6])}…): pass --person-class with its index"
    )


def export_ultralytics(
    weights: Path,
    out_dir: Path,
    *,
    imgsz: int = 640,
    opset: int = DEFAULT_OPSET,
    name: str | None = None,
    person_class: int | None = None,
) -> ExportResult:
    """Export ``weights`` to ``out_dir/NAME.onnx`` (+ ``NAME.card.json``) and check the result
    on ONNX Runtime with a batch of two, which proves the batch axis is dynamic."""
    check_weights(weights)
    if imgsz % 32 or not 64 <= imgsz <= 4096:
        raise ExportInputError(f"--imgsz {imgsz}: use a multiple of 32 between 64 and 4096")
    if not 11 <= opset <= 21:
        raise ExportInputError(f"--opset {opset}: use an opset between 11 and 21")
    os.environ.setdefault("YOLO_OFFLINE", "1")  # never download anything at run time
    try:
        from ultralytics import YOLO
    except ImportError as error:
        raise ExportError(f"ultralytics is not installed ({error}); {INSTALL_HINT}") from None
    import ultralytics

    name = name or weights.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sharpeyes-export-") as tmp:
        staged = Path(tmp) / weights.name
        shutil.copyfile(weights, staged)
        with contextlib.chdir(tmp):
            try:
                model = YOLO(str(staged))
            except Exception as error:  # ultralytics raises many kinds for a bad checkpoint
                raise ExportInputError(
                    f"WEIGHTS: ultralytics cannot load {weights.name}: {error}"
                ) from None
            try:
                produced = model.export(
                    format="onnx", dynamic=True, opset=opset, imgsz=imgsz, simplify=False, batch=1
                )
            except Exception as error:
                raise ExportError(f"the ONNX export of {weights.name} failed: {error}") from None
            produced = Path(produced).resolve()  # ultralytics may answer relative to tmp
        target = out_dir / f"{name}.onnx"
        shutil.move(str(produced), target)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    model_input = session.get_inputs()[0]
    if isinstance(model_input.shape[0], int):
        raise ExportError(f"{target.name}: the batch axis came out fixed ({model_input.shape})")
    probe = np.zeros((2, 3, imgsz, imgsz), np.float32)
    output = session.run(None, {model_input.name: probe})[0]
    if output.shape[0] != 2:
        raise ExportError(f"{target.name}: a batch of 2 gave an output of shape {output.shape}")
    names = ast.literal_eval(meta.get("names", "{}")) or {i: str(i) for i in range(80)}
    layout = layout_of(output.shape, meta.get("end2end", "False") == "True")
    try:
        person = person_class_of(names, person_class)
    except ExportInputError:
        target.unlink()  # no model without its card
        raise
    card = ModelCard(
        name=name,
        file=str(target.resolve()),
        layout=layout,
        input_size=(imgsz, imgsz),
        dynamic_batch=True,
        classes=f"{len(names)} classes: {', '.join(list(names.values())[:5])}…",
        person_class_id=person,
        license=meta.get("license", "AGPL-3.0 (Ultralytics)"),
        source=f"ultralytics {ultralytics.__version__} export of {weights.name} "
        f"(SHA-256 {sha256_of(weights)[:16]}…): {meta.get('description', '').strip()}",
        input_format="float32 NCHW, RGB 0-1; letterboxed at the centre with pad 114",
        notes=f"Exported by `sharpeyes models export`; output {list(output.shape[1:])} per image.",
        sha256=sha256_of(target),
        opset=opset,
    )
    card_path = card_path_for(target)
    card_path.write_text(card.to_json(), encoding="utf-8")
    return ExportResult(target, card_path, card)
