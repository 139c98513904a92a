"""Photos in which YuNet's still passes find no face get the rescue passes (faces/still_rescue.py), on real data:
faces they find, a dark face they find, a window and sky they leave alone, photos with a face they never touch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import DATA

from ferkit.faces import still_rescue
from ferkit.faces.yunet import YuNet
from ferkit.media.images import read_image
from ferkit.media.video import iter_video

SFEW = DATA / "sfew" / "train"
#: SFEW train images YuNet's still passes miss and the rescue finds (benchmarks/still_rescue.py): upper half of a
#: face (eyes, forehead) in blue light; one eye under hair, tilted; a defocused smiling face (BlazeFace and the
#: mirrored pass agree)
RESCUED = [
    "sad/IAmSam_012921760_00000084.png",
    "sad/JennifersBody_012437771_00000033.png",
    "happy/NotSuitableForChildren_004004880_00000036.png",
]
#: a leaded window, no face (BlazeFace boxes it)
WINDOW = "angry/GirlWithAPearlEarring_012432920_00000021.png"
#: a face YuNet finds at once, and the same face darkened until it does not (the rescue's brightened pass does)
DARKENED = "happy/AlexEmma_001305160_00000013.png"


@pytest.fixture(scope="module")
def dets() -> tuple[YuNet, YuNet]:
    return YuNet(), YuNet(rescue=False)


@pytest.mark.parametrize("name", RESCUED)
def test_rescue_finds_faces_the_still_passes_miss(dets: tuple[YuNet, YuNet], name: str) -> None:
    rgb = read_image(SFEW / name)
    det, plain = dets
    assert not plain.detect_still(rgb)
    faces = det.detect_still(rgb)
    assert len(faces) == 1 and faces[0].score >= 0.3 and faces[0].has_keypoints
    x, y, w, h = faces[0].box
    cx, cy = x + w / 2, y + h / 2
    assert 0 <= cx <= rgb.shape[1] and 0 <= cy <= rgb.shape[0]


def test_rescue_brightens_a_dark_face(dets: tuple[YuNet, YuNet]) -> None:
    det, plain = dets
    rgb = read_image(SFEW / DARKENED)
    (face,) = plain.detect_still(rgb)[:1]
    dark = np.clip(255 * (rgb / 255.0) ** 3.0 * 0.35, 0, 255).astype(np.uint8)
    assert not plain.detect_still(dark)
    (found,) = det.detect_still(dark)
    x, y, w, h = face.box
    fx, fy = found.box[0] + found.box[2] / 2, found.box[1] + found.box[3] / 2
    assert x <= fx <= x + w and y <= fy <= y + h


def test_rescue_boxes_no_window_and_no_sky(dets: tuple[YuNet, YuNet]) -> None:
    det, _ = dets
    assert not det.detect_still(read_image(SFEW / WINDOW))
    frames = [f.rgb() for f in iter_video(DATA / "clips" / "pyfeat_no_face.mp4", 1.0)][:3]
    assert frames and not any(det.detect_still(cv2.resize(f, (320, 180))) for f in frames)


def test_rescue_costs_nothing_when_a_face_is_found(dets: tuple[YuNet, YuNet], monkeypatch) -> None:
    def fail(*args: object) -> list:
        raise AssertionError("the rescue ran on a photo with a face")

    monkeypatch.setattr(still_rescue, "rescue", fail)
    assert dets[0].detect_still(read_image(SFEW / DARKENED))
