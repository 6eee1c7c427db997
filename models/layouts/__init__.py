"""Output layouts: how a model family's tensors are fed and read back as ``Detections``."""

from models.layouts.base import Layout, LayoutBase
from models.layouts.nanodet import NanoDetLayout
from models.layouts.ssd import TfSsdLayout
from models.layouts.ultralytics import YoloEnd2EndLayout, YoloV5Layout, YoloV8Layout
from models.layouts.yolox import YoloxLayout

LAYOUTS: dict[str, type[LayoutBase]] = {
    "yolox": YoloxLayout,
    "yolov5": YoloV5Layout,
    "yolov8": YoloV8Layout,
    "yolo11": YoloV8Layout,
    "yolo_end2end": YoloEnd2EndLayout,
    "nanodet": NanoDetLayout,
    "tf_ssd": TfSsdLayout,
}

__all__ = [
    "LAYOUTS",
    "Layout",
    "LayoutBase",
    "NanoDetLayout",
    "TfSsdLayout",
    "YoloEnd2EndLayout",
    "YoloV5Layout",
    "YoloV8Layout",
    "YoloxLayout",
]
