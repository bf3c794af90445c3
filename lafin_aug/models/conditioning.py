"""The landmark map: the one-channel image through which landmarks condition the inpainter and D.

Convention: landmarks are (x, y) in pixel-index coordinates of the S x S (or H x W) image the map
belongs to (the toolkit-wide contract). Each point is rounded to its nearest pixel (floor(v + 0.5))
and lights every pixel (i, j) with (i - y)^2 + (j - x)^2 <= radius^2 around it: radius 0 is one
pixel, 1 a 5-pixel plus, 1.5 a 3x3 square. The map is binary: 1 on a disc, 0 elsewhere; overlapping
discs stay 1. Disc pixels outside the image and non-finite points are dropped. Rendering is a
single scatter over B*P*K indices (K pixels per disc), so it is batched and costs nothing next to
the network. The map is not differentiable with respect to the landmarks.

Point counts: the map itself does not care how many points there are, but an inpainter is trained
on maps of one markup. A model whose config says 68 points must be fed iBUG-68 landmarks: callers
holding 98-point WFLW landmarks map them with `lafin_aug.landmarks.to_ibug68` first (the generator
refuses other counts).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


@lru_cache(maxsize=16)
def _disc_offsets(radius: float) -> torch.Tensor:
    """[K,2] integer (dx, dy) offsets with dx^2 + dy^2 <= radius^2."""
    reach = math.floor(radius)
    steps = torch.arange(-reach, reach + 1)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    inside = dx**2 + dy**2 <= radius**2
    return torch.stack([dx[inside], dy[inside]], dim=1)


def landmark_map(landmarks: torch.Tensor | np.ndarray, size: int | tuple[int, int],
                 radius: float = 1.0) -> torch.Tensor:
    """Render [B,P,2] (tensor) or [P,2] (numpy or tensor) pixel-index landmarks as a [B,1,H,W] float map.

    `size` is S (square) or (H, W). The map is float32 in {0, 1}, on the landmarks' device
    (CPU for numpy input).
    """
    points = torch.as_tensor(landmarks, dtype=torch.float32)
    if points.dim() == 2:
        points = points.unsqueeze(0)
    if points.dim() != 3 or points.shape[-1] != 2:
        raise ValueError(f"landmarks must be [B,P,2] or [P,2], got shape {tuple(points.shape)}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    height, width = (size, size) if isinstance(size, int) else size
    batch = points.shape[0]

    offsets = _disc_offsets(float(radius)).to(points.device)
    centres = torch.floor(points.nan_to_num(nan=-1e9, posinf=-1e9, neginf=-1e9) + 0.5)
    pixels = centres.unsqueeze(2) + offsets  # [B,P,K,2] as (x, y)
    x, y = pixels[..., 0], pixels[..., 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    # pixels outside the image are sent to one spare slot past the end, dropped below
    index = torch.where(inside, y * width + x, torch.full_like(x, height * width)).long()

    flat = torch.zeros(batch, height * width + 1, device=points.device)
    flat.scatter_(1, index.reshape(batch, -1), 1.0)
    return flat[:, :-1].reshape(batch, 1, height, width)
