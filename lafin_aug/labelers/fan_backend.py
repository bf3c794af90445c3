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
process) and without its final cast to whole pixels. S3FD is built the same way from
face-alignment's `s3fd` network, its state dict loaded from ``--detector-weights`` or the hub
cache's ``s3fd-619a316812.pth``, and run as `SFDDetector.detect_from_image` runs it (detect, NMS at
0.3 overlap, score floor). Both files are plain state dicts read with weights_only=True through
`lafin_aug.checkpoint`, so a damaged or foreign file fails as one line naming it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lafin_aug.checkpoint import load_weights, read_state_dict

from .base import FACE_DETECTORS, LABELERS, BackendOptions, Detection, WeightsFile, require_weights

FAN_WEIGHTS = WeightsFile("2DFAN4-11f355bf06.pth.tar", "face-alignment's 2D FAN-4", "--fan-weights")
SFD_WEIGHTS = WeightsFile("s3fd-619a316812.pth", "face-alignment's S3FD face detector", "--detector-weights")
#: S3FD's own confidence floor in face-alignment (lower --min-score values lower it)
SFD_THRESHOLD = 0.5
#: the box overlap above which face-alignment's S3FD keeps only the higher-scoring box
SFD_NMS_OVERLAP = 0.3


def load_fan(path: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """face-alignment's FAN-4 (`face_alignment.models.FAN(4)`) with the weights of `path`, in eval mode."""
    from face_alignment.models import FAN

    net = FAN(4)
    load_weights(net, read_state_dict(path), path, FAN_WEIGHTS.what)
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
    """face-alignment's S3FD network, run as its `SFDDetector.detect_from_image` runs it."""

    def __init__(self, net: torch.nn.Module, device: torch.device | str = "cpu", threshold: float = SFD_THRESHOLD):
        self.net, self.device, self.threshold = net.to(device).eval(), torch.device(device), threshold

    @classmethod
    def from_file(cls, path: str | Path, device: torch.device | str = "cpu",
                  threshold: float = SFD_THRESHOLD) -> SfdDetector:
        from face_alignment.detection.sfd.net_s3fd import s3fd

        net = s3fd()
        load_weights(net, read_state_dict(path), path, SFD_WEIGHTS.what)
        return cls(net, device, threshold)

    def detect(self, image: np.ndarray) -> list[Detection]:
        from face_alignment.detection.sfd.bbox import nms
        from face_alignment.detection.sfd.detect import detect

        found = detect(self.net, image, device=str(self.device))[0]
        kept = found[nms(found, SFD_NMS_OVERLAP)] if len(found) else found
        return [Detection(tuple(float(v) for v in row[:4]), float(row[4])) for row in kept if row[4] > self.threshold]


def weights_needed(labeler: str, detector: str, options: BackendOptions) -> list[tuple[WeightsFile, str | None]]:
    """The face-alignment weight files a labeler/detector pair needs, with the paths given for them."""
    return ([(FAN_WEIGHTS, options.fan_weights)] if labeler == "fan" else []) + \
           ([(SFD_WEIGHTS, options.detector_weights)] if detector == "sfd" else [])


@FACE_DETECTORS.register("sfd")
def _sfd_detector(options: BackendOptions) -> SfdDetector:
    (path,) = require_weights([(SFD_WEIGHTS, options.detector_weights)])
    return SfdDetector.from_file(path, options.device, options.floor(SFD_THRESHOLD))


@LABELERS.register("fan")
def _fan_labeler(options: BackendOptions) -> FanLabeler:
    (path,) = require_weights([(FAN_WEIGHTS, options.fan_weights)])
    return FanLabeler.from_file(path, options.device)
