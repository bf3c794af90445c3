"""A new markup is one schema plus one reader: a toy 29-point (COFW-sized) set defined in this file only.

Nothing under lafin_aug/ knows "toy29": the schema and the reader register themselves here, and
stats, crops, flips (of faces and of masked batches) and the NME normaliser follow the schema.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from lafin_aug.cli.main import main
from lafin_aug.data import READERS, open_dataset
from lafin_aug.data.base import DatasetError, FaceReader, Record, parse_points, resolve_inside
from lafin_aug.data.crop import flip_face
from lafin_aug.data.crops import crop_dataset, masked_batch
from lafin_aug.data.masks import MaskConfig
from lafin_aug.landmarks import SCHEMAS, LandmarkSchema, flip_landmarks, register_schema, schema_for, to_ibug68
from lafin_aug.metrics import landmark_scores, nme_per_face

#: 14 image-left points (0-13), a middle one (14), their mirrors (15-28, point 28 - i mirrors i)
TOY = LandmarkSchema("toy29", 29, tuple((i, 28 - i) for i in range(14)), eye_corners=(4, 24),
                     groups={"left": tuple(range(14)), "middle": (14,), "right": tuple(range(15, 29))},
                     boundaries={"outline": tuple(range(29))}, names=tuple(f"p{i}" for i in range(29)))
SIZE = 64


class ToyReader(FaceReader):
    """`<split>.txt` under root: one line per face, the image name then 29 x y pairs."""

    kind = "toy29"
    splits = ("train", "test")
    test_splits = ("test",)
    schema_name = "toy29"

    def _scan(self) -> Iterator[Record | DatasetError]:
        assert self.root is not None
        source = self.root / f"{self.split}.txt"
        for number, text in enumerate(source.read_text().splitlines(), 1):
            name, *values = text.split()
            try:
                yield Record(resolve_inside(self.root, name, source, number),
                             parse_points(values, self.points, source, number), {}, str(source), number)
            except DatasetError as error:
                yield error


@pytest.fixture
def toy():
    register_schema(TOY)
    READERS.add(ToyReader.kind, ToyReader)
    yield
    READERS.remove(ToyReader.kind)
    SCHEMAS.remove(TOY.name)


def symmetric_face(shift: float) -> np.ndarray:
    """29 points on a curve mirror-symmetric about x = (SIZE - 1) / 2 (point 28 - i mirrors i)."""
    t = np.linspace(-1.0, 1.0, 29)
    return np.stack([(SIZE - 1) / 2 + 20 * t, 30 + 12 * t ** 2 + shift], axis=1).astype(np.float32)


def make_toy_set(root: Path) -> Path:
    """Two good faces and one with 28 points in train.txt."""
    root.mkdir()
    lines = []
    for k, shift in enumerate((0.0, 5.0)):
        cv2.imwrite(str(root / f"{k}.png"), np.full((SIZE, SIZE, 3), 40 * (k + 1), np.uint8))
        lines.append(f"{k}.png " + " ".join(f"{v:.3f}" for v in symmetric_face(shift).reshape(-1)))
    lines.append("0.png " + " ".join(["10 10"] * 28))
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    return root


def test_stats_through_the_toy_reader(toy, tmp_path):
    root = make_toy_set(tmp_path / "toy")
    reader = open_dataset("toy29", root)
    assert (reader.points, reader.schema, len(reader)) == (29, TOY, 2)
    assert [(e.source, e.line, e.reason) for e in reader.skipped.errors] == [(str(root / "train.txt"), 3,
                                                                              "point_count")]
    result = CliRunner().invoke(main, ["stats", "--dataset", "toy29", "--root", str(root), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["faces"], summary["points"], summary["schema"], summary["origin"]) == (2, 29, "toy29", 0)


def test_crop_and_flip_follow_the_schema(toy, tmp_path):
    reader = open_dataset("toy29", make_toy_set(tmp_path / "toy"))
    face = reader[1]
    flipped = flip_face(face)
    # a mirror-symmetric face mirrored and re-labelled by the schema's pairs is the same face
    assert np.allclose(flipped.landmarks, face.landmarks, atol=1e-4)
    assert np.array_equal(flipped.landmarks[TOY.eye_corners[0]][0], SIZE - 1 - face.landmarks[24][0])
    bank = crop_dataset(reader, 32, progress=False)
    assert (bank.schema, bank.points, bank.landmarks.shape) == ("toy29", 29, (2, 29, 2))
    batch = masked_batch(bank, np.array([0, 1]), np.array([0, 0]), 0, MaskConfig(), flips=np.array([False, True]))
    expected = flip_landmarks(bank.landmarks[1], 32, TOY)
    assert np.allclose(batch["landmarks"][1].numpy(), expected)
    assert np.allclose(batch["landmarks"][0].numpy(), bank.landmarks[0])
    with pytest.raises(ValueError, match="toy29.*no iBUG-68 map"):
        to_ibug68(face.landmarks)


def test_nme_uses_the_schema_eye_corners(toy):
    gt = symmetric_face(0.0)[None]
    inter_ocular = np.linalg.norm(gt[0, 4] - gt[0, 24])
    pred = gt + np.array([3.0, 4.0], np.float32)  # every point 5 px off
    assert nme_per_face(pred, gt) == pytest.approx([5.0 / inter_ocular])
    assert nme_per_face(pred, gt, "toy29") == pytest.approx([5.0 / inter_ocular])
    assert landmark_scores(pred, gt, TOY).nme == pytest.approx(5.0 / inter_ocular)
    with pytest.raises(ValueError, match="ibug68.*68 points, the landmarks 29"):
        nme_per_face(pred, gt, "ibug68")


def test_a_second_schema_of_the_same_count_is_named_not_guessed(toy, tmp_path):
    other = LandmarkSchema("toy29b", 29, (), eye_corners=(0, 28))
    register_schema(other)
    try:
        with pytest.raises(ValueError, match="more than one landmark schema with 29 points"):
            schema_for(29)
        reader = open_dataset("toy29", make_toy_set(tmp_path / "toy"))
        assert reader.schema == TOY  # the reader names its schema, so nothing is ambiguous
        bank = crop_dataset(reader, 32, progress=False)
        masked_batch(bank, np.array([0]), np.array([0]), 0, MaskConfig(), flips=np.array([True]))
    finally:
        SCHEMAS.remove(other.name)


def test_a_schema_with_bad_indices_is_refused():
    with pytest.raises(ValueError, match=r"indices \[29\] outside 0..28"):
        LandmarkSchema("bad", 29, ((0, 29),), eye_corners=(0, 1))
    with pytest.raises(ValueError, match="3 names for 29 points"):
        LandmarkSchema("bad", 29, (), eye_corners=(0, 1), names=("a", "b", "c"))
