"""The one crossing between library images (uint8 [N,H,W,3] RGB, numpy) and model tensors ([N,3,H,W] in [0,1])."""
from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [N,H,W,3] -> float32 [N,3,H,W] in [0,1] on `device`."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float [N,3,H,W] in [0,1] (clamped, rounded) -> uint8 [N,H,W,3] on the CPU."""
    return (images.float().clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).cpu().numpy()
