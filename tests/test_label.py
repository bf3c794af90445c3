"""`lafin-aug label`: any folder of faces labelled with 68 points, read back by the pts and coco readers."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from lafin_aug.cli.main import main

from lafin_aug.data import open_dataset
from lafin_aug.labelers import (
    COCO_NAME,
    CSV_NAME,
    LABELERS,
    BackendOptions,
    LabelConfig,
    LabelError,
    label_images,
    measure_labels,
)
from lafin_aug.labelers.dlib_backend import import_dlib, predictor_path
from lafin_aug.labelers.fan_backend import FAN_WEIGHTS, SFD_WEIGHTS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FACES = ("AFW_134212_1_0.jpg", "AFW_134212_2_0.jpg")  # 300W-LP fixtures, 450x450, one face each
DLIB = LabelConfig(labeler="dlib")


@pytest.fixture(scope="session")
def dlib_ready() -> None:
    """Skip (saying why) when dlib or its 68-point predictor is not installed."""
    try:
        import_dlib()
        predictor_path()
    except LabelError as exc:
        pytest.skip(str(exc))


def make_images(folder: Path, shared_data: Path) -> Path:
    """Two fixture faces (one in a sub-folder), a zero-byte .jpg and a text file named .jpg."""
    (folder / "sub").mkdir(parents=True)
    source = shared_data / "fixtures" / "mmpose" / "300wlp"
    shutil.copy(source / FACES[0], folder / FACES[0])
    shutil.copy(source / FACES[1], folder / "sub" / FACES[1])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image\n")
    return folder


@pytest.fixture
def images(shared_data: Path, tmp_path: Path) -> Path:
    return make_images(tmp_path / "images", shared_data)


@pytest.fixture(scope="module")
def labelled(shared_data: Path, tmp_path_factory, dlib_ready) -> tuple[Path, object]:
    """The fixture folder labelled once with dlib: (out, summary)."""
    images = make_images(tmp_path_factory.mktemp("label") / "images", shared_data)
    out = images.parent / "out"
    return out, label_images(images, out, DLIB, progress=False)


def rows_of(out: Path) -> list[dict[str, str]]:
    with open(out / CSV_NAME, newline="") as handle:
        return list(csv.DictReader(handle))


def test_dlib_labels_read_back_through_the_pts_and_coco_readers(labelled):
    out, summary = labelled
    pts = open_dataset("pts", out, on_error="raise")
    coco = open_dataset("coco", out / COCO_NAME, on_error="raise")
    assert len(pts) == len(coco) == summary.kept == 2 and pts.points == coco.points == 68
    for a, b in zip(pts, coco):
        assert np.array_equal(a.landmarks, b.landmarks) and np.array_equal(a.image, b.image)
        height, width = a.image.shape[:2]
        assert a.landmarks.min() >= 0 and a.landmarks[:, 0].max() <= width - 1 and a.landmarks[:, 1].max() <= height - 1
    assert sorted(Path(f.meta["image_path"]).name for f in pts) == sorted(f"{name}.face0.jpg" for name in FACES)
    assert (out / "sub" / f"{FACES[1]}.face0.pts").is_file()


def test_label_csv_lists_every_image_with_status_and_reason(labelled):
    out, summary = labelled
    rows = {row["image"]: row for row in rows_of(out)}
    assert set(rows) == {FACES[0], f"sub/{FACES[1]}", "empty.jpg", "notes.jpg"}
    assert (rows["empty.jpg"]["status"], rows["empty.jpg"]["reason"]) == ("bad_image", "empty_file")
    assert (rows["notes.jpg"]["status"], rows["notes.jpg"]["reason"]) == ("bad_image", "not_an_image")
    face = rows[FACES[0]]
    assert face["status"] == "kept" and face["labeler"] == "dlib" and face["detector"] == "dlib"
    assert float(face["score"]) > 0 and float(face["x1"]) - float(face["x0"]) > 40
    assert sorted(summary.bad) == [("empty.jpg", "empty_file"), ("notes.jpg", "not_an_image")]
    assert "notes.jpg (not_an_image)" in str(summary) and "2 bad images" in str(summary)


def test_filters_reject_with_a_reason(images, tmp_path, dlib_ready):
    summary = label_images(images, tmp_path / "out", LabelConfig(labeler="dlib", min_face=400), progress=False)
    assert summary.kept == 0 and summary.rejected == {"small_face": 2}
    assert {row["reason"] for row in rows_of(tmp_path / "out") if row["status"] == "rejected"} == {"small_face"}
    assert len(open_dataset("coco", tmp_path / "out" / COCO_NAME)) == 0


def test_resume_skips_done_images_and_relabels_a_torn_one(images, tmp_path, dlib_ready):
    out = tmp_path / "out"
    label_images(images, out, DLIB, progress=False)
    first = out / f"{FACES[0]}.face0.pts"
    stamp = first.stat().st_mtime_ns
    with pytest.raises(LabelError, match="--resume"):
        label_images(images, out, DLIB, progress=False)
    with pytest.raises(LabelError, match="min_face 40 -> 60"):
        label_images(images, out, LabelConfig(labeler="dlib", min_face=60), resume=True, progress=False)
    # an interrupted run: the last image's row half written
    text = (out / CSV_NAME).read_text()
    (out / CSV_NAME).write_text(text[:text.rstrip("\n").rfind("\n") + 1] + "sub/AFW_134212_2_0.jp")
    ok, webp = cv2.imencode(".webp", cv2.imread(str(images / FACES[0])))
    (images / "sub" / "again.webp").write_bytes(webp.tobytes())
    summary = label_images(images, out, DLIB, resume=True, progress=False)
    assert (summary.labelled, summary.already_done, summary.kept) == (2, 3, 3)
    assert first.stat().st_mtime_ns == stamp
    assert (out / "sub" / "again.webp.face0.png").is_file()  # the pts reader lists no webp: re-encoded
    assert len({row["image"] for row in rows_of(out)}) == 5 and len(open_dataset("pts", out)) == 3


def test_crop_writes_size_square_faces(images, tmp_path, dlib_ready):
    out = tmp_path / "out"
    summary = label_images(images, out, LabelConfig(labeler="dlib", crop=True, size=64), progress=False)
    faces = list(open_dataset("pts", out, on_error="raise"))
    assert summary.kept == len(faces) == 2
    for face in faces:
        assert face.image.shape == (64, 64, 3) and face.meta["image_path"].endswith(".face0.png")
        assert face.landmarks.min() > 0 and face.landmarks.max() < 63
    coco = open_dataset("coco", out / COCO_NAME, on_error="raise")
    assert [f.image.shape for f in coco] == [(64, 64, 3)] * 2


def test_measure_against_the_fixture_annotations(labelled, shared_data):
    out, _ = labelled
    truth = open_dataset("coco", shared_data / "fixtures" / "mmpose" / "300wlp" / "test_300wlp.json")
    (report,) = measure_labels(out, [("300wlp", truth)])
    assert (report.faces, report.found, report.missed, report.extra) == (2, 2, 0, 0)
    assert all(0 < nme < 0.1 for nme in report.nme)


def test_fan_without_weights_is_one_line_naming_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "images").mkdir()
    result = CliRunner().invoke(main, ["label", "--images", str(tmp_path / "images"), "--out", str(tmp_path / "out"),
                                       "--labeler", "fan"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: weights not found")
    assert FAN_WEIGHTS.name in lines[0] and SFD_WEIGHTS.name in lines[0]
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in lines[0]
    result = CliRunner().invoke(main, ["label", "--images", str(tmp_path / "images"), "--out", str(tmp_path / "out"),
                                       "--labeler", "fan", "--fan-weights", str(tmp_path / "nowhere.pth")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "nowhere.pth (--fan-weights) not found" in result.output


@pytest.fixture(scope="module")
def random_fan(tmp_path_factory) -> Path:
    """face-alignment's own FAN-4 with random weights, saved as its state dict in a hub cache."""
    from face_alignment.models import FAN

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("torch") / "hub" / "checkpoints" / FAN_WEIGHTS.name
    path.parent.mkdir(parents=True)
    torch.save(FAN(4).state_dict(), path)
    return path


def test_random_fan_loads_from_the_hub_cache_and_gives_68_points(random_fan, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(random_fan.parents[2]))
    labeler = LABELERS.get("fan")(BackendOptions(torch.device("cpu")))
    image = np.random.default_rng(0).integers(0, 256, (200, 180, 3), dtype=np.uint8)
    points = labeler.landmarks(image, [(30.0, 40.0, 150.0, 170.0), (0.0, 0.0, 60.0, 60.0)])
    assert len(points) == 2 and all(p.shape == (68, 2) and p.dtype == np.float32 for p in points)
    assert all(np.isfinite(p).all() for p in points)


def test_fan_weights_of_another_network_are_refused(tmp_path):
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other\.pth: does not hold face-alignment's 2D FAN-4 weights: missing"):
        LABELERS.get("fan")(BackendOptions(torch.device("cpu"), fan_weights=str(tmp_path / "other.pth")))


def test_fan_labels_a_folder_through_the_command(random_fan, images, tmp_path, dlib_ready):
    (images / "sub" / FACES[1]).unlink()
    result = CliRunner().invoke(main, ["label", "--images", str(images), "--out", str(tmp_path / "out"),
                                       "--labeler", "fan", "--detector", "dlib", "--fan-weights", str(random_fan)])
    assert result.exit_code == 0, result.output
    rows = {row["image"]: row for row in rows_of(tmp_path / "out")}
    assert rows[FACES[0]]["labeler"] == "fan" and rows[FACES[0]]["status"] in ("kept", "rejected")
    kept = [row for row in rows.values() if row["status"] == "kept"]
    assert len(open_dataset("pts", tmp_path / "out")) == len(kept)
