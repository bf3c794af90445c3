"""LaFIn's configs: the generator's architecture and the family's training run."""
from __future__ import annotations

from dataclasses import dataclass

from lafin_aug.config import Config
from lafin_aug.inpainters.family import InpainterTrainConfig


@dataclass(frozen=True)
class LafinConfig(Config):
    """Everything needed to rebuild a LafinGenerator (stored in every checkpoint header)."""

    width: int = 64  # channels of the full-resolution features; 1/2 scale has 2x, 1/4 scale 4x
    blocks: int = 7  # residual blocks at 1/4 scale
    points: int = 68  # landmark count the landmark map is drawn from
    mask_channel: bool = True  # input channels: RGB + landmark map (+ mask)
    landmark_radius: float = 1.0  # disc radius of the landmark map, pixels (see conditioning.py)
    max_attention_keys: int = 1024  # key grid bound of the attention layer (see attention.py)

    @property
    def in_channels(self) -> int:
        return 5 if self.mask_channel else 4


@dataclass(frozen=True)
class LafinTrainConfig(InpainterTrainConfig):
    """A LaFIn training run: G_P against the PatchGAN discriminator (paper Eq. 2-7).

    width/blocks size G_P (paper: 64, 7); lr_g/lr_d/betas: Adam.
    """

    width: int = 64
    blocks: int = 7
    lr_g: float = 1e-4
    lr_d: float = 1e-5
    betas: tuple[float, float] = (0.0, 0.9)

    def model_config(self, points: int) -> LafinConfig:
        """The G_P architecture this run trains."""
        return LafinConfig(width=self.width, blocks=self.blocks, points=points)
