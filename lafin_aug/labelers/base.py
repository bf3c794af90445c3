"""What every face finder and landmark labeler shares: a detection, the two registries, weights lookup.

A face detector maps an RGB image to :class:`Detection` boxes; a labeler maps an image and boxes
to 68 iBUG landmarks each, float32 [68,2] in the image's pixel-index coordinates (0-based). Each
backend registers a factory ``(options: BackendOptions) -> object`` under its name, so
``--detector`` and ``--labeler`` are looked up in :data:`FACE_DETECTORS` and :data:`LABELERS`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from lafin_aug.registry import Registry


class LabelError(ValueError):
    """A labelling that cannot run: missing weights or packages, an output folder of something else."""


@dataclass(frozen=True)
class Detection:
    """A face box (x0, y0, x1, y1) in source pixel coordinates and the detector's confidence."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def side(self) -> float:
        """The shorter side of the box in pixels."""
        x0, y0, x1, y1 = self.box
        return min(x1 - x0, y1 - y0)


class FaceDetector(Protocol):
    """Finds faces in a uint8 HxWx3 RGB image."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


class Labeler(Protocol):
    """Predicts 68 landmarks per face box."""

    points: int

    def landmarks(self, image: np.ndarray, boxes: Sequence[tuple[float, float, float, float]]) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class BackendOptions:
    """What a backend factory may need: device, weight files given on the command line, smallest face."""

    device: torch.device
    fan_weights: str | None = None
    detector_weights: str | None = None
    min_face: int = 40
    min_score: float | None = None

    def floor(self, default: float) -> float:
        """A detector's confidence floor: its own default, lowered to --min-score when that is lower."""
        return default if self.min_score is None else min(default, self.min_score)


#: --detector names -> factory(BackendOptions) -> FaceDetector
FACE_DETECTORS: Registry = Registry("face detector")
#: --labeler names -> factory(BackendOptions) -> Labeler
LABELERS: Registry = Registry("labeler")
#: the detector a labeler uses when --detector is not given
DEFAULT_DETECTOR = {"fan": "sfd", "dlib": "dlib"}


def hub_checkpoints() -> Path:
    """torch's hub checkpoint folder, `$TORCH_HOME/hub/checkpoints/` (read at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


@dataclass(frozen=True)
class WeightsFile:
    """A weight file a backend needs: its face-alignment file name, what it is, and the option that overrides it."""

    name: str
    what: str
    option: str

    def find(self, given: str | None) -> Path | None:
        """The file to load: `given` (which must exist) or the one in the hub cache; None when absent."""
        if given is not None:
            path = Path(given).expanduser()
            if not path.is_file():
                raise LabelError(f"{self.what} weights {path} ({self.option}) not found")
            return path
        cached = hub_checkpoints() / self.name
        return cached if cached.is_file() else None


def require_weights(needed: Sequence[tuple[WeightsFile, str | None]]) -> list[Path]:
    """The paths of every needed file; one LabelError naming all absent files and where to put them."""
    found = [spec.find(given) for spec, given in needed]
    missing = [spec for (spec, _), path in zip(needed, found) if path is None]
    if missing:
        names = " and ".join(f"{spec.name} ({spec.what}; or {spec.option} PATH)" for spec in missing)
        raise LabelError(f"weights not found: put {names} in {hub_checkpoints()} ($TORCH_HOME/hub/checkpoints/); "
                         "nothing is downloaded here (or use --labeler dlib, pip install 'lafin-aug[dlib]')")
    return [path for path in found if path is not None]
