"""Detection and alignment on real FER2013 faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import fer_files, padded_photo

from ferkit.faces.align import FER_TEMPLATE, align_box, align_face, align_keypoints, resize_crop, similarity_matrix
from ferkit.faces.detectors import KEYPOINT_NAMES, create_detector


def test_similarity_matrix_recovers_known_transform() -> None:
    src = np.array([[10.0, 20.0], [40.0, 22.0], [25.0, 40.0], [26.0, 55.0]])
    ang, s, t = np.radians(17), 1.7, np.array([5.0, -3.0])
    rot = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    m = similarity_matrix(src, src @ rot.T + t)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)


def test_blazeface_finds_padded_fer_crops_with_keypoints_inside_box(blazeface) -> None:
    files = fer_files("test", 3)
    found = 0
    for p in files:
        faces = blazeface.detect(padded_photo(p))
        if not faces:
            continue
        found += 1
        f = faces[0]
        x, y, w, h = f.box
        assert f.has_keypoints and 0 < f.score <= 1
        for name in KEYPOINT_NAMES:
            kx, ky = f.keypoints[name]
            assert x - 0.1 * w <= kx <= x + 1.1 * w and y - 0.1 * h <= ky <= y + 1.1 * h
        le, re = f.keypoints["left_eye"], f.keypoints["right_eye"]
        assert le[0] < re[0] and f.keypoints["mouth"][1] > f.keypoints["nose"][1]
    assert found >= len(files) - 2


def test_alignment_undoes_rotation_and_scale(blazeface) -> None:
    rgb = padded_photo(fer_files("test", 1, ["happy"])[0])
    m = cv2.getRotationMatrix2D((rgb.shape[1] / 2, rgb.shape[0] / 2), 20, 0.8)
    turned = cv2.warpAffine(rgb, m, rgb.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    crops = []
    for img in (rgb, turned):
        crop, kind = align_face(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), blazeface.detect(img)[0], 64)
        assert kind == "keypoints" and crop.shape == (64, 64)
        crops.append(crop.astype(float))
    unaligned = cv2.resize(cv2.cvtColor(turned, cv2.COLOR_RGB2GRAY), (64, 64)).astype(float)

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a[8:56, 8:56].ravel(), b[8:56, 8:56].ravel())[0, 1])

    assert corr(crops[0], crops[1]) > 0.75  # same face, same framing, despite 20° and 0.8×
    assert corr(crops[0], unaligned) < corr(crops[0], crops[1]) - 0.2
    # and the keypoints of the aligned face sit on the template
    again = blazeface.detect(
        cv2.cvtColor(
            cv2.copyMakeBorder(crops[1].astype(np.uint8), 16, 16, 16, 16, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2RGB
        )
    )
    assert again, "the aligned crop should still contain a detectable face"
    assert np.abs((again[0].keypoint_array() - 16) / 64 - FER_TEMPLATE).max() < 0.08


def test_align_output_size_configurable_and_box_fallback() -> None:
    img = np.random.default_rng(0).integers(0, 255, (200, 300), dtype=np.uint8)
    kp = np.array([[120.0, 90], [170, 92], [145, 120], [146, 140]])
    assert align_keypoints(img, kp, 96).shape == (96, 96)
    assert align_box(img, (100, 60, 90, 100), 48).shape == (48, 48)
    assert resize_crop(img[:48, :48], 64).shape == (64, 64)


def test_haar_gives_boxes_without_keypoints() -> None:
    from ferkit.media.images import read_image
    from ferkit.media.samples import sample_image

    faces = create_detector("haar").detect(read_image(sample_image()))
    assert faces and not faces[0].has_keypoints
    x, y, w, h = faces[0].box
    assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 220  # the astronaut's face


def test_mesh_gives_mouth_corners() -> None:
    from ferkit.media.images import read_image
    from ferkit.media.samples import sample_image

    faces = create_detector("mesh").detect(read_image(sample_image()))
    assert len(faces) == 1 and {"mouth_left", "mouth_right"} <= set(faces[0].keypoints)


def test_unknown_detector_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="known: blazeface"):
        create_detector("nope")
