"""How well the landmark-drawn face-parsing maps (`lafin_aug.data.parsing`) keep their symmetries.

    .venv/bin/python benchmarks/parsing_agreement.py [--data ../shared/data]

On every COCO-keypoint fixture face (WFLW 98 points; 300-W, 300-VW, 300W-LP 68 points), LaFIn-cropped,
prints the share of pixels on which the map of the mirrored landmarks equals the mirrored map (left
and right classes swapped), at 128 and 256 px, and for the WFLW faces the share on which the map of
the 98 points equals the map of their 68-point subset. tests/test_parsing.py asserts lower bounds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lafin_aug.data import open_dataset
from lafin_aug.data.crop import crop_face
from lafin_aug.data.parsing import flip_labels, parsing_labels
from lafin_aug.landmarks import flip_landmarks, to_ibug68

FACE_SETS = ("wflw/test_wflw.json", "300w/test_300w.json", "300vw/anno_300vw.json", "300wlp/test_300wlp.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    faces = [face for name in FACE_SETS for face in open_dataset("coco", args.data / "fixtures" / "mmpose" / name)]
    print(f"{len(faces)} fixture faces")
    for size in (128, 256):
        points = [crop_face(face, size=size).landmarks for face in faces]
        flips = [np.mean(parsing_labels(flip_landmarks(p, size), size) == flip_labels(parsing_labels(p, size)))
                 for p in points]
        print(f"{size} px: mirrored landmarks vs mirrored map agree on {min(flips):.4f}-{max(flips):.4f} of pixels")
        subsets = [np.mean(parsing_labels(to_ibug68(p), size) == parsing_labels(p, size)) for p in points
                   if len(p) == 98]
        print(f"{size} px: 98 points vs their 68-point subset agree on {min(subsets):.4f}-{max(subsets):.4f} "
              f"({len(subsets)} WFLW faces)")


if __name__ == "__main__":
    main()
