"""Parsing maps drawn from landmarks, checked on real annotated faces (68- and 98-point markups)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lafin_aug.data import open_dataset
from lafin_aug.data.crop import crop_face
from lafin_aug.data.parsing import (
    FLIP_CLASSES,
    PARSING_CLASSES,
    flip_labels,
    parsing_labels,
    parsing_maps,
    parsing_onehot,
)
from lafin_aug.landmarks import flip_landmarks, schema_for, to_ibug68

#: COCO-keypoint face sets among the fixtures: WFLW (98 points) and three iBUG-style 68-point sets.
FACE_SETS = ("wflw/test_wflw.json", "300w/test_300w.json", "300vw/anno_300vw.json", "300wlp/test_300wlp.json")
SIZE = 256
CLASS = {name: index for index, name in enumerate(PARSING_CLASSES)}
FACE_CLASSES = [CLASS[name] for name in PARSING_CLASSES if name not in ("background", "hair", "neck")]


def _crops(shared_data, size):
    """(tag, landmarks) of every fixture face, cropped LaFIn-style to size x size."""
    crops = []
    for name in FACE_SETS:
        reader = open_dataset("coco", shared_data / "fixtures" / "mmpose" / name)
        crops += [(f"{name}#{i}", crop_face(face, size=size).landmarks) for i, face in enumerate(reader)]
    return crops


@pytest.fixture(scope="module")
def faces(shared_data):
    """(tag, landmarks, labels) of the 11 fixture faces at SIZE px: 4 WFLW faces, then 7 iBUG-68 ones."""
    return [(tag, points, parsing_labels(points, SIZE)) for tag, points in _crops(shared_data, SIZE)]


def _distance_to(labels, classes, points):
    """Distance (px) from each point's pixel to the nearest pixel of any of `classes`."""
    outside = (~np.isin(labels, classes)).astype(np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    x, y = np.rint(points).astype(int).clip(0, np.array(labels.shape[::-1]) - 1).T
    return distance[y, x]


def test_fixture_faces_cover_both_markups(faces):
    assert sorted({len(points) for _, points, _ in faces}) == [68, 98]
    assert len(faces) == 11


def test_landmarks_lie_on_their_classes(faces):
    for tag, points, labels in faces:
        schema = schema_for(len(points))
        bounds = schema.boundaries
        checks = [(schema.groups[name], [CLASS[name]]) for name in ("brow_left", "brow_right", "eye_left",
                                                                    "eye_right", "nose")]
        # the outer lip lines without the mouth corners; the corners and inner lines, where the lips meet each
        # other or the mouth's interior, may lie on either lip or the mouth
        checks += [(bounds["upper_lip_top"][1:-1], [CLASS["upper_lip"]]),
                   (bounds["lower_lip_bottom"][1:-1], [CLASS["lower_lip"]]),
                   (schema.groups["lips"], [CLASS["upper_lip"], CLASS["lower_lip"], CLASS["mouth"]])]
        for indices, classes in checks:
            distance = _distance_to(labels, classes, points[list(indices)])
            assert distance.max() <= 1.5, (tag, [PARSING_CLASSES[c] for c in classes], distance.round(1))


def test_eye_centres_and_face_middle(faces):
    for tag, points, labels in faces:
        bounds = schema_for(len(points)).boundaries
        for side in ("left", "right"):
            ring = bounds[f"eyelid_{side}_upper"] + bounds[f"eyelid_{side}_lower"]
            x, y = np.rint(points[list(ring)].mean(axis=0)).astype(int)
            assert labels[y, x] == CLASS[f"eye_{side}"], (tag, side, PARSING_CLASSES[labels[y, x]])
        inner_corners = points[[bounds["eyelid_left_upper"][-1], bounds["eyelid_right_upper"][0]]]
        for what, point in (("between the eyes", inner_corners.mean(axis=0)),
                            ("nose tip", points[bounds["nose_bridge"][-1]])):
            x, y = np.rint(point).astype(int)
            assert labels[y, x] in (CLASS["skin"], CLASS["nose"]), (tag, what, PARSING_CLASSES[labels[y, x]])


def test_corners_are_off_the_face_and_every_class_is_drawn(faces):
    for tag, points, labels in faces:
        corners = labels[[0, 0, -1, -1], [0, -1, 0, -1]]
        assert not np.isin(corners, FACE_CLASSES).any(), (tag, corners)
        assert labels[0, SIZE // 2] in (CLASS["background"], CLASS["hair"]), tag  # above the forehead
        assert labels[-1, SIZE // 2] in (CLASS["background"], CLASS["neck"]), tag  # below the chin
        counts = np.bincount(labels.ravel(), minlength=len(PARSING_CLASSES))
        assert (counts > 0).all(), (tag, dict(zip(PARSING_CLASSES, counts.tolist())))
        # filled regions, not outlines: an eye or an open mouth covers at least its polygon's area
        bounds = schema_for(len(points)).boundaries
        rings = {"eye_left": bounds["eyelid_left_upper"] + bounds["eyelid_left_lower"],
                 "eye_right": bounds["eyelid_right_upper"] + bounds["eyelid_right_lower"],
                 "mouth": bounds["upper_lip_bottom"][1:-1] + bounds["lower_lip_top"][::-1][1:-1]}
        for name, ring in rings.items():
            area = cv2.contourArea(points[list(ring)].astype(np.float32))
            assert counts[CLASS[name]] >= 0.9 * area, (tag, name, counts[CLASS[name]], area)
        assert counts[CLASS["skin"]] > 0.2 * labels.size, tag


def test_left_classes_lie_left_of_right_classes(faces):
    for tag, _, labels in faces:
        for part in ("brow", "eye"):
            left, right = (np.nonzero(labels == CLASS[f"{part}_{side}"])[1].mean() for side in ("left", "right"))
            assert left + 10 < right, (tag, part, left, right)


@pytest.mark.parametrize("size", [SIZE, 128])
def test_mirrored_landmarks_draw_the_mirrored_map(shared_data, size):
    agreements = []
    for tag, points in _crops(shared_data, size):
        mirrored = parsing_labels(flip_landmarks(points, size), size)
        agreements.append(np.mean(mirrored == flip_labels(parsing_labels(points, size))))
    # measured: 0.9973-0.9985 at 256 px, 0.9935-0.9958 at 128 px
    assert min(agreements) >= 0.99, np.round(agreements, 4)


def test_flip_classes_swap_exactly_the_sides():
    assert FLIP_CLASSES.shape == (len(PARSING_CLASSES),)
    assert np.array_equal(FLIP_CLASSES[FLIP_CLASSES], np.arange(len(PARSING_CLASSES)))
    moved = {PARSING_CLASSES[i]: PARSING_CLASSES[j] for i, j in enumerate(FLIP_CLASSES) if i != j}
    assert moved == {"brow_left": "brow_right", "brow_right": "brow_left",
                     "eye_left": "eye_right", "eye_right": "eye_left"}
    labels = np.array([[CLASS["eye_left"], CLASS["skin"], CLASS["brow_right"]]], np.uint8)
    assert flip_labels(labels).tolist() == [[CLASS["brow_left"], CLASS["skin"], CLASS["eye_right"]]]


def test_98_point_map_agrees_with_its_68_point_subset(faces):
    # iBUG has only the brow's upper edge and 6 of WFLW's 8 eye points; measured IoU: brows 0.64-0.75,
    # eyes 0.83-0.93, every other class 0.96-1.0
    least_iou = {"brow": 0.55, "eye": 0.8}
    for tag, points, labels in faces:
        if len(points) != 98:
            continue
        subset = parsing_labels(to_ibug68(points), SIZE)
        # measured 0.9933-0.9945 on the four WFLW faces
        assert np.mean(subset == labels) >= 0.985, tag
        for index, name in enumerate(PARSING_CLASSES[1:], start=1):
            union = np.count_nonzero((labels == index) | (subset == index))
            iou = np.count_nonzero((labels == index) & (subset == index)) / union
            assert iou >= least_iou.get(name.split("_")[0], 0.95), (tag, name, round(iou, 3))


def test_a_rolled_face_gets_the_rolled_map(faces):
    for tag, points, labels in faces[::3]:
        turned = np.stack([points[:, 1], SIZE - 1 - points[:, 0]], axis=1)  # np.rot90's counter-clockwise turn
        assert np.mean(parsing_labels(turned, SIZE) == np.rot90(labels)) >= 0.99, tag


def test_shapes_dtypes_and_one_hot(faces):
    tag, points, labels = faces[0]
    assert labels.shape == (SIZE, SIZE) and labels.dtype == np.uint8
    assert np.array_equal(parsing_labels(points.copy(), SIZE), labels)  # deterministic
    # (height, width): a shorter or narrower canvas shows the same drawing, cut (but for a few pixels where
    # OpenCV clips a long edge, such as the neck's, at the canvas border)
    for shape, cut in (((200, SIZE), labels[:200]), ((SIZE, 180), labels[:, :180])):
        drawn = parsing_labels(points, shape)
        assert drawn.shape == shape and np.mean(drawn == cut) >= 0.999, shape
    onehot = parsing_onehot(labels)
    assert onehot.shape == (len(PARSING_CLASSES), SIZE, SIZE) and onehot.dtype == np.float32
    assert np.array_equal(onehot.sum(axis=0), np.ones((SIZE, SIZE), np.float32))
    assert np.array_equal(onehot.argmax(axis=0), labels)


def test_parsing_maps_stacks_the_per_face_maps(faces):
    for count in (68, 98):
        chosen = [(points, labels) for _, points, labels in faces if len(points) == count][:3]
        batch = torch.from_numpy(np.stack([points for points, _ in chosen]))
        maps = parsing_maps(batch, SIZE)
        assert maps.shape == (len(chosen), len(PARSING_CLASSES), SIZE, SIZE)
        assert maps.dtype == torch.float32 and maps.device == batch.device
        expected = np.stack([parsing_onehot(labels) for _, labels in chosen])
        assert torch.equal(maps, torch.from_numpy(expected))


def test_bad_input_is_refused(faces):
    points = faces[0][1]
    with pytest.raises(ValueError, match="schema"):
        parsing_labels(points[:50], SIZE)
    bad = points.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        parsing_labels(bad, SIZE)
    with pytest.raises(ValueError, match=r"\[B,P,2\]"):
        parsing_maps(torch.from_numpy(points), SIZE)
    with pytest.raises(ValueError, match="0..11"):
        parsing_onehot(np.full((2, 2), 12, np.uint8))
