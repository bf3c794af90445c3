"""Hostile inputs to the readers: COCO files without num_keypoints or with non-number values,
links out of the dataset root, malformed JSON, missing roots, and the skip report."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lafin_aug.data import DatasetError, open_dataset
from lafin_aug.data.base import parse_points, resolve_inside

TRIPLES = [10.0, 10.0, 2, 20.0, 20.0, 2, 30.0, 30.0, 2]


# ----- builders -----

def write_image(path: Path) -> Path:
    """A 40x40 grey PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((40, 40, 3), 128, np.uint8))
    return path


def tiny_coco(folder: Path, *annotations: dict) -> Path:
    """face.png and coco.json in `folder` with these annotations (image_id 1 is face.png)."""
    write_image(folder / "face.png")
    document = {"images": [{"id": 1, "file_name": "face.png", "height": 40, "width": 40}],
                "annotations": list(annotations), "categories": [{"id": 1, "name": "face"}]}
    (folder / "coco.json").write_text(json.dumps(document))
    return folder / "coco.json"


def annotation(number: int, keypoints: list | None = None, **fields) -> dict:
    """A COCO annotation of image 1 (three labelled points unless `keypoints` is given)."""
    return {"id": number, "image_id": 1, "keypoints": list(TRIPLES) if keypoints is None else keypoints, **fields}


def write_pts(path: Path, points: list[tuple[float, float]]) -> Path:
    """A `.pts` file holding `points`."""
    rows = [f"{x} {y}" for x, y in points]
    path.write_text("\n".join(["version: 1", f"n_points: {len(points)}", "{", *rows, "}"]) + "\n")
    return path


def mmpose_wflw(tmp: Path, shared: Path) -> tuple[Path, dict]:
    """A copy of mmpose's WFLW fixture folder and its parsed JSON (4 faces, 98 points)."""
    root = tmp / "coco"
    shutil.copytree(shared / "fixtures/mmpose/wflw", root)
    return root / "test_wflw.json", json.loads((root / "test_wflw.json").read_text())


# ----- 1. num_keypoints absent: the count comes from the arrays -----

def test_coco_without_num_keypoints_infers_the_count(shared_data, tmp_path):
    path, document = mmpose_wflw(tmp_path, shared_data)
    for ann in document["annotations"]:
        del ann["num_keypoints"]
    path.write_text(json.dumps(document))
    reader = open_dataset("coco", path, on_error="raise")
    assert (len(reader), reader.points, reader.skipped.total) == (4, 98, 0)
    assert reader[3].landmarks.shape == (98, 2)


def test_coco_without_num_keypoints_small_file(tmp_path):
    reader = open_dataset("coco", tiny_coco(tmp_path, annotation(1), annotation(2)), on_error="raise")
    assert (len(reader), reader.points) == (2, 3)
    assert reader[1].landmarks.tolist() == [[10, 10], [20, 20], [30, 30]]


def test_coco_without_num_keypoints_rejects_a_length_not_a_multiple_of_3(tmp_path):
    path = tiny_coco(tmp_path, annotation(1), annotation(7, TRIPLES[:-1]))
    with pytest.raises(DatasetError, match=r"coco\.json: annotation 7: .*8 values, not a multiple of 3") as info:
        open_dataset("coco", path, on_error="raise")
    assert info.value.reason == "point_count"
    reader = open_dataset("coco", path)
    assert (len(reader), dict(reader.skipped.reasons)) == (1, {"point_count": 1})


def test_coco_num_keypoints_disagreeing_with_the_array_is_still_rejected(shared_data, tmp_path):
    path, document = mmpose_wflw(tmp_path, shared_data)
    bad = next(ann for ann in document["annotations"] if ann["id"] == 40)
    del bad["keypoints"][-3:]
    path.write_text(json.dumps(document))
    expected = (r"test_wflw\.json: annotation 40: expected 98 x,y,v keypoints \(294 values, the file's most "
                r"common count\), found 291 values; its num_keypoints is 98")
    with pytest.raises(DatasetError, match=expected):
        open_dataset("coco", path, on_error="raise")
    assert dict(open_dataset("coco", path).skipped.reasons) == {"point_count": 1}


def test_coco_present_num_keypoints_still_sets_the_count(tmp_path):
    """A present num_keypoints keeps deciding the file's count (mmpose semantics, as before)."""
    path = tiny_coco(tmp_path, annotation(1, num_keypoints=2), annotation(2, num_keypoints=2),
                     annotation(3, TRIPLES[:6]))
    reader = open_dataset("coco", path)
    assert reader.points == 2 and [r.meta["annotation_id"] for r in reader.records] == [3]
    assert dict(reader.skipped.reasons) == {"point_count": 2}


# ----- 2. values that are not numbers -----

@pytest.mark.parametrize("index,value", [(0, True), (1, False), (2, True), (0, "10.0"), (1, None), (3, [20.0]),
                                         (4, {"y": 1})])
def test_coco_rejects_non_number_keypoint_values(tmp_path, index, value):
    keypoints = list(TRIPLES)
    keypoints[index] = value
    path = tiny_coco(tmp_path, annotation(1), annotation(5, keypoints))
    with pytest.raises(DatasetError, match=rf"coco\.json: annotation 5: keypoint value {index} is .*not a number"):
        open_dataset("coco", path, on_error="raise")
    reader = open_dataset("coco", path)
    assert (len(reader), dict(reader.skipped.reasons)) == (1, {"non_numeric": 1})


def test_coco_huge_integer_is_a_dataset_error(tmp_path):
    path = tiny_coco(tmp_path, annotation(1), annotation(2))
    path.write_text(path.read_text().replace("20.0", "1" + "0" * 400, 1))
    with pytest.raises(DatasetError, match=r"annotation 1: non-numeric landmark value"):
        open_dataset("coco", path, on_error="raise")


@pytest.mark.parametrize("values", [[True, 2.0], [1.0, np.bool_(False)], ["1", 10 ** 400]])
def test_parse_points_rejects_booleans_and_overflow(values):
    with pytest.raises(DatasetError, match=r"face\.pts:3: non-numeric landmark value") as info:
        parse_points(values, 1, "face.pts", 3)
    assert info.value.reason == "non_numeric"


# ----- 3. links out of the root -----

@pytest.fixture()
def linked(tmp_path: Path) -> Path:
    """root/ with real.png, inside.png -> real.png, outside.png -> ../secret.png, out/ -> ../elsewhere/."""
    root = tmp_path / "root"
    write_image(root / "real.png")
    write_image(tmp_path / "secret.png")
    write_image(tmp_path / "elsewhere/deep.png")
    (root / "inside.png").symlink_to("real.png")
    (root / "outside.png").symlink_to(tmp_path / "secret.png")
    (root / "out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    return root


@pytest.mark.parametrize("name", ["outside.png", "out/deep.png", "out/../secret.png"])
def test_resolve_inside_refuses_links_out_of_the_root(linked, name):
    with pytest.raises(DatasetError, match=r"list\.txt:4: image .* is a link to .*outside the dataset root") as info:
        resolve_inside(linked, name, "list.txt", 4)
    assert info.value.reason == "path_escape"


def test_resolve_inside_allows_links_within_the_root(linked, tmp_path):
    assert resolve_inside(linked, "inside.png", "list.txt") == linked / "inside.png"
    (tmp_path / "alias").symlink_to(linked, target_is_directory=True)  # a root that is itself a link
    assert resolve_inside(tmp_path / "alias", "inside.png", "list.txt").is_file()
    assert resolve_inside(tmp_path / "alias", "real.png", "list.txt") == tmp_path / "alias/real.png"


def test_coco_image_link_out_of_the_root_is_skipped(shared_data, tmp_path):
    path, document = mmpose_wflw(tmp_path, shared_data)
    name = document["images"][0]["file_name"]
    (path.parent / name).rename(tmp_path / name)
    (path.parent / name).symlink_to(tmp_path / name)
    reader = open_dataset("coco", path)
    assert (len(reader), dict(reader.skipped.reasons)) == (3, {"path_escape": 1})
    assert "annotation 2" in reader.skipped.errors[0].source


def test_pts_walk_refuses_links_out_of_the_root(tmp_path):
    root = tmp_path / "faces"
    points = [(5.0, 5.0), (30.0, 30.0)]
    write_image(root / "a.png")
    write_pts(root / "a.pts", points)
    write_image(tmp_path / "b.png")
    (root / "b.png").symlink_to(tmp_path / "b.png")  # image links out
    write_pts(root / "b.pts", points)
    write_image(root / "c.png")
    (root / "c.pts").symlink_to(write_pts(tmp_path / "c.pts", points))  # .pts links out
    (root / "d.png").symlink_to("a.png")  # links within the root stay allowed
    (root / "d.pts").symlink_to("a.pts")
    reader = open_dataset("pts", root, points=2)
    assert [r.meta["name"] for r in reader.records] == ["a", "d"]
    assert dict(reader.skipped.reasons) == {"path_escape": 2}
    assert [Path(e.source).name for e in reader.skipped.errors] == ["b.pts", "c.pts"]
    assert "b.png is a link to" in str(reader.skipped.errors[0])
    with pytest.raises(DatasetError, match=r"b\.pts: b\.png is a link to .*outside the dataset folder"):
        open_dataset("pts", root, points=2, on_error="raise")


# ----- 4. malformed COCO files, missing roots -----

MALFORMED = {
    "truncated": (None, r":\d+: not valid JSON, truncated or damaged"),
    "empty": (b"", r": the file is empty"),
    "text": (b"images: none\n", r":1: not valid JSON"),
    "binary": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\xfe\x81", r": not (valid )?JSON"),
    "deep": (b"[" * 200_000 + b"]" * 200_000, r": JSON nested too deeply"),
    "array": (b"[1, 2]", r": not a COCO keypoint file: the JSON is an array"),
    "no images": (b'{"annotations": []}', r': not a COCO keypoint file: "images" is missing'),
    "no annotations": (b'{"images": []}', r': not a COCO keypoint file: "annotations" is missing'),
    "images object": (b'{"images": {}, "annotations": []}',
                      r': not a COCO keypoint file: "images" is an object, not a list'),
    "image without name": (b'{"images": [{"id": 1}], "annotations": []}', r': images\[0\] is not an object'),
    "repeated id": (b'{"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}], "annotations": []}',
                    r": images\[1\] repeats image id 1"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_coco_is_one_dataset_error_naming_the_file(shared_data, tmp_path, case):
    content, expected = MALFORMED[case]
    path = tmp_path / "anno.json"
    if content is None:
        content = (shared_data / "fixtures/mmpose/300w/test_300w.json").read_bytes()[:5000]
    path.write_bytes(content)
    with pytest.raises(DatasetError) as info:
        open_dataset("coco", path)  # under the skip policy too: a broken file is not a skipped record
    message = str(info.value)
    assert isinstance(info.value, ValueError) and info.value.reason == "malformed"
    assert message.startswith(str(path)) and "\n" not in message
    assert re.match(re.escape(str(path)) + expected, message), message


def test_coco_bad_file_name_or_image_id_is_a_skipped_record(tmp_path):
    path = tiny_coco(tmp_path, annotation(1), annotation(2), annotation(3))
    document = json.loads(path.read_text())
    document["images"].append({"id": 2, "file_name": 7})
    document["annotations"][1]["image_id"] = 2
    document["annotations"][2]["image_id"] = [1]
    path.write_text(json.dumps(document))
    reader = open_dataset("coco", path)
    assert (len(reader), dict(reader.skipped.reasons)) == (1, {"malformed": 1, "unknown_image": 1})
    assert str(reader.skipped.errors[0]) == f"{path}: annotation 2: bad image name 7"


def test_missing_roots_name_the_path(tmp_path):
    absent = tmp_path / "absent"
    with pytest.raises(FileNotFoundError, match=rf"^dataset folder {re.escape(str(absent))} does not exist"):
        open_dataset("pts", absent)
    with pytest.raises(FileNotFoundError, match=rf"^COCO keypoint file {re.escape(str(absent))}.json not found"):
        open_dataset("coco", tmp_path / "absent.json")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(tmp_path))}/file\.txt is not a folder"):
        open_dataset("pts", tmp_path / "file.txt")
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(tmp_path))}: is a folder, not a COCO keypoint JSON"):
        open_dataset("coco", tmp_path)


# ----- 5. what stats and train/generate print about skipped records -----

def bad_pts_folder(root: Path, good: int, missing: int, wrong: int) -> Path:
    """`good` faces, `missing` .pts without an image, `wrong` .pts with 3 points (2 expected)."""
    root.mkdir(parents=True)
    for number in range(good):
        write_image(root / f"g{number}.png")
        write_pts(root / f"g{number}.pts", [(5.0, 5.0), (30.0, 30.0)])
    for number in range(missing):
        write_pts(root / f"m{number}.pts", [(5.0, 5.0), (30.0, 30.0)])
    for number in range(wrong):
        write_image(root / f"w{number}.png")
        write_pts(root / f"w{number}.pts", [(5.0, 5.0), (6.0, 6.0), (30.0, 30.0)])
    return root


def test_describe_warns_when_no_face_is_usable(tmp_path):
    root = bad_pts_folder(tmp_path / "faces", 0, 1, 2)
    summary = open_dataset("pts", root, points=2).describe()
    assert summary["faces"] == 0
    assert summary["warning"] == (
        f"no usable faces under {root} (pts, split train): 3 skipped (point_count 2, missing_image 1; "
        f"first: {root}/m0.pts (missing_image), {root}/w0.pts:2 (point_count), {root}/w1.pts:2 (point_count))")
    (tmp_path / "empty").mkdir()
    empty = open_dataset("pts", tmp_path / "empty").describe()
    assert empty["warning"] == f"no usable faces under {tmp_path / 'empty'} (pts, split train): no records found"
    assert "warning" not in open_dataset("pts", bad_pts_folder(tmp_path / "ok", 1, 1, 0), points=2).describe()


def test_skipped_summary_counts_by_reason_and_lists_the_first_files(tmp_path):
    root = bad_pts_folder(tmp_path / "faces", 2, 4, 3)
    reader = open_dataset("pts", root, points=2)
    assert reader.skipped_summary(limit=2) == (
        f"skipped 7 records under {root}: missing_image 4, point_count 3; "
        f"first: {root}/m0.pts (missing_image), {root}/m1.pts (missing_image) (+5 more)")
    assert reader.skipped_summary().count("(missing_image)") == 4 and "(+2 more)" in reader.skipped_summary()
    assert reader.skipped_summary(limit=0) == f"skipped 7 records under {root}: missing_image 4, point_count 3"
    assert open_dataset("pts", bad_pts_folder(tmp_path / "ok", 1, 0, 0), points=2).skipped_summary() == ""


def test_skipped_summary_counts_records_dropped_on_image_access(tmp_path):
    root = bad_pts_folder(tmp_path / "faces", 2, 0, 0)
    (root / "g1.png").write_bytes(b"not an image")
    reader = open_dataset("pts", root, points=2)
    assert reader.skipped_summary() == ""
    reader.validate(progress=False)
    assert reader.skipped_summary() == (f"skipped 1 record under {root}: unreadable_image 1; "
                                        f"first: {root}/g1.pts (unreadable_image)")
