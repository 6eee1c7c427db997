"""Model cards: what each known model file is, where it came from and how to feed it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelCard:
    name: str
    file: str  # relative to the data directory (SHARPEYES_DATA)
    layout: str  # output decoder, see models.layouts
    input_size: tuple[int, int]  # (width, height) the model analyses
    dynamic_batch: bool
    classes: str
    person_class_id: int
    license: str
    source: str
    notes: str = ""


_COCO = "COCO 80 classes (0 = person)"

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
            source="Megvii YOLOX-nano, COCO-pretrained, exported with decode_in_inference off",
            notes="Default. BGR 0-255 input, letterbox pad 114 at the top-left.",
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
            source="Megvii YOLOX-nano, COCO-pretrained, exported with decode_in_inference off",
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
            source="Megvii YOLOX-nano, COCO-pretrained, dynamic N, H, W (multiples of 32)",
            notes="Input size is configurable (multiples of 32); larger finds smaller people.",
        ),
    )
}

DEFAULT_MODEL = "yolox_nano_416_dynbatch"
