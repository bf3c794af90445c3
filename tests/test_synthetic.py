"""The synthetic dataset: determinism, contracts, splits, labels that sit on the drawing, variety."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from lafin_aug.data import open_dataset
from lafin_aug.data.render import (
    EYES,
    FaceSpec,
    Painter,
    Pose,
    ellipse_points,
    face_geometry,
    head_outline,
    render_face,
)
from lafin_aug.data.synthetic import SyntheticReader, face_spec

UNCOVERED = ("none", "glasses")  # occluders that leave the eyes, lips and cheeks visible


@pytest.fixture(scope="module")
def faces() -> SyntheticReader:
    return SyntheticReader(count=48, seed=0)


def test_same_face_renders_identical_bytes() -> None:
    first = SyntheticReader(count=3, seed=7)[2]
    again = SyntheticReader(count=3, seed=7)[2]
    assert first.image.tobytes() == again.image.tobytes()
    assert first.landmarks.tobytes() == again.landmarks.tobytes()
    assert SyntheticReader(count=3, seed=7)[2].image.tobytes() == first.image.tobytes()


def test_different_seeds_give_different_faces() -> None:
    a, b = SyntheticReader(count=1, seed=0)[0], SyntheticReader(count=1, seed=1)[0]
    assert not np.array_equal(a.image, b.image)
    assert not np.allclose(a.landmarks, b.landmarks)


@pytest.mark.parametrize("size", [256, 96])
def test_shapes_dtypes_and_landmarks_inside(size: int) -> None:
    reader = SyntheticReader(count=6, seed=3, size=size)
    assert reader.points == 68 and len(reader) == 6
    for face in reader:
        assert face.image.dtype == np.uint8 and face.image.shape == (size, size, 3)
        assert face.image.flags["C_CONTIGUOUS"]
        assert face.landmarks.dtype == np.float32 and face.landmarks.shape == (68, 2)
        assert face.landmarks.min() >= 0 and face.landmarks.max() <= size - 1


def test_count_root_and_unknown_split() -> None:
    assert len(SyntheticReader(count=0)) == 0
    assert len(SyntheticReader(root="/nowhere", count=5)) == 5
    with pytest.raises(ValueError, match="split"):
        SyntheticReader(split="val", count=1)
    with pytest.raises(ValueError, match="count"):
        SyntheticReader(count=-1)


def test_train_and_test_splits_are_disjoint() -> None:
    train = SyntheticReader(split="train", count=16, seed=0)
    test = SyntheticReader(split="test", count=16, seed=0)
    train_marks = np.stack([r.landmarks for r in train.records])
    test_marks = np.stack([r.landmarks for r in test.records])
    distances = np.abs(train_marks[:, None] - test_marks[None]).max(axis=(2, 3))
    assert distances.min() > 1.0
    assert not np.array_equal(train[0].image, test[0].image)


def test_meta_describes_the_face_and_re_renders_it(faces: SyntheticReader) -> None:
    face = faces[5]
    for key in ("yaw", "pitch", "roll", "mouth_open", "smile", "eye_close_left", "skin", "hair_style",
                "occluder", "light_azimuth"):
        assert key in face.meta
    image, landmarks = render_face(FaceSpec.from_meta(face.meta))
    assert image.tobytes() == face.image.tobytes()
    assert np.array_equal(landmarks, face.landmarks)


def test_open_dataset_builds_the_reader() -> None:
    reader = open_dataset("synthetic", count=8)
    assert isinstance(reader, SyntheticReader) and len(reader) == 8
    assert reader[7].image.shape == (256, 256, 3)


def test_canvas_keeps_the_pixel_index_convention() -> None:
    """A disk drawn at output point p on the 2x canvas is centred on p after the INTER_AREA downsample."""
    painter = Painter(64)
    centre = np.array([20.3, 30.7])
    painter.fill(ellipse_points(centre, (5.0, 5.0), 0.0, 64), (255, 255, 255))
    small = cv2.resize(painter.canvas[..., 0], (64, 64), interpolation=cv2.INTER_AREA).astype(float)
    ys, xs = np.mgrid[:64, :64]
    found = np.array([(small * xs).sum(), (small * ys).sum()]) / small.sum()
    assert np.abs(found - centre).max() < 0.05


@pytest.mark.parametrize("yaw,pitch,roll", [(35, 0, 0), (-35, 15, 0), (30, -15, 20), (-20, 10, -20)])
def test_jaw_is_the_silhouette_and_features_lie_inside(yaw: float, pitch: float, roll: float) -> None:
    spec = FaceSpec(pose=Pose(yaw=yaw, pitch=pitch, roll=roll, scale=0.6))
    geo = face_geometry(spec)
    outline = head_outline(geo).astype(np.float32)
    inside = [cv2.pointPolygonTest(outline, (float(x), float(y)), True) for x, y in geo.landmarks[17:]]
    assert min(inside) > 0
    # the far side's contour is nearer the nose than the near side's: it is the turned-away cheek's outline
    nose_x = geo.landmarks[30, 0]
    far, near = (geo.landmarks[16], geo.landmarks[0]) if yaw > 0 else (geo.landmarks[0], geo.landmarks[16])
    assert abs(far[0] - nose_x) < abs(near[0] - nose_x)


def _polygon_mask(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.rint(points * 8).astype(np.int32)], 1, cv2.LINE_8, 3)
    return mask.astype(bool)


def _redness(colour: np.ndarray) -> float:
    return float((colour[0] - colour[1]) / (colour.sum() + 1))


def test_lips_are_redder_than_the_cheeks(faces: SyntheticReader) -> None:
    checked = 0
    for face in faces:
        if face.meta["occluder"] not in UNCOVERED:
            continue
        lm, image = face.landmarks, face.image.astype(float)
        lips = _polygon_mask(lm[48:60], image.shape) & ~_polygon_mask(lm[60:68], image.shape)
        wide_side = (31, 3) if np.linalg.norm(lm[31] - lm[3]) > np.linalg.norm(lm[35] - lm[13]) else (35, 13)
        x, y = np.rint((lm[wide_side[0]] + lm[wide_side[1]]) / 2).astype(int)
        cheek = image[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).mean(0)
        assert _redness(image[lips].mean(0)) > _redness(cheek) + 0.02, face.meta["face"]
        checked += 1
    assert checked >= 20


def test_open_eyes_show_a_dark_pupil_in_a_light_eye(faces: SyntheticReader) -> None:
    checked = 0
    for face in faces:
        if face.meta["occluder"] not in UNCOVERED:
            continue
        grey = face.image.astype(float).mean(axis=2)
        for eye, closing in zip(EYES, (face.meta["eye_close_left"], face.meta["eye_close_right"])):
            if closing > 0.25:
                continue
            inside = grey[_polygon_mask(face.landmarks[eye], grey.shape)]
            assert inside.min() < 0.6 * np.percentile(inside, 90), face.meta["face"]
            checked += 1
    assert checked >= 30


def test_faces_vary_in_pose_expression_and_look() -> None:
    specs = [face_spec(0, "train", index) for index in range(200)]
    yaw = np.array([s.pose.yaw for s in specs])
    assert yaw.min() < -25 and yaw.max() > 25 and yaw.std() > 12
    assert np.ptp([s.pose.pitch for s in specs]) > 20 and np.ptp([s.pose.roll for s in specs]) > 20
    assert np.ptp([s.pose.scale for s in specs]) > 0.2
    luminance = np.array([np.mean(s.appearance.skin) for s in specs])
    assert luminance.min() < 90 and luminance.max() > 190
    assert len({s.appearance.hair_style for s in specs}) == 6
    assert len({s.appearance.occluder for s in specs}) == 7
    assert np.mean([s.expression.mouth_open > 0.2 for s in specs]) > 0.15
    assert np.mean([min(s.expression.eye_close_left, s.expression.eye_close_right) > 0.7 for s in specs]) > 0.03


def test_rendered_faces_differ_from_each_other(faces: SyntheticReader) -> None:
    means = np.array([faces[i].image.reshape(-1, 3).mean(0) for i in range(8)])
    assert means.std(axis=0).min() > 5
