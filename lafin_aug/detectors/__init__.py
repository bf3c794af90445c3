"""Landmark detectors behind one interface (see `base.py`): LaFIn's G_L ("lafin-gl") and LAB ("lab").

Importing this package registers the built-in detectors; their trainer is `detectors.trainer`.
"""
from lafin_aug.detectors import lab, lafin_gl  # noqa: F401,E402 - register the built-in detectors
from lafin_aug.detectors.base import (
                                      DETECTORS,
                                      build_detector,
                                      detector_config,
                                      load_detector,
                                      predict_images,
                                      register_detector,
)

__all__ = ["DETECTORS", "build_detector", "detector_config", "load_detector", "predict_images", "register_detector"]
