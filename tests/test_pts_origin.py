"""Where `.pts` (and mmpose COCO) coordinates count from: the `origin` option of the readers, on real fixtures.

iBUG's 300-W/300-VW files count pixels from 1; the library's landmarks are 0-based pixel indices,
so a reader with origin 1 gives the written values minus 1. The `pts` reader and `export --to pts`
both default to 0, so an export reads back exactly.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lafin_aug.cli.main import main
from lafin_aug.data import open_dataset
from lafin_aug.data.pts import read_pts
from lafin_aug.data.spec import DatasetSpec, open_reader
from lafin_aug.export import export_pairs

#: the 300-VW frames of the fixture (video/stem); the JSON covers all but 401/000731
FRAMES = ("001/000006", "001/000009", "401/000731", "401/000732")


def frames_folder(shared: Path, folder: Path) -> Path:
    """The 300-VW fixture frames copied flat into `folder` as <video>_<stem>.{jpg,pts} (the pts layout)."""
    folder.mkdir()
    for frame in FRAMES:
        video, stem = frame.split("/")
        shutil.copy(shared / f"fixtures/mmpose/300vw/{video}/annot/{stem}.pts", folder / f"{video}_{stem}.pts")
        shutil.copy(shared / f"fixtures/mmpose/300vw/{video}/imgs/{stem}.jpg", folder / f"{video}_{stem}.jpg")
    return folder


def written(shared: Path) -> dict[str, np.ndarray]:
    """The numbers as written in each frame's .pts, by frame."""
    return {frame: read_pts(shared / "fixtures/mmpose/300vw" / f"{frame.replace('/', '/annot/')}.pts")
            for frame in FRAMES}


def test_mmpose_coco_keeps_the_pts_numbers_so_both_count_from_one(shared_data, tmp_path):
    folder = shared_data / "fixtures/mmpose/300vw"
    document = json.loads((folder / "anno_300vw.json").read_text())
    names = {image["id"]: image["file_name"] for image in document["images"]}
    as_written = written(shared_data)
    for annotation in document["annotations"]:
        frame = names[annotation["image_id"]].replace("/imgs/", "/").removesuffix(".jpg")
        keypoints = np.asarray(annotation["keypoints"], np.float32).reshape(-1, 3)[:, :2]
        assert np.array_equal(keypoints, as_written[frame]), frame  # unshifted by mmpose's converter
    # hence the same face read from either file with iBUG's origin gives the same 0-based landmarks
    coco = open_dataset("coco", folder / "anno_300vw.json", origin=1, on_error="raise")
    pts = open_dataset("pts", frames_folder(shared_data, tmp_path / "frames"), origin=1, on_error="raise")
    by_name = {record.meta["name"]: record.landmarks for record in pts.records}
    for record in coco.records:
        name = record.meta["file_name"].replace("/imgs/", "_").removesuffix(".jpg")
        assert np.array_equal(record.landmarks, by_name[name])
    assert len(coco) == 3 and len(pts) == 4


def test_origin_subtracts_from_the_written_values(shared_data, tmp_path):
    root = frames_folder(shared_data, tmp_path / "frames")
    as_written = [written(shared_data)[frame] for frame in FRAMES]
    default, ibug = open_dataset("pts", root), open_dataset("pts", root, origin=1)
    assert (default.origin, ibug.origin) == (0, 1)
    for record, values in zip(default.records, as_written):
        assert np.array_equal(record.landmarks, values)
    for record, values in zip(ibug.records, as_written):
        assert record.landmarks.dtype == np.float32 and np.array_equal(record.landmarks, values - 1)
    assert ibug.records[0].landmarks[0].tolist() == pytest.approx([742.224, 196.764])  # 743.224 197.764 as written
    assert ibug.describe()["origin"] == 1 and default.describe()["origin"] == 0
    with pytest.raises(ValueError, match="origin must be 0"):
        open_dataset("pts", root, origin=2)


def test_300w_defaults_to_origin_one_and_coco_to_zero(shared_data, tmp_path):
    root = tmp_path / "300W"
    (root / "ibug").mkdir(parents=True)
    for name in ("afw", "helen/trainset", "helen/testset", "lfpw/trainset", "lfpw/testset"):
        (root / name).mkdir(parents=True)
    shutil.copy(shared_data / "fixtures/mmpose/300vw/401/annot/000732.pts", root / "ibug")
    shutil.copy(shared_data / "fixtures/mmpose/300vw/401/imgs/000732.jpg", root / "ibug")
    values = read_pts(root / "ibug/000732.pts")
    official = open_dataset("300w", root, "challenging")
    assert official.origin == 1 and np.array_equal(official.records[0].landmarks, values - 1)
    assert np.array_equal(open_dataset("300w", root, "challenging", origin=0).records[0].landmarks, values)
    summary = official.describe()
    assert (summary["origin"], summary["schema"], summary["points"]) == (1, "ibug68", 68)
    # mmpose's 300-W COCO file is read as written by default, one pixel lower with origin 1
    path = shared_data / "fixtures/mmpose/300w/test_300w.json"
    plain, shifted = open_dataset("coco", path), open_dataset("coco", path, origin=1)
    assert plain.origin == 0
    for a, b in zip(plain.records, shifted.records):
        assert np.array_equal(b.landmarks, a.landmarks - 1)


def test_export_pts_writes_what_the_pts_reader_reads_by_default(shared_data, tmp_path):
    root = frames_folder(shared_data, tmp_path / "frames")
    spec = DatasetSpec("pts", str(root), origin=1)
    source = open_reader(spec)
    export_pairs(spec, "pts", tmp_path / "out", progress=False)
    back = open_dataset("pts", tmp_path / "out", on_error="raise")
    assert back.origin == 0 and len(back) == len(source) == 4
    for a, b in zip(source.records, back.records):
        assert np.array_equal(a.landmarks, b.landmarks)  # 0-based in, 0-based files, 0-based out
    first = (tmp_path / "out" / f"{back.records[0].meta['name']}.pts").read_text().splitlines()[3]
    assert [float(v) for v in first.split()] == pytest.approx([742.224, 196.764])


def test_origin_travels_in_the_spec_and_the_cli(shared_data, tmp_path):
    root = frames_folder(shared_data, tmp_path / "frames")
    spec = DatasetSpec("pts", str(root), origin=1)
    assert spec.to_dict()["origin"] == 1 and DatasetSpec.from_dict(spec.to_dict()) == spec
    assert DatasetSpec("pts", str(root)).options() == {}
    with pytest.raises(ValueError, match="synthetic reader takes no origin option"):
        open_reader(DatasetSpec("synthetic", count=1, origin=1))
    for args, origin in (([], 0), (["--origin", "1"], 1)):
        result = CliRunner().invoke(main, ["stats", "--dataset", "pts", "--root", str(root), "--json", *args])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["origin"] == origin
