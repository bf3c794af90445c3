"""face-alignment's 2D FAN-4 labeler and its S3FD face detector, from local weight files only.

`face_alignment.FaceAlignment` fetches its weights by URL (through the torch hub cache, downloading
when the file is absent) and takes no path for the FAN. So the FAN is built here from
face-alignment's own model class (`face_alignment.models.FAN(4)`), its state dict loaded from
``--fan-weights`` or ``$TORCH_HOME/hub/checkpoints/2DFAN4-11f355bf06.pth.tar`` (face-alignment
1.5's file), and run with face-alignment's own pre- and post-processing (`crop` around the box
centre shifted up by 0.12 of its height at scale (w + h) / 195, flipped-input averaging), as
`FaceAlignment.get_landmarks_from_image` does. Heatmaps are decoded as face-alignment's
`get_preds_fromhm` does (arg-max, a quarter pixel towards the higher neighbour, -0.5, back through
the crop's transform), in numpy rather than its numba functions (which compile for ~15 s in every
process) and without its final cast to whole pixels. S3FD takes a path in face-alignment's API
(`path_to_detector`); its file is ``s3fd-619a316812.pth``.
"""
from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .base import FACE_DETECTORS, LABELERS, BackendOptions, Detection, LabelError, WeightsFile, require_weights

FAN_WEIGHTS = WeightsFile("2DFAN4-11f355bf06.pth.tar", "face-alignment's 2D FAN-4", "--fan-weights")
SFD_WEIGHTS = WeightsFile("s3fd-619a316812.pth", "face-alignment's S3FD face detector", "--detector-weights")
#: S3FD's own confidence floor in face-alignment (lower --min-score values lower it)
SFD_THRESHOLD = 0.5


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a torch file (plain, or under "state_dict", "module." prefixes removed), weights only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LabelError(f"{path}: not a readable torch state dict ({first})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LabelError(f"{path}: expected a state dict of tensors, found {type(state).__name__}")
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_fan(path: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """face-alignment's FAN-4 (`face_alignment.models.FAN(4)`) with the weights of `path`, in eval mode."""
    from face_alignment.models import FAN

    net = FAN(4)
    state = read_state_dict(Path(path))
    own = net.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{k}: file {tuple(state[k].shape)}, FAN-4 {tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        details = "; ".join(f"{label} {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
                            for label, items in (("missing", missing), ("unexpected", unexpected),
                                                 ("shape", wrong)) if items)
        raise LabelError(f"{path}: not face-alignment 2D FAN-4 weights ({details})")
    net.load_state_dict(state)
    return net.to(device).eval()


class FanLabeler:
    """68 landmarks per box from a FAN-4, with face-alignment's crop, flip averaging and heatmap decoding."""

    points = 68

    def __init__(self, net: torch.nn.Module, device: torch.device | str = "cpu", flip_input: bool = True):
        self.net, self.device, self.flip_input = net, torch.device(device), flip_input

    @classmethod
    def from_file(cls, path: str | Path, device: torch.device | str = "cpu") -> FanLabeler:
        return cls(load_fan(path, device), device)

    def _heatmaps(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.net(batch)
        return out[-1] if isinstance(out, (list, tuple)) else out

    @torch.no_grad()
    def landmarks(self, image: np.ndarray, boxes: Sequence[tuple[float, float, float, float]]) -> list[np.ndarray]:
        from face_alignment.utils import CENTER_Y_OFFSET, REFERENCE_SCALE, crop, flip

        if not boxes:
            return []
        box = np.asarray(boxes, np.float64).reshape(-1, 4)
        centres = np.stack([(box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
                            - (box[:, 3] - box[:, 1]) * CENTER_Y_OFFSET], axis=1)
        scales = (box[:, 2] - box[:, 0] + box[:, 3] - box[:, 1]) / REFERENCE_SCALE
        crops = np.stack([crop(image, c, s).transpose(2, 0, 1) for c, s in zip(centres, scales)])
        batch = torch.from_numpy(crops.astype(np.float32) / 255.0).to(self.device)
        heat = self._heatmaps(batch)
        if self.flip_input:
            heat = heat + flip(self._heatmaps(flip(batch)), is_label=True)
        points = decode_heatmaps(heat.float().cpu().numpy(), centres, scales)
        return list(points.astype(np.float32))


def decode_heatmaps(heat: np.ndarray, centres: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """[B,P,2] image coordinates of [B,P,H,W] FAN heatmaps, as face-alignment's `get_preds_fromhm`
    computes them before its int32 cast: arg-max, +-0.25 towards the higher neighbour (inner cells),
    -0.5, then the inverse of the crop transform (side 200 * scale around the centre, H cells)."""
    batch, count, height, width = heat.shape
    flat = heat.reshape(batch, count, -1).argmax(axis=-1)
    y, x = np.divmod(flat, width)
    points = np.stack([x, y], axis=-1).astype(np.float64)
    inner = (x > 0) & (x < width - 1) & (y > 0) & (y < height - 1)
    b, p = np.nonzero(inner)
    xi, yi = x[b, p], y[b, p]
    points[b, p, 0] += 0.25 * np.sign(heat[b, p, yi, xi + 1] - heat[b, p, yi, xi - 1])
    points[b, p, 1] += 0.25 * np.sign(heat[b, p, yi + 1, xi] - heat[b, p, yi - 1, xi])
    points += 1.0 - 0.5  # face-alignment's 1-based cell index, minus half a cell
    side = 200.0 * np.asarray(scales, np.float64)[:, None, None]
    return points * side / height + np.asarray(centres, np.float64)[:, None, :] - side / 2


class SfdDetector:
    """face-alignment's S3FD, loaded from a local weight file."""

    def __init__(self, path: Path, device: torch.device, threshold: float = SFD_THRESHOLD):
        from face_alignment.detection.sfd.sfd_detector import SFDDetector

        try:
            self._detector = SFDDetector(str(device), path_to_detector=str(path), filter_threshold=threshold)
        except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LabelError(f"{path}: not face-alignment S3FD weights ({first})") from None

    def detect(self, image: np.ndarray) -> list[Detection]:
        found = self._detector.detect_from_image(np.ascontiguousarray(image).copy())
        return [Detection(tuple(float(v) for v in row[:4]), float(row[4])) for row in found]


def weights_needed(labeler: str, detector: str, options: BackendOptions) -> list[tuple[WeightsFile, str | None]]:
    """The face-alignment weight files a labeler/detector pair needs, with the paths given for them."""
    return ([(FAN_WEIGHTS, options.fan_weights)] if labeler == "fan" else []) + \
           ([(SFD_WEIGHTS, options.detector_weights)] if detector == "sfd" else [])


@FACE_DETECTORS.register("sfd")
def _sfd_detector(options: BackendOptions) -> SfdDetector:
    (path,) = require_weights([(SFD_WEIGHTS, options.detector_weights)])
    return SfdDetector(path, options.device, options.floor(SFD_THRESHOLD))


@LABELERS.register("fan")
def _fan_labeler(options: BackendOptions) -> FanLabeler:
    (path,) = require_weights([(FAN_WEIGHTS, options.fan_weights)])
    return FanLabeler.from_file(path, options.device)
