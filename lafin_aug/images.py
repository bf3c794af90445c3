"""The crossings of library images (uint8 [N,H,W,3] RGB, numpy): to and from model tensors ([N,3,H,W] in
[0,1]), and to encoded image files."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from lafin_aug.io import write_bytes


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [N,H,W,3] -> float32 [N,3,H,W] in [0,1] on `device`."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float [N,3,H,W] in [0,1] (clamped, rounded) -> uint8 [N,H,W,3] on the CPU."""
    return (images.float().clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).cpu().numpy()


def encode_image(image: np.ndarray, suffix: str = ".png", quality: int = 95) -> bytes:
    """uint8 RGB [H,W,3] (or single-channel [H,W]) image encoded as `suffix` (".png", ".jpg" with `quality`)."""
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix == ".jpg" else []
    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(pixels), params)
    if not ok:
        raise ValueError(f"could not encode a {image.shape} image as {suffix}")
    return encoded.tobytes()


def save_image(path: str | Path, image: np.ndarray, quality: int = 95, suffix: str | None = None) -> None:
    """Write a uint8 image encoded as `suffix` (default: `path`'s: .png, .jpg), atomically; errors name the file."""
    path = Path(path)
    try:
        data = encode_image(image, suffix or path.suffix, quality)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    write_bytes(path, data)
