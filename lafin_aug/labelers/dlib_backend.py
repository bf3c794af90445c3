"""dlib's HOG face detector and its 68-point shape predictor (iBUG 300-W), offline.

The predictor file ships inside the `face_recognition_models` package; it is found on disk without
importing that package (its `__init__` imports `pkg_resources`, which recent setuptools lacks).
Install both with ``pip install 'lafin-aug[dlib]'`` (dlib-bin and face_recognition_models).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from .base import FACE_DETECTORS, LABELERS, BackendOptions, Detection, LabelError

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
INSTALL = "pip install 'lafin-aug[dlib]' (dlib-bin and face_recognition_models)"
#: dlib's HOG window is 80x80 px: faces smaller than this need the image upsampled once.
HOG_WINDOW = 80


def import_dlib() -> ModuleType:
    """The dlib module; LabelError saying how to install it when absent."""
    try:
        import dlib
    except ImportError as exc:
        raise LabelError(f"the dlib labeler needs dlib ({exc}): {INSTALL}") from None
    return dlib


def predictor_path() -> Path:
    """The 68-point predictor inside the installed face_recognition_models package (not imported)."""
    spec = importlib.util.find_spec("face_recognition_models")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "models" / PREDICTOR_FILE
        if path.is_file():
            return path
    where = f"not in {', '.join(folders)}" if folders else "face_recognition_models is not installed"
    raise LabelError(f"dlib's {PREDICTOR_FILE} not found ({where}): {INSTALL}")


def _rectangle(dlib: ModuleType, box: tuple[float, float, float, float]):
    """A dlib.rectangle of a float box (rounded to whole pixels, as dlib's own boxes are)."""
    return dlib.rectangle(*(int(round(v)) for v in box))


class DlibDetector:
    """dlib's frontal HOG detector; the image is upsampled once when faces below 80 px are wanted."""

    def __init__(self, min_face: int = 40, threshold: float = 0.0):
        dlib = import_dlib()
        self._detector = dlib.get_frontal_face_detector()
        self.upsample = 1 if min_face < HOG_WINDOW else 0
        self.threshold = threshold

    def detect(self, image: np.ndarray) -> list[Detection]:
        rects, scores, _ = self._detector.run(np.ascontiguousarray(image), self.upsample, self.threshold)
        return [Detection((float(r.left()), float(r.top()), float(r.right()), float(r.bottom())), float(s))
                for r, s in zip(rects, scores)]


class DlibLabeler:
    """dlib's 68-point shape predictor (trained on iBUG 300-W); whole-pixel landmarks."""

    points = 68

    def __init__(self, path: Path | None = None):
        self._dlib = import_dlib()
        self.path = path or predictor_path()
        self._predictor = self._dlib.shape_predictor(str(self.path))

    def landmarks(self, image: np.ndarray, boxes: Sequence[tuple[float, float, float, float]]) -> list[np.ndarray]:
        image = np.ascontiguousarray(image)
        shapes = (self._predictor(image, _rectangle(self._dlib, box)) for box in boxes)
        return [np.array([[p.x, p.y] for p in shape.parts()], np.float32) for shape in shapes]


@FACE_DETECTORS.register("dlib")
def _dlib_detector(options: BackendOptions) -> DlibDetector:
    return DlibDetector(options.min_face, options.floor(0.0))


@LABELERS.register("dlib")
def _dlib_labeler(options: BackendOptions) -> DlibLabeler:  # noqa: ARG001 - the predictor needs no options
    return DlibLabeler()
