"""Facial boundary heatmaps (LAB, Wu et al. 2018): one channel per boundary curve of a landmark schema.

Each boundary is the polyline through its landmarks, in the order the schema lists them. A heatmap
pixel's value is exp(-d² / (2σ²)), where d is its exact Euclidean distance to that polyline, in
heatmap pixels. Landmarks are pixel-index coordinates of an S×S image; heatmap pixel j covers the
same extent as image pixels, so x_heatmap = (x + 0.5) * H / S - 0.5.
"""
from __future__ import annotations

import torch

from lafin_aug.landmarks import LandmarkSchema


def to_heatmap_coords(points: torch.Tensor, image_size: int, heatmap_size: int) -> torch.Tensor:
    """Pixel-index coordinates of an image_size image mapped onto a heatmap_size grid."""
    return (points + 0.5) * (heatmap_size / image_size) - 0.5


def polyline_distance(grid: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Distance [B,G] from each of G points [G,2] to the polyline through vertices [B,V,2]."""
    start = vertices[:, :-1, None, :]  # [B,S,1,2]
    direction = vertices[:, 1:, None, :] - start
    offset = grid[None, None] - start  # [B,S,G,2]
    length2 = (direction**2).sum(-1).clamp_min(1e-12)
    t = ((offset * direction).sum(-1) / length2).clamp(0.0, 1.0)  # nearest point's position on each segment
    nearest = offset - t[..., None] * direction
    return (nearest**2).sum(-1).amin(dim=1).sqrt()


@torch.no_grad()
def boundary_heatmaps(
    landmarks: torch.Tensor, schema: LandmarkSchema, image_size: int, heatmap_size: int, sigma: float
) -> torch.Tensor:
    """Boundary heatmaps [B,13,H,H] in [0,1] of landmarks [B,P,2] (pixel-index, image_size image).

    `sigma` is in heatmap pixels. Channels follow the order of `schema.boundaries`.
    """
    if landmarks.ndim != 3 or landmarks.shape[1:] != (schema.num_points, 2):
        expected = f"[B,{schema.num_points},2] for schema {schema.name}"
        raise ValueError(f"expected landmarks {expected}, got {tuple(landmarks.shape)}")
    points = to_heatmap_coords(landmarks.float(), image_size, heatmap_size)
    axis = torch.arange(heatmap_size, dtype=points.dtype, device=points.device)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)  # [H*H,2] as (x, y)
    channels = [polyline_distance(grid, points[:, list(curve)]) for curve in schema.boundaries.values()]
    distance = torch.stack(channels, dim=1).view(len(landmarks), len(channels), heatmap_size, heatmap_size)
    return torch.exp(-(distance**2) / (2 * sigma**2))
