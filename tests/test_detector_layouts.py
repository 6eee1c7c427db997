"""Every supported model family: real models on real photos, and the YOLO layouts that have
no model file here decoded from synthetic output tensors with known boxes."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from models.datafiles import DataFiles
from models.detections import Detections
from models.layouts import LAYOUTS, YoloEnd2EndLayout, YoloV5Layout, YoloV8Layout
from models.onnx_detector import ModelMismatchError, load_detector
from models.preprocess import letterbox
from models.providers import ORT_NAMES, plan_providers
from models.registry import CARDS, ModelCard, card_path_for
from models.settings import DetectorSettings
from tests.test_detector import BUS_PEOPLE, FULLY_VISIBLE, match


@pytest.fixture(scope="module")
def photos(data: DataFiles) -> dict[str, np.ndarray]:
    return {n: cv2.imread(str(data.path(f"images/{n}"))) for n in ("bus.jpg", "street.png")}


# -- preprocessing ----------------------------------------------------------------------
def test_letterbox_modes_and_the_way_back() -> None:
    wide = np.full((360, 1280, 3), 7, np.uint8)
    tall = np.full((640, 320, 3), 9, np.uint8)
    same = np.full((360, 1280, 3), 5, np.uint8)
    box = np.array([[100, 50, 300, 350]], np.float32)  # in image pixels

    top = letterbox([wide, tall, same], (640, 640), mode="topleft")
    assert top.pixels.shape == (3, 640, 640, 3)
    assert (top.pixels[0, :180] == 7).all() and (top.pixels[0, 180:] == 114).all()
    assert (top.pixels[1, :, :320] == 9).all() and (top.pixels[1, :, 320:] == 114).all()
    np.testing.assert_allclose(top.scales[0], [0.5, 0.5])
    np.testing.assert_allclose(top.offsets, 0)

    centre = letterbox([wide, tall], (640, 640), pad_value=0, mode="center")
    np.testing.assert_allclose(centre.offsets, [[0, 230], [160, 0]])
    assert (centre.pixels[0, 230:410] == 7).all() and (centre.pixels[0, :230] == 0).all()
    in_model = box * 0.5 + np.array([0, 230, 0, 230], np.float32)
    np.testing.assert_allclose(centre.to_image(0, in_model), box)

    stretch = letterbox([wide], (300, 300), mode="stretch")
    np.testing.assert_allclose(stretch.scales[0], [300 / 1280, 300 / 360])
    assert (stretch.pixels == 7).all()


def test_letterbox_refuses_what_is_not_a_bgr_image() -> None:
    with pytest.raises(ValueError, match=r"image 1 has shape \(4, 4\)"):
        letterbox([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)], (32, 32))


# -- ultralytics layouts from synthetic tensors ----------------------------------------------
# A 1280×720 camera frame letterboxed into 640×640 at the centre: scale 0.5, 140 px of padding
# above. Two people and a car, in frame pixels.
FRAME = np.zeros((720, 1280, 3), np.uint8)
PEOPLE = np.array([[100, 200, 180, 520], [900, 300, 1000, 700]], np.float32)
CAR = np.array([[400, 400, 700, 600]], np.float32)
PERSON, CAR_CLASS, CLASSES = 0, 2, 80


def to_model_xywh(xyxy: np.ndarray) -> np.ndarray:
    model = xyxy * 0.5 + np.array([0, 140, 0, 140], np.float32)
    return np.concatenate([(model[:, :2] + model[:, 2:]) / 2, model[:, 2:] - model[:, :2]], 1)


def v5_rows(anchors: int = 25200) -> np.ndarray:
    """[A, 85]: the two people (each also predicted twice, as shifted duplicates NMS must
    merge), a car, a low-objectness "person" and background noise."""
    rng = np.random.default_rng(0)
    rows = np.zeros((anchors, 5 + CLASSES), np.float32)
    rows[:, :4] = rng.uniform(0, 640, (anchors, 4))
    rows[:, 4] = rng.uniform(0, 0.05, anchors)  # objectness of background
    rows[:, 5:] = rng.uniform(0, 0.3, (anchors, CLASSES))
    people = to_model_xywh(PEOPLE)
    for k, (xywh, score) in enumerate(zip(people, (0.9, 0.8), strict=True)):
        for j, shift in enumerate((0.0, 2.0, -3.0)):
            row = rows[1000 * (k + 1) + j]
            row[:4] = xywh + np.array([shift, shift, 0, 0], np.float32)
            row[4], row[5 + PERSON] = 0.95, score - 0.05 * j
    car = rows[5000]
    car[:4], car[4], car[5 + CAR_CLASS], car[5 + PERSON] = to_model_xywh(CAR)[0], 0.9, 0.9, 0.1
    ghost = rows[6000]  # confident class, unconfident objectness: not a detection in v5
    ghost[:4], ghost[4], ghost[5 + PERSON] = [320, 320, 50, 100], 0.1, 0.99
    return rows


def decode(layout_cls: type, raw: np.ndarray, frames: int = 2) -> list[Detections]:
    layout = layout_cls((640, 640), score_threshold=0.3, nms_iou=0.45)
    batch = letterbox([FRAME] * frames, (640, 640), mode=layout.resize)
    return layout.decode({"output0": raw}, batch, [(1280, 720)] * frames)


def assert_people(found: Detections) -> None:
    assert len(found) == 2, f"two people expected, got {found.xyxy.round()}"
    order = np.argsort(found.xyxy[:, 0])
    np.testing.assert_allclose(found.xyxy[order], PEOPLE, atol=0.5)
    assert (found.class_ids == 0).all()
    assert found.scores.max() == pytest.approx(0.95 * 0.9, abs=1e-5)


def test_yolov5_layout_decodes_known_boxes() -> None:
    rows = v5_rows()
    raw = np.stack([rows, np.zeros_like(rows)])  # the second frame shows nothing
    people, empty = decode(YoloV5Layout, raw)
    assert_people(people)
    assert len(empty) == 0


def test_yolov8_layout_decodes_known_boxes_from_the_transposed_output() -> None:
    rows = v5_rows(8400)
    # v8/v11 have no objectness: class score = v5's obj × cls, laid out [4 + classes, A].
    v8 = np.concatenate([rows[:, :4], rows[:, 4:5] * rows[:, 5:]], axis=1).T
    raw = np.stack([v8, v8])
    for found in decode(YoloV8Layout, raw):
        assert_people(found)
    assert LAYOUTS["yolo11"] is YoloV8Layout


def test_layouts_refuse_each_others_outputs_with_a_clear_message() -> None:
    v5 = v5_rows(8400)[None]
    with pytest.raises(ValueError, match="yolov5 layout"):
        decode(YoloV8Layout, v5, frames=1)
    with pytest.raises(ValueError, match="yolov8 layout"):
        decode(YoloV5Layout, v5.transpose(0, 2, 1), frames=1)


def test_end_to_end_layout_keeps_people_without_nms() -> None:
    model = PEOPLE * 0.5 + np.array([0, 140, 0, 140], np.float32)
    car = CAR * 0.5 + np.array([0, 140, 0, 140], np.float32)
    raw = np.zeros((1, 300, 6), np.float32)
    raw[0, 0] = [*model[0], 0.9, PERSON]
    raw[0, 1] = [*model[1], 0.8, PERSON]
    raw[0, 2] = [*car[0], 0.95, CAR_CLASS]
    raw[0, 3] = [*model[0], 0.1, PERSON]  # below the threshold
    (found,) = decode(YoloEnd2EndLayout, raw, frames=1)
    np.testing.assert_allclose(found.xyxy, PEOPLE, atol=0.5)
    np.testing.assert_allclose(found.scores, [0.9, 0.8])


# -- real models on real photos ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "threshold", "min_street"),
    [
        ("nanodet_m_416", 0.35, 10),
        ("nanodet_m_416_dynbatch", 0.35, 10),
        ("ssdlite_mobilenet_v2_person", 0.4, 3),
    ],
)
def test_bundled_models_find_the_labelled_people(
    data: DataFiles, photos, name: str, threshold: float, min_street: int
) -> None:
    detector = load_detector(DetectorSettings(name=name, score_threshold=threshold), data)
    bus, street = photos["bus.jpg"], photos["street.png"]
    found_bus, found_street = detector.detect([bus, street])
    pairs = match(found_bus.xyxy, BUS_PEOPLE)
    unmatched = [i for i in range(len(found_bus)) if i not in pairs]
    assert not unmatched, f"boxes that are no labelled person: {found_bus.xyxy[unmatched]}"
    # SSDLite is weak on people cut by the frame edge: it finds the two in the middle.
    expected = set(FULLY_VISIBLE) if name.startswith("nanodet") else {0, 1}
    assert expected <= set(pairs.values()), found_bus.xyxy.round()
    assert len(found_street) >= min_street
    # One call for the batch gives what one call per image gives (fixed-batch models run
    # image by image inside).
    alone = detector.detect([street])[0]
    np.testing.assert_allclose(alone.xyxy, found_street.xyxy, atol=0.5)


def test_fixed_batch_model_runs_a_batch_image_by_image(data: DataFiles, photos) -> None:
    fixed = load_detector(DetectorSettings(name="yolox_nano_416"), data)
    dynamic = load_detector(DetectorSettings(name="yolox_nano_416_dynbatch"), data)
    assert fixed.fixed_batch == 1 and dynamic.fixed_batch is None
    images = [photos["bus.jpg"], photos["street.png"], photos["bus.jpg"]]
    for a, b in zip(fixed.detect(images), dynamic.detect(images), strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.5)


def test_input_size_that_does_not_fit_the_model_is_refused(data: DataFiles) -> None:
    with pytest.raises(ModelMismatchError, match=r"takes 416×416 images.*input_size"):
        load_detector(DetectorSettings(name="yolox_nano_416", input_size=(640, 640)), data)


def test_dynamic_size_model_runs_at_the_configured_size(data: DataFiles, photos) -> None:
    detector = load_detector(
        DetectorSettings(name="yolox_nano_dynamic", input_size=(640, 384)), data
    )
    (found,) = detector.detect([photos["street.png"]])
    assert detector.input_size == (640, 384) and len(found) >= 6


# -- execution providers ----------------------------------------------------------------------
GPU_BUILD = [ORT_NAMES["tensorrt"], ORT_NAMES["cuda"], ORT_NAMES["cpu"]]


def test_provider_preference_follows_config_and_availability(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="models.providers")
    plan = plan_providers(["tensorrt", "cuda", "cpu"], [ORT_NAMES["cpu"]])
    assert plan.names == [ORT_NAMES["cpu"]] and plan.primary == "cpu"
    assert set(plan.skipped) == {"tensorrt", "cuda"}
    assert [r.provider for r in caplog.records] == ["tensorrt", "cuda"]  # type: ignore[attr-defined]

    plan = plan_providers(["tensorrt", "cuda"], GPU_BUILD, precision="fp16", device_id=1)
    assert plan.names == GPU_BUILD, "CPU is always the last resort"
    trt, cuda = plan.providers[0][1], plan.providers[1][1]
    assert trt["trt_fp16_enable"] == "True" and trt["device_id"] == "1"
    assert cuda["device_id"] == "1"

    plan = plan_providers(["cuda", "tensorrt"], GPU_BUILD)
    assert plan.names[:2] == [ORT_NAMES["cuda"], ORT_NAMES["tensorrt"]], "config order wins"
    assert plan_providers(["cpu"], GPU_BUILD).names == [ORT_NAMES["cpu"]]


def test_tensorrt_gets_a_batch_profile_and_an_engine_cache(tmp_path) -> None:
    plan = plan_providers(
        ["tensorrt"],
        GPU_BUILD,
        trt_cache_dir=tmp_path,
        trt_profile=("images", (3, 416, 416), 16),
    )
    trt = dict(plan.providers)[ORT_NAMES["tensorrt"]]
    assert trt["trt_fp16_enable"] == "False"
    assert trt["trt_profile_min_shapes"] == "images:1x3x416x416"
    assert trt["trt_profile_max_shapes"] == "images:16x3x416x416"
    assert trt["trt_engine_cache_path"] == str(tmp_path)


def test_cuda_fp16_without_tensorrt_says_it_runs_fp32(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="models.providers")
    plan_providers(["cuda"], GPU_BUILD, precision="fp16")
    assert "fp16 is applied by TensorRT" in caplog.text


def test_gpu_config_falls_back_to_cpu_here_and_logs_it(data: DataFiles, photos, caplog) -> None:
    caplog.set_level(logging.INFO)
    settings = DetectorSettings(
        providers=["tensorrt", "cuda", "cpu"], precision="fp16", intra_op_threads=1
    )
    detector = load_detector(settings, data)
    assert detector.providers == [ORT_NAMES["cpu"]]
    assert detector.plan.skipped.keys() == {"tensorrt", "cuda"}
    loaded = [r for r in caplog.records if r.getMessage() == "detector loaded"]
    assert loaded and loaded[0].providers == ORT_NAMES["cpu"]  # type: ignore[attr-defined]
    assert len(detector.detect([photos["bus.jpg"]])[0]) >= 3


# -- model cards ------------------------------------------------------------------------------
def test_every_card_names_a_verified_file_and_a_layout(data: DataFiles) -> None:
    for card in CARDS.values():
        assert data.path(card.file).is_file()
        assert card.layout in LAYOUTS and card.license and card.source and card.classes
        assert card.name in card.render()


def test_exported_model_card_beside_the_file_supplies_layout_and_size(
    data: DataFiles, tmp_path
) -> None:
    model = tmp_path / "custom.onnx"
    model.write_bytes(data.path("models/yolox_nano_416_dynbatch.onnx").read_bytes())
    from models.datafiles import sha256_of

    card = ModelCard(
        name="custom",
        file=str(model),
        layout="yolox",
        input_size=(416, 416),
        dynamic_batch=True,
        classes="COCO 80 classes",
        person_class_id=0,
        license="Apache-2.0",
        source="a test copy",
        sha256=sha256_of(model),
    )
    card_path_for(model).write_text(card.to_json())
    assert ModelCard.from_json(card.to_json()) == card
    detector = load_detector(DetectorSettings(name="custom", path=model), data)
    assert detector.input_size == (416, 416)

    model.write_bytes(model.read_bytes() + b"tampered")
    with pytest.raises(ValueError, match="does not match the SHA-256 in its model card"):
        load_detector(DetectorSettings(name="custom", path=model), data)


def test_custom_path_without_card_or_layout_is_a_config_error(tmp_path) -> None:
    model = tmp_path / "mine.onnx"
    model.write_bytes(b"onnx")
    with pytest.raises(ValueError, match=r"no model card beside .*mine.onnx.*set `layout`"):
        DetectorSettings(name="mine", path=model)
    with pytest.raises(ValueError, match="unknown layout 'yolo9000'"):
        DetectorSettings(name="mine", path=model, layout="yolo9000")
