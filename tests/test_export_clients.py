"""`export --to coco` as other tools read it: mmpose's face datasets and pipeline, COCOeval with our sigmas.

The client packages are the `clients` extra plus mmpose (`make test` installs them); tests that need
one skip, naming it, where it is missing or does not import.
"""
from __future__ import annotations

import copy
import importlib
import json
import runpy
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from click.testing import CliRunner
from lafin_aug.cli.main import main

from lafin_aug.data import open_dataset
from lafin_aug.data.metainfo import COCO_WHOLEBODY_FACE_SIGMAS, oks_sigmas
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.export import box_fields, export_pairs
from lafin_aug.landmarks import WFLW98_TO_IBUG68, flip_landmarks, schema_for

#: point count -> (mmpose fixture folder, its JSON, the mmpose dataset class that reads it)
FIXTURES = {68: ("300w", "test_300w.json", "Face300WDataset"), 98: ("wflw", "test_wflw.json", "WFLWDataset")}
INPUT = 256  # the network input side of the pipeline below
PADDING = 1.25  # GetBBoxCenterScale's default


def client(module: str) -> ModuleType:
    """Import a client package, or skip naming it (a missing package, or a wheel built for another numpy)."""
    try:
        return importlib.import_module(module)
    except (ImportError, ValueError) as error:
        pytest.skip(f"{module} not usable here ({type(error).__name__}: {error}); `make test` installs it "
                    "(the clients extra and mmpose, see the Makefile)")


@pytest.fixture(scope="module")
def export_of(shared_data: Path, tmp_path_factory) -> Callable[[int, str], Path]:
    """points, box -> the folder of a COCO export of that mmpose fixture (300-W for 68, WFLW for 98)."""
    done: dict[tuple[int, str], Path] = {}

    def export(points: int, box: str = "landmarks") -> Path:
        if (points, box) not in done:
            folder, name, _ = FIXTURES[points]
            out = tmp_path_factory.mktemp(f"export-{points}-{box}")
            export_pairs(DatasetSpec("coco", root=shared_data / "fixtures" / "mmpose" / folder / name), "coco",
                         out, box=box, progress=False)
            done[points, box] = out
        return done[points, box]

    return export


# ----- without client packages -----


def test_center_and_scale_follow_mmposes_convention_for_a_known_box():
    landmarks = np.array([[10, 20], [50, 100], [30, 40]], np.float32)  # box x 10..50, y 20..100
    tight = box_fields(landmarks)
    assert tight == {"bbox": [10.0, 20.0, 40.0, 80.0], "area": 3200.0, "center": [30.0, 60.0], "scale": 0.4}
    face = box_fields(landmarks, "face")
    assert face == {"bbox": [6.0, 12.0, 48.0, 96.0], "area": 4608.0, "center": [30.0, 60.0], "scale": 0.48}
    for fields in (tight, face):  # mmpose: the square of side scale * 200 centred on center (bbox_cs2xyxy)
        side = fields["scale"] * 200
        x, y, w, h = fields["bbox"]
        assert side == pytest.approx(max(w, h))
        assert np.allclose(fields["center"], [x + w / 2, y + h / 2])


def test_the_cli_writes_face_boxes_and_the_metainfo(tmp_path):
    out = tmp_path / "face"
    result = CliRunner().invoke(main, ["export", "--dataset", "synthetic", "--count", "2", "--to", "coco",
                                       "--box", "face", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for annotation, face in zip(json.loads((out / "annotations.json").read_text())["annotations"],
                                open_dataset("synthetic", count=2)):
        extent = np.ptp(face.landmarks, axis=0)
        assert annotation["scale"] * 200 == pytest.approx(1.2 * extent.max(), abs=1e-3)
        assert np.allclose(annotation["bbox"][2:], 1.2 * extent, atol=1e-3)
    assert "dataset_info" in runpy.run_path(str(out / "metainfo.py"))


def test_exported_boxes_match_mmposes_own_annotations_of_the_same_faces(export_of, shared_data):
    for points, (folder, name, _) in FIXTURES.items():
        theirs = json.loads((shared_data / "fixtures" / "mmpose" / folder / name).read_text())["annotations"]
        tight = json.loads((export_of(points) / "annotations.json").read_text())["annotations"]
        face = json.loads((export_of(points, "face") / "annotations.json").read_text())["annotations"]
        assert len(theirs) == len(tight) == len(face)
        for their, ours, our_face in zip(theirs, tight, face):
            assert np.allclose(np.reshape(ours["keypoints"], (-1, 3))[:, :2],  # ours: as float32
                               np.reshape(their["keypoints"], (-1, 3))[:, :2], atol=1e-3)
            assert ours["scale"] <= their["scale"] <= 1.025 * ours["scale"]  # theirs: rounded up, to 0.005
            assert np.allclose(ours["center"], their["center"], atol=0.5)  # theirs to 0.5 px
            if their["id"] != 40:  # WFLW annotation 40: a 120x48 bbox for a 100x111 landmark box (SOURCES.md)
                assert np.allclose(our_face["bbox"], their["bbox"], atol=1e-3)  # mmpose's: 1.2 x landmark box
            assert ours["segmentation"] == [] and ours["iscrowd"] == 0


def test_metainfo_file_holds_the_schemas_flip_pairs_and_sigmas(export_of):
    for points in FIXTURES:
        info = runpy.run_path(str(export_of(points) / "metainfo.py"))["dataset_info"]
        keypoints = info["keypoint_info"]
        names = json.loads((export_of(points) / "annotations.json").read_text())["categories"][0]["keypoints"]
        assert [keypoints[i]["name"] for i in range(points)] == names
        index = {name: i for i, name in enumerate(names)}
        swapped = [index[keypoints[i]["swap"]] if keypoints[i]["swap"] else i for i in range(points)]
        assert swapped == schema_for(points).flip_permutation.tolist()
        assert np.allclose(info["sigmas"], oks_sigmas(points), atol=1e-6) and len(info["sigmas"]) == points
        links = [link["link"] for link in info["skeleton_info"].values()]
        assert links and all(len(link) == 2 and set(link) <= set(names) for link in links)
    wflw = oks_sigmas(98)
    assert np.array_equal(wflw[list(WFLW98_TO_IBUG68)], COCO_WHOLEBODY_FACE_SIGMAS)
    assert wflw[1] == pytest.approx((wflw[0] + wflw[2]) / 2)  # a jaw point between two mapped ones
    assert 0.005 < wflw.min() and wflw.max() < 0.05


# ----- mmpose -----


def mmpose_dataset(points: int, out: Path, pipeline: list[dict]):
    """mmpose's own dataset class for `points`, configured as the README's recipe, in test mode."""
    client("xtcocotools")
    client("mmpose")
    from mmengine.registry import init_default_scope

    from mmpose import datasets
    init_default_scope("mmpose")
    dataset_class = getattr(datasets, FIXTURES[points][2])
    return dataset_class(data_root=str(out), ann_file="annotations.json", data_prefix=dict(img=""),
                         metainfo=dict(from_file=str(out / "metainfo.py")), pipeline=pipeline, test_mode=True)


def test_our_metainfo_agrees_with_mmposes_own_for_300w_wflw_and_coco_wholebody(export_of):
    client("mmpose")
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    for points, theirs in ((68, "300w.py"), (98, "wflw.py")):
        ours = parse_pose_metainfo(dict(from_file=str(export_of(points) / "metainfo.py")))
        with warnings.catch_warnings():  # mmpose warns that it found its own file under .mim
            warnings.simplefilter("ignore")
            reference = parse_pose_metainfo(dict(from_file=f"configs/_base_/datasets/{theirs}"))
        assert ours["num_keypoints"] == reference["num_keypoints"] == points
        assert ours["flip_indices"] == reference["flip_indices"]
        assert sorted(map(sorted, ours["flip_pairs"])) == sorted(map(sorted, reference["flip_pairs"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wholebody = parse_pose_metainfo(dict(from_file="configs/_base_/datasets/coco_wholebody_face.py"))
    assert np.allclose(wholebody["sigmas"], oks_sigmas(68))
    ibug = parse_pose_metainfo(dict(from_file=str(export_of(68) / "metainfo.py")))
    assert wholebody["flip_indices"] == ibug["flip_indices"]  # the same markup and order


@pytest.mark.filterwarnings("ignore:Use the existing")
@pytest.mark.parametrize("points, box", [(68, "landmarks"), (68, "face"), (98, "landmarks")])
def test_mmposes_face_dataset_and_pipeline_read_our_faces(export_of, points, box):
    out = export_of(points, box)
    ours = list(open_dataset("coco", out / "annotations.json", on_error="raise"))  # face k: annotation id k + 1
    plain = mmpose_dataset(points, out, [dict(type="LoadImage"), dict(type="PackPoseInputs")])
    assert len(plain) == len(ours)
    for sample in plain:
        instances, face = sample["data_samples"].gt_instances, ours[sample["data_samples"].id - 1]
        assert np.array_equal(sample["inputs"].permute(1, 2, 0).numpy(), face.image[..., ::-1])  # BGR
        assert np.array_equal(instances.keypoints[0], face.landmarks)
        assert np.array_equal(instances.keypoints_visible[0], np.ones(points))

    flipped = mmpose_dataset(points, out, [dict(type="LoadImage"), dict(type="RandomFlip", prob=1.0),
                                           dict(type="PackPoseInputs")])
    for sample in flipped:
        face = ours[sample["data_samples"].id - 1]
        expected = flip_landmarks(face.landmarks, face.image.shape[1])
        assert np.allclose(sample["data_samples"].gt_instances.keypoints[0], expected, atol=1e-4)

    cropped = mmpose_dataset(points, out, [dict(type="LoadImage"), dict(type="GetBBoxCenterScale"),
                                           dict(type="TopdownAffine", input_size=(INPUT, INPUT)),
                                           dict(type="PackPoseInputs", pack_transformed=True)])
    extent = INPUT / PADDING / (1.2 if box == "face" else 1.0)  # the landmarks' long side in the input
    for sample in cropped:
        assert tuple(sample["inputs"].shape) == (3, INPUT, INPUT)
        transformed = sample["data_samples"].gt_instances.transformed_keypoints[0]
        assert np.ptp(transformed, axis=0).max() == pytest.approx(extent, rel=1e-3)
        assert np.allclose((transformed.min(0) + transformed.max(0)) / 2, INPUT / 2, atol=0.01)


# ----- COCOeval -----


def evaluate(package: str, out: Path, points: int, shift: float) -> float:
    """COCO keypoint AP of the export's own keypoints, each moved by `shift` * sqrt(area) along x and y, against
    the export, with our sigmas (pycocotools reads them from params, xtcocotools from its constructor)."""
    coco_module = client(f"{package}.coco")
    eval_module = client(f"{package}.cocoeval")
    ground_truth = coco_module.COCO(str(out / "annotations.json"))
    results = []
    for annotation in copy.deepcopy(ground_truth.loadAnns(ground_truth.getAnnIds())):
        keypoints = np.reshape(annotation["keypoints"], (-1, 3)).astype(float)
        keypoints[:, :2] += shift * np.sqrt(annotation["area"])
        results.append({"image_id": annotation["image_id"], "category_id": 1, "score": 1.0,
                        "keypoints": keypoints.ravel().tolist()})
    sigmas = {"sigmas": oks_sigmas(points)} if package == "xtcocotools" else {}
    evaluation = eval_module.COCOeval(ground_truth, ground_truth.loadRes(results), "keypoints", **sigmas)
    evaluation.params.kpt_oks_sigmas = oks_sigmas(points)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return float(evaluation.stats[0])


@pytest.mark.parametrize("package", ["pycocotools", "xtcocotools"])
@pytest.mark.parametrize("points", [68, 98])
def test_cocoeval_with_our_sigmas_scores_the_export_against_itself(export_of, package, points):
    out = export_of(points)
    assert evaluate(package, out, points, 0.0) == pytest.approx(1.0)
    assert 0.0 < evaluate(package, out, points, 0.01) < 0.9  # 1% of the face size off: the sigmas are in use
