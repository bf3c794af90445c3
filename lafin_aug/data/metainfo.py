"""Keypoint metadata of our landmark schemas for other tools: names, skeleton, flip pairs, OKS sigmas.

Everything here is derived from the schema tables in :mod:`lafin_aug.landmarks`; nothing is
declared twice. ``mmpose_metainfo(points)`` is the ``dataset_info`` dict of mmpose's
``configs/_base_/datasets/300w.py`` / ``wflw.py`` format (``keypoint_info`` with each point's
``swap`` partner, ``skeleton_info``, ``joint_weights``, ``sigmas``), and ``metainfo_text`` is that
dict as a Python file, which mmpose reads through ``metainfo=dict(from_file=...)`` (mmengine's
``Config.fromfile``) and plain Python through ``runpy.run_path(path)["dataset_info"]``.

OKS sigmas (``oks_sigmas``)
---------------------------
COCOeval: pycocotools ``evaluation.params.kpt_oks_sigmas = oks_sigmas(68)``; xtcocotools
``COCOeval(gt, results, "keypoints", sigmas=oks_sigmas(68))`` (it ignores ``params``).

68 points: COCO-WholeBody's published face sigmas (Jin et al., "Whole-Body Human Pose Estimation
in the Wild", ECCV 2020; ``evaluation/myeval_wholebody.py`` of jin-s13/COCO-WholeBody, the values
mmpose's ``coco_wholebody_face.py`` carries). COCO-WholeBody's 68 face points follow the iBUG
markup and order, as our 68-point schema does.

98 points: WFLW has no published sigma set. The 68 WFLW points that have an iBUG counterpart
(:data:`WFLW98_TO_IBUG68`, the community mapping) take that point's COCO-WholeBody sigma, so both
markups score a shared point alike. Each of the other 30 (odd jaw points, lower brow edges, the
eyelid midpoints, the pupils) takes the mean sigma of its mapped neighbours along the schema's
boundary polylines, or where it has none (the inner lower-brow points, the pupils) the mean of
the mapped points of its schema group: a point between two annotated ones is about as hard to
place as they are.
"""
from __future__ import annotations

import pprint
from pathlib import Path
from typing import Any

import numpy as np

from lafin_aug.io import write_bytes
from lafin_aug.landmarks import WFLW98_TO_IBUG68, schema_for

#: The point counts with a metainfo: iBUG's 68 and WFLW's 98.
METAINFO_POINTS = (68, 98)

#: COCO-WholeBody's OKS sigmas of its 68 face points (iBUG order); source in the module docstring.
COCO_WHOLEBODY_FACE_SIGMAS: tuple[float, ...] = (
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023,
    0.029, 0.032, 0.037, 0.038, 0.043, 0.041, 0.045, 0.013, 0.012, 0.011,
    0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015, 0.009, 0.007, 0.007,
    0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009, 0.011,
    0.009, 0.007, 0.013, 0.008, 0.011, 0.012, 0.010, 0.034, 0.008, 0.008,
    0.009, 0.008, 0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007,
    0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.010, 0.008,
)


def keypoint_names(points: int) -> list[str]:
    """One name a point: ``<group>_<position in group>`` from the schema (``jaw_0``, ``brow_left_0``, ...),
    ``kp_<index>`` for a point count without a schema."""
    names = [f"kp_{i}" for i in range(points)]
    try:
        schema = schema_for(points)
    except ValueError:
        return names
    for group, indices in schema.groups.items():
        for position, index in enumerate(indices):
            names[index] = f"{group}_{position}"
    return names


def skeleton(points: int) -> list[tuple[int, int]]:
    """The 0-based links of the schema's boundary polylines, each once, in polyline order (none without a schema)."""
    try:
        schema = schema_for(points)
    except ValueError:
        return []
    links: dict[frozenset[int], tuple[int, int]] = {}
    for line in schema.boundaries.values():
        for a, b in zip(line, line[1:]):
            links.setdefault(frozenset((a, b)), (a, b))
    return list(links.values())


def oks_sigmas(points: int) -> np.ndarray:
    """The float64 [P] OKS sigmas of a 68- or 98-point schema (sources in the module docstring)."""
    if points not in METAINFO_POINTS:
        raise ValueError(f"no OKS sigmas for {points} points (known: {', '.join(map(str, METAINFO_POINTS))})")
    schema = schema_for(points)
    if points == 68:
        return np.array(COCO_WHOLEBODY_FACE_SIGMAS)
    sigmas = np.full(points, np.nan)
    sigmas[list(WFLW98_TO_IBUG68)] = COCO_WHOLEBODY_FACE_SIGMAS
    mapped = ~np.isnan(sigmas)
    neighbours: dict[int, set[int]] = {}
    for a, b in skeleton(points):
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    for index in np.flatnonzero(~mapped):
        near = [n for n in neighbours.get(index, ()) if mapped[n]]
        if not near:
            group = next(g for g in schema.groups.values() if index in g)
            near = [n for n in group if mapped[n]]
        sigmas[index] = np.mean(sigmas[near])
    return sigmas


def mmpose_metainfo(points: int) -> dict[str, Any]:
    """mmpose's ``dataset_info`` for a 68- or 98-point schema: names, swap partners, skeleton, weights, sigmas."""
    sigmas = oks_sigmas(points)
    schema = schema_for(points)
    names = keypoint_names(points)
    partner = schema.flip_permutation
    keypoint_info = {i: {"name": names[i], "id": i, "color": [255, 0, 0], "type": "",
                         "swap": "" if partner[i] == i else names[partner[i]]} for i in range(points)}
    skeleton_info = {k: {"link": (names[a], names[b]), "id": k, "color": [0, 255, 0]}
                     for k, (a, b) in enumerate(skeleton(points))}
    return {"dataset_name": f"lafin_aug_{schema.name}", "keypoint_info": keypoint_info,
            "skeleton_info": skeleton_info, "joint_weights": [1.0] * points,
            "sigmas": [round(float(s), 6) for s in sigmas]}


def metainfo_text(points: int) -> str:
    """mmpose's metainfo of a 68- or 98-point schema as a Python file defining ``dataset_info``."""
    header = (f"# mmpose metainfo of lafin-aug's {schema_for(points).name} landmarks, written by lafin-aug.\n"
              "# Use: metainfo=dict(from_file='<this file>'); sigmas: see lafin_aug/data/metainfo.py.\n")
    return header + "dataset_info = " + pprint.pformat(mmpose_metainfo(points), sort_dicts=False, width=110) + "\n"


def write_metainfo(path: str | Path, points: int) -> None:
    """Write :func:`metainfo_text` of a 68- or 98-point schema to `path`, atomically."""
    write_bytes(path, metainfo_text(points).encode())
