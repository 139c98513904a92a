"""YuNet, the default detector: film faces BlazeFace misses, its hash check, input sizes; the tracker on a composed
crowd of talking heads (crossing, occluding) and its state round trip; each detector's own alignment template."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, ROOT, padded_photo

from ferkit.analysis.pipeline import AnalyzeOptions
from ferkit.errors import ModelError
from ferkit.evaluation.scoring import predict_dataset
from ferkit.faces.align import align_face
from ferkit.faces.detectors import DETECTORS, KEYPOINT_NAMES, create_detector, detector_template
from ferkit.faces.tracking import FaceTracker
from ferkit.faces.yunet import YUNET_FILE, YuNet, input_side
from ferkit.media.images import read_image
from ferkit.media.video import iter_video
from ferkit.training.sources import Sample, load_pixels

SFEW = DATA / "sfew" / "train"
#: SFEW train images where BlazeFace (tiled, as for any photo) finds no face (benchmarks/detectors.py sfew)
BLAZEFACE_MISSES = [
    "angry/LittleManhattan_010116283_00000027.png",
    "angry/OneFlewOverCuckooNest_001821420_00000011.png",
    "disgust/MissMarch_000236840_00000026.png",
    "happy/AlexEmma_001305160_00000013.png",
    "neutral/DecemberBoys_001924200_00000011.png",
    "surprise/OceansTwelve_003845720_00000019.png",
]


@pytest.fixture(scope="module")
def yunet() -> YuNet:
    return YuNet()


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_default_detector_is_yunet_and_all_stay_selectable() -> None:
    assert {"yunet", "yunet_small", "blazeface", "blazeface_full", "mesh", "haar"} <= set(DETECTORS)
    assert create_detector().name == "yunet"


@pytest.mark.parametrize("name", BLAZEFACE_MISSES)
def test_yunet_finds_film_faces_blazeface_misses(yunet: YuNet, blazeface, name: str) -> None:
    rgb = _rgb(SFEW / name)
    assert not blazeface.detect_still(rgb)
    faces = yunet.detect_still(rgb)
    assert faces and faces[0].score >= 0.6 and faces[0].has_keypoints
    f = faces[0]
    x, y, w, h = f.box
    for k in KEYPOINT_NAMES:
        kx, ky = f.keypoints[k]
        assert x - 0.1 * w <= kx <= x + 1.1 * w and y - 0.1 * h <= ky <= y + 1.1 * h
    assert f.keypoints["left_eye"][0] < f.keypoints["right_eye"][0]  # image-left eye first
    assert f.keypoints["mouth"][1] > f.keypoints["nose"][1] > f.keypoints["left_eye"][1]


def test_hash_check_refuses_an_altered_file_in_one_line(tmp_path: Path) -> None:
    data = bytearray(YUNET_FILE.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "yunet.onnx"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError) as e:
        YuNet(model=bad)
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg and "104ee26c71d5c270" in msg and "SHA-256 mismatch" in msg


def test_input_side_follows_the_frame_size() -> None:
    assert [input_side(s) for s in (256, 596, 1280, 1920, 4000)] == [256, 596, 640, 960, 960]
    assert [input_side(s, small_faces=True) for s in (596, 1920, 4000)] == [596, 1920, 1920]


def test_min_face_drops_small_faces(yunet: YuNet) -> None:
    rgb = _rgb(SFEW / BLAZEFACE_MISSES[0])
    width = yunet.detect(rgb)[0].box[2]
    assert not YuNet(min_face=width + 1).detect(rgb)


def test_a_face_filling_the_photo_is_one_face_not_its_parts(yunet: YuNet, blazeface) -> None:
    """The tiled pass sees eyes or a mouth and chin as faces in windows of a close-up; those partial views lie inside
    the whole face's box and are dropped, so a film close-up gives one face (it gave 2–5 before) and a photo of
    several faces keeps them all."""
    from ferkit.faces.detectors import detect_tiled

    close = [p for c in ("sad", "neutral") for p in sorted((SFEW / c).iterdir())[:6]]
    raw = [len(detect_tiled(yunet, _rgb(p))) for p in close]
    assert max(raw) > 1  # the windows' partial faces are there
    assert all(len(yunet.detect_still(_rgb(p))) == 1 for p in close)
    faces = [padded_photo(p, scale=2) for p in sorted((DATA / "fer2013" / "test" / "happy").iterdir())[:4]]
    group = np.ascontiguousarray(cv2.vconcat([cv2.hconcat(faces[:2]), cv2.hconcat(faces[2:])]))  # RGB
    for det in (yunet, blazeface):
        assert len(det.detect_still(group)) == 4


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[dict]]]:
    """Six talking heads (60–220 px faces) on crossing paths for 3 s: the benchmark's composer, smaller."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import crowd as bench

    heads = [
        bench.Head(DATA / "clips" / name, size, (x0, y0), (x1, y1))
        for name, size, (x0, y0), (x1, y1) in [
            ("styletalk_KristiNoem.mp4", 60, (200, 300), (1700, 420)),
            ("styletalk_Obama_clip1.mp4", 80, (1700, 330), (200, 300)),
            ("styletalk_andrew_clip_1.mp4", 100, (300, 700), (1600, 640)),
            ("styletalk_feifeili_clip1.mp4", 130, (1600, 650), (300, 720)),
            ("edtalk_expression_source.mp4", 170, (900, 200), (1000, 900)),
            ("styletalk_reagan_clip1.mp4", 220, (1500, 900), (400, 850)),
        ]
    ]
    video = tmp_path_factory.mktemp("crowd") / "crowd.mp4"
    return video, bench.compose(heads, video, DATA / "clips" / "pyfeat_no_face.mp4", seconds=3.0)


def _idf1_and_switches(video: Path, truth: list[list[dict]], tracker: FaceTracker) -> tuple[float, int]:
    """IDF1 (greedy one-to-one id mapping by frames matched) and ID switches of a tracker run on the clip."""
    from ferkit.faces.detectors import iou

    pairs: dict[tuple[int, int], int] = {}
    last: dict[int, int] = {}
    switches = gt_n = tr_n = 0
    for f, gt in zip(iter_video(video, None), truth, strict=True):
        tracks = tracker.update(f)
        gt = [g for g in gt if g["visible"] >= 0.6 and g["inside"] >= 0.8]
        gt_n, tr_n = gt_n + len(gt), tr_n + len(tracks)
        for g in gt:
            best = max(tracks, key=lambda t: iou(t.face.box, g["box"]), default=None)
            if best is not None and iou(best.face.box, g["box"]) >= 0.3:
                pairs[(g["id"], best.face_id)] = pairs.get((g["id"], best.face_id), 0) + 1
                switches += last.get(g["id"], best.face_id) != best.face_id
                last[g["id"]] = best.face_id
    used_g, used_t, idtp = set(), set(), 0
    for (g, t), n in sorted(pairs.items(), key=lambda kv: -kv[1]):
        if g not in used_g and t not in used_t:
            used_g.add(g)
            used_t.add(t)
            idtp += n
    return 2 * idtp / (gt_n + tr_n), switches


def test_tracker_keeps_ids_of_crossing_faces(crowd: tuple[Path, list[list[dict]]]) -> None:
    video, truth = crowd
    tracker = FaceTracker(create_detector())
    idf1, switches = _idf1_and_switches(video, truth, tracker)
    assert idf1 >= 0.8 and switches <= 3, (idf1, switches)
    assert tracker._next_id <= 9  # six heads: few spare ids


def test_lost_faces_take_their_id_back(crowd: tuple[Path, list[list[dict]]]) -> None:
    video, truth = crowd
    plain = FaceTracker(create_detector(), reid_seconds=0.0)  # IoU identities only
    refinding = FaceTracker(create_detector())
    idf1_plain, _ = _idf1_and_switches(video, truth, plain)
    idf1, _ = _idf1_and_switches(video, truth, refinding)
    assert refinding._next_id < plain._next_id and idf1 > idf1_plain, (refinding._next_id, plain._next_id)


def test_tracker_state_round_trips_with_lost_faces(crowd: tuple[Path, list[list[dict]]]) -> None:
    video, _ = crowd
    a, b = FaceTracker(create_detector()), FaceTracker(create_detector())
    frames = list(iter_video(video, None))
    for f in frames[:45]:
        a.update(f)
    state = json.loads(json.dumps(a.state()))
    assert "lost" in state and "interval" in state
    b.restore(state, frames[44].gray)
    for f in frames[45:]:
        ta, tb = a.update(f), b.update(f)
        assert [(t.face_id, t.face.box) for t in ta] == [(t.face_id, t.face.box) for t in tb]
    assert a.state() == b.state()


def test_each_detector_has_its_own_template() -> None:
    assert detector_template("yunet") == "fer" and detector_template("yunet_small") == "fer"
    assert detector_template("blazeface") == "fer_blazeface" and detector_template("blazeface_full") == "fer_blazeface"
    assert detector_template("mesh") == "fer_blazeface"
    assert {detector_template(n) for n in DETECTORS} <= {"fer", "fer_blazeface"}
    assert AnalyzeOptions().template == "fer"
    assert AnalyzeOptions(detector="blazeface").template == "fer_blazeface"
    assert AnalyzeOptions(detector="blazeface", template="tight").template == "tight"


def test_blazeface_photos_are_aligned_on_its_template(tmp_path: Path, blazeface, model) -> None:
    photo = tmp_path / "photo.png"
    rgb = padded_photo(sorted((DATA / "fer2013" / "test" / "happy").iterdir())[3])
    cv2.imwrite(str(photo), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    got = load_pixels(Sample("d:1", "happy", "d", path=photo), 64, "gray", align="detect", detector=blazeface)
    face = blazeface.detect_still(read_image(photo))[0]
    gray = cv2.cvtColor(read_image(photo), cv2.COLOR_RGB2GRAY)
    assert np.array_equal(got, align_face(gray, face, 64, "fer_blazeface")[0])
    assert not np.array_equal(got, align_face(gray, face, 64, "fer")[0])
    files = [f"happy/{p.name}" for p in sorted((SFEW / "happy").iterdir())[:3]]
    own = predict_dataset(model, SFEW, crops=False, detector="blazeface", files=files)
    named = predict_dataset(model, SFEW, crops=False, detector="blazeface", template="fer_blazeface", files=files)
    yunets = predict_dataset(model, SFEW, crops=False, detector="blazeface", template="fer", files=files)
    assert np.array_equal(own.raw_logits, named.raw_logits) and not np.allclose(own.raw_logits, yunets.raw_logits)
