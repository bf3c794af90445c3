"""Label any folder of faces with 68 landmarks: face detectors, labelers, the labelling engine, measurement.

``label_images(images, out, LabelConfig(labeler="dlib"))`` writes a dataset that the ``pts`` and
``coco`` readers read as it is (see :mod:`lafin_aug.labelers.engine`); ``measure_labels`` compares
a labelling with human annotations. Backends register by name: labelers ``fan`` (face-alignment's
FAN-4, local weights) and ``dlib`` (dlib's 68-point predictor, the ``[dlib]`` extra); face
detectors ``sfd`` (face-alignment's S3FD, local weights) and ``dlib`` (HOG).
"""
from __future__ import annotations

from . import dlib_backend, fan_backend  # noqa: F401 - register the built-in backends
from .base import FACE_DETECTORS, LABELERS, BackendOptions, Detection, LabelError
from .engine import COCO_NAME, CSV_NAME, LabelConfig, LabelSummary, label_images
from .fan_backend import FanLabeler, load_fan
from .measure import TruthReport, measure_labels

__all__ = ["COCO_NAME", "CSV_NAME", "FACE_DETECTORS", "LABELERS", "BackendOptions", "Detection", "FanLabeler",
           "LabelConfig", "LabelError", "LabelSummary", "TruthReport", "label_images", "load_fan", "measure_labels"]
