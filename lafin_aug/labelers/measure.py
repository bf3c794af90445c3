"""How close a labelling comes to human annotations of the same images: faces found, missed, NME.

Truth faces are matched to labelled images by file content (sha256), so the annotated copies may
live anywhere. Within an image, a truth face matches the detection whose box holds its landmark
centroid, nearest box centre first, one to one. A match to a kept face is *found* (and scored),
to a rejected detection *rejected* (by reason); no detection at all is *missed*. Kept faces in
annotated images that match no truth face are counted as *extra* (they may be unannotated faces).
NME is `lafin_aug.metrics.nme_per_face`: mean point error over the ground truth's outer-eye-corner
distance. 98-point (WFLW) truth is compared on its 68-point subset (`WFLW98_TO_IBUG68`), an
approximate correspondence on the jaw and brows.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lafin_aug.data.base import FaceReader
from lafin_aug.data.crop import apply_affine, invert_affine
from lafin_aug.data.pts import read_pts
from lafin_aug.io import sha256_file
from lafin_aug.landmarks import to_ibug68
from lafin_aug.metrics import nme_per_face

from .engine import CSV_NAME, Row, read_label_csv


@dataclass
class TruthReport:
    """The comparison of one annotated set with a labelling."""

    name: str
    faces: int = 0
    found: int = 0
    missed: int = 0
    rejected: Counter = field(default_factory=Counter)
    extra: int = 0
    not_labelled: int = 0
    nme: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        rejected = sum(self.rejected.values())
        why = f" ({', '.join(f'{k} {v}' for k, v in self.rejected.most_common())})" if rejected else ""
        scored = (f"NME mean {np.mean(self.nme):.4f}, median {np.median(self.nme):.4f}, max {np.max(self.nme):.4f}"
                  if self.nme else "no NME (nothing found)")
        absent = f", {self.not_labelled} faces in images not labelled" if self.not_labelled else ""
        return (f"{self.name}: n={self.faces} annotated faces, found {self.found}, detected but rejected "
                f"{rejected}{why}, missed {self.missed}, extra detections {self.extra}{absent}; {scored}")


def combine(name: str, reports: list[TruthReport]) -> TruthReport:
    """One report adding up several (e.g. all the annotated sets of a measurement)."""
    total = TruthReport(name)
    for report in reports:
        for key in ("faces", "found", "missed", "extra", "not_labelled"):
            setattr(total, key, getattr(total, key) + getattr(report, key))
        total.rejected.update(report.rejected)
        total.nme.extend(report.nme)
    return total


def _source_points(out: Path, row: Row) -> np.ndarray:
    """The landmarks of a kept row in its source image's coordinates."""
    affine = np.array([float(v) for v in row["affine"].split()]).reshape(2, 3)
    return apply_affine(read_pts(out / Path(row["file"]).with_suffix(".pts"), 68), invert_affine(affine))


def _match(centroids: np.ndarray, rows: list[Row]) -> dict[int, Row]:
    """Truth index -> detection row: box holds the centroid, nearest box centre first, one to one."""
    boxes = [(i, np.array([float(r[k]) for k in ("x0", "y0", "x1", "y1")])) for i, r in enumerate(rows)]
    pairs = sorted((float(np.linalg.norm(c - (b[:2] + b[2:]) / 2)), t, i) for t, c in enumerate(centroids)
                   for i, b in boxes if b[0] <= c[0] <= b[2] and b[1] <= c[1] <= b[3])
    matched: dict[int, Row] = {}
    used: set[int] = set()
    for _, truth, index in pairs:
        if truth not in matched and index not in used:
            matched[truth] = rows[index]
            used.add(index)
    return matched


def measure_labels(out: str | Path, truths: list[tuple[str, FaceReader]]) -> list[TruthReport]:
    """One report per (name, reader) of annotated faces, against the labelling in `out`."""
    out = Path(out)
    by_sha: dict[str, list[Row]] = {}
    for rows in read_label_csv(out / CSV_NAME).values():
        if rows[0].get("sha256"):
            by_sha.setdefault(rows[0]["sha256"], []).extend(r for r in rows if r["status"] in ("kept", "rejected"))
    reports = []
    for name, reader in truths:
        report = TruthReport(name)
        per_image: dict[Path, list[np.ndarray]] = {}
        for record in reader.records:
            assert record.image_path is not None
            per_image.setdefault(record.image_path, []).append(to_ibug68(record.landmarks))
        for image_path, faces in per_image.items():
            report.faces += len(faces)
            sha = sha256_file(image_path)
            if sha not in by_sha:
                report.not_labelled += len(faces)
                continue
            rows = by_sha[sha]
            matched = _match(np.array([face.mean(axis=0) for face in faces]), rows)
            for truth, face in enumerate(faces):
                row = matched.get(truth)
                if row is None:
                    report.missed += 1
                elif row["status"] == "rejected":
                    report.rejected[row["reason"]] += 1
                else:
                    report.found += 1
                    report.nme.append(float(nme_per_face(_source_points(out, row)[None], face[None])[0]))
            report.extra += sum(r["status"] == "kept" for r in rows) - sum(r["status"] == "kept"
                                                                             for r in matched.values())
        reports.append(report)
    return reports
