"""`lafin-aug export`: shards and datasets as COCO keypoints / .pts that our readers read back exactly."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from lafin_aug.cli.main import main
from pycocotools.coco import COCO

from lafin_aug.data import open_dataset
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.export import ExportError, coco_category, decimal, export_pairs
from lafin_aug.landmarks import schema_for
from lafin_aug.shards import ShardFormatError, ShardHeader, shard_name, write_manifest, write_shard

S, P = 24, 68
HEADER = ShardHeader(points=P, size=S, dataset="synthetic", split="train", seed=0, inpainter_sha256="cd" * 32)


def shard_arrays(first_source: int, seed: int) -> dict[str, np.ndarray]:
    """Two faces x epochs (-1, 0, 2): noisy images, awkward float32 landmarks (some just outside the crop)."""
    rng = np.random.default_rng(seed)
    epoch = np.tile(np.array([-1, 0, 2], np.int32), 2)
    landmarks = rng.uniform(-3, S + 2, (6, P, 2)).astype(np.float32)
    mask = (rng.random((6, S, S)) < 0.3).astype(np.uint8) * (epoch >= 0)[:, None, None].astype(np.uint8)
    return {"image": rng.integers(0, 256, (6, S, S, 3), dtype=np.uint8), "landmarks": landmarks, "mask": mask,
            "source_index": np.repeat(np.arange(first_source, first_source + 2), 3), "epoch": epoch,
            "edited": np.array([0, 1, 0, 0, 0, 1], np.uint8)}


@pytest.fixture
def shards(tmp_path: Path) -> tuple[Path, list[dict[str, np.ndarray]]]:
    """Two shards of six records each, with their arrays."""
    directory, arrays = tmp_path / "shards", [shard_arrays(0, 1), shard_arrays(2, 2)]
    directory.mkdir()
    write_manifest(directory, [write_shard(directory / shard_name(k), HEADER, **a) for k, a in enumerate(arrays)])
    return directory, arrays


def records(arrays: list[dict[str, np.ndarray]], include_real: bool = True) -> list[dict[str, np.ndarray]]:
    """The shards' records in file order, one dict each."""
    out = [{key: value[i] for key, value in a.items()} for a in arrays for i in range(len(a["epoch"]))]
    return [r for r in out if include_real or r["epoch"] != -1]


def test_decimal_reads_back_as_the_same_float32():
    values = np.random.default_rng(0).uniform(-50, 300, 20000).astype(np.float32)
    assert all(np.float32(float(decimal(v))) == v for v in values)
    assert decimal(np.float32(3.3)) == "3.3" and decimal(np.float32(12)) == "12"


def test_shards_to_coco_round_trip_with_extra_fields_and_masks(shards, tmp_path):
    directory, arrays = shards
    out = tmp_path / "coco"
    summary = export_pairs(directory, "coco", out, progress=False)
    assert (summary.records, summary.real, summary.generated) == (12, 4, 8)
    expected = records(arrays)
    faces = open_dataset("coco", out / "annotations.json", on_error="raise")
    assert len(faces) == len(expected) and faces.points == P
    for face, record in zip(faces, expected):
        assert np.array_equal(face.image, record["image"])
        assert face.landmarks.dtype == np.float32 and np.array_equal(face.landmarks, record["landmarks"])

    document = json.loads((out / "annotations.json").read_text())
    for image, annotation, record in zip(document["images"], document["annotations"], expected):
        assert image["file_name"].startswith("images/") and image["file_name"].endswith(".png")
        assert (image["width"], image["height"], annotation["image_id"]) == (S, S, image["id"])
        assert annotation["keypoints"][2::3] == [2] * P and annotation["num_keypoints"] == P
        low, high = record["landmarks"].min(0), record["landmarks"].max(0)
        assert np.allclose(annotation["bbox"], [low[0], low[1], *(high - low)], atol=1e-3)
        assert annotation["area"] == pytest.approx(annotation["bbox"][2] * annotation["bbox"][3], abs=1e-3)
        assert (annotation["iscrowd"], annotation["category_id"]) == (0, 1)
        assert (annotation["epoch"], annotation["source_index"], annotation["edited"]) == (
            record["epoch"], record["source_index"], bool(record["edited"]))
        if record["epoch"] == -1:
            assert annotation["mask_file"] is None
        else:
            mask = cv2.imread(str(out / annotation["mask_file"]), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(mask, record["mask"] * 255)
    category, = document["categories"]
    assert category["name"] == "face" and len(set(category["keypoints"])) == P
    coco = COCO(str(out / "annotations.json"))  # a real consumer of the format, not our reader
    assert len(coco.getImgIds()) == 12 and len(coco.getAnnIds(catIds=coco.getCatIds(catNms=["face"]))) == 12
    first = coco.loadAnns(coco.getAnnIds(imgIds=[document["images"][0]["id"]]))[0]
    assert np.allclose(np.reshape(first["keypoints"], (-1, 3))[:, :2], expected[0]["landmarks"], atol=0.01)
    assert category["keypoints"][:2] == ["jaw_0", "jaw_1"] and category["keypoints"][17] == "brow_left_0"
    assert all(1 <= i <= P for pair in category["skeleton"] for i in pair)
    assert [1, 2] in category["skeleton"] and [18, 19] in category["skeleton"]  # jaw 0-1, brow 17-18, 1-based
    assert [17, 18] not in category["skeleton"]  # jaw end to brow start


def test_coco_category_of_98_points_names_every_point_once():
    category = coco_category(98)
    assert len(set(category["keypoints"])) == 98 and not any(k.startswith("kp_") for k in category["keypoints"])
    edges = {frozenset((a + 1, b + 1)) for line in schema_for(98).boundaries.values() for a, b in zip(line, line[1:])}
    assert len(category["skeleton"]) == len(edges) and {frozenset(e) for e in category["skeleton"]} == edges


def test_shards_to_pts_round_trip_and_a_reexport_removes_what_it_no_longer_writes(shards, tmp_path):
    directory, arrays = shards
    out = tmp_path / "pts"
    assert export_pairs(directory, "pts", out, progress=False).records == 12
    assert len(list(out.glob("*.pts"))) == 12 and len(list((out / "masks").glob("*.png"))) == 8
    summary = export_pairs(directory, "pts", out, include_real=False, progress=False)
    assert (summary.records, summary.real, summary.generated) == (8, 0, 8)
    expected = records(arrays, include_real=False)
    faces = open_dataset("pts", out, on_error="raise")
    assert len(faces) == len(expected)
    for face, record in zip(faces, expected):
        assert np.array_equal(face.image, record["image"])
        assert np.array_equal(face.landmarks, record["landmarks"])
    first = sorted(out.glob("*.pts"))[0].read_text().splitlines()
    assert first[:3] == ["version: 1", f"n_points: {P}", "{"] and first[-1] == "}" and len(first) == P + 4
    assert json.loads((out / "export.json").read_text())["complete"] is True


def test_jpeg_export_keeps_landmarks_exact(shards, tmp_path):
    directory, arrays = shards
    export_pairs(directory, "coco", tmp_path / "jpg", image_format="jpg", include_real=False, progress=False)
    faces = open_dataset("coco", tmp_path / "jpg" / "annotations.json", on_error="raise")
    assert all(r.image_path.suffix == ".jpg" for r in faces.records)
    for face, record in zip(faces, records(arrays, include_real=False)):
        assert face.image.shape == record["image"].shape
        assert np.array_equal(face.landmarks, record["landmarks"])


def test_dataset_export_round_trip_through_the_cli(tmp_path):
    runner, out = CliRunner(), tmp_path / "synthetic"
    result = runner.invoke(main, ["export", "--dataset", "synthetic", "--count", "4", "--to", "coco", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 4 records (4 real, 0 generated) as coco to" in result.stdout
    original = open_dataset("synthetic", count=4)
    exported = open_dataset("coco", out / "annotations.json", on_error="raise")
    assert len(exported) == 4
    for a, b in zip(original, exported):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.landmarks, b.landmarks)
    annotation = json.loads((out / "annotations.json").read_text())["annotations"][0]
    assert "epoch" not in annotation and "mask_file" not in annotation
    again = runner.invoke(main, ["export", "--dataset", "synthetic", "--count", "4", "--to", "coco", "--out", str(out)])
    assert again.exit_code == 0, again.output  # a previous export of the same source


@pytest.mark.parametrize("arguments, message", [
    (["--to", "coco"], "exactly one source"),
    (["SHARDS", "--dataset", "synthetic", "--to", "coco"], "not both"),
    (["SHARDS", "--root", "x", "--to", "coco"], "go with --dataset"),
])
def test_source_usage_errors(shards, tmp_path, arguments, message):
    arguments = [str(shards[0]) if a == "SHARDS" else a for a in arguments]
    result = CliRunner().invoke(main, ["export", *arguments, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()


def test_refuses_an_unrelated_non_empty_out(shards, tmp_path):
    directory, _ = shards
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["export", str(directory), "--to", "pts", "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [f"Error: {out}: not empty and not a lafin-aug export "
                                                  "(no export.json); choose a new or empty --out"]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    export_pairs(directory, "coco", tmp_path / "other", progress=False)
    with pytest.raises(ExportError, match="holds an export of the shards"):
        export_pairs(DatasetSpec("synthetic", count=2), "coco", tmp_path / "other", progress=False)


def test_a_damaged_shard_is_named_and_nothing_is_written(shards, tmp_path):
    directory, _ = shards
    victim = directory / shard_name(1)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    out = tmp_path / "out"
    with pytest.raises(ShardFormatError, match="shard-00001.h5"):
        export_pairs(directory, "coco", out, progress=False)
    result = CliRunner().invoke(main, ["export", str(directory), "--to", "coco", "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "shard-00001.h5" in lines[0]
    assert not out.exists()
