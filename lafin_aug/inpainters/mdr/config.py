"""MDRNets' configs: the generator's architecture and the family's three-stage training run.

Sizes the paper leaves open (its supplementary material is not available) are ours; the defaults
are CPU-sized, `--model` options make them paper-sized on a GPU (e.g. width=64 style_channels=128).
"""
from __future__ import annotations

from dataclasses import dataclass

from lafin_aug.config import Config
from lafin_aug.inpainters.family import InpainterTrainConfig


@dataclass(frozen=True)
class MDRConfig(Config):
    """Everything needed to rebuild an MDRGenerator (stored in every checkpoint header).

    semantic_map: where the face-parsing map comes from; "landmarks" (drawn from the ground-truth
    landmarks by `lafin_aug.data.parsing`, the only source here: no parser weights exist offline).
    """

    points: int = 68
    coarse_width: int = 32  # partial-conv U-Net base channels
    coarse_depth: int = 5  # its stride-2 levels (4 leaves holes wider than ~60 px partly unreached)
    width: int = 32  # refinement network base channels (1/4 scale has 4x)
    blocks: int = 4  # gated residual blocks at 1/4 scale (dilations 1, 2, 4, 1, ...)
    spade_blocks: int = 2  # SPADE residual blocks at 1/4 scale (one more at 1/2 scale)
    style_channels: int = 64  # c: dimension of the semantic latent vectors and memory slots
    slots: int = 8  # m: memory slots per semantic class
    decay: float = 0.9  # a of Eq. 3
    patch: int = 2  # masked correlation mining patch side at 1/4 scale
    semantic_map: str = "landmarks"

    def __post_init__(self) -> None:
        if self.semantic_map != "landmarks":
            raise ValueError(f"MDRConfig.semantic_map {self.semantic_map!r}: only 'landmarks' is available "
                             f"(no face-parser weights can be had offline)")


@dataclass(frozen=True)
class MDRTrainConfig(InpainterTrainConfig):
    """An MDRNets run: three stages in one run directory, resumable at any step.

    steps is the whole run: the first `recon_steps` train the reconstruction encoder-decoder whose
    encoder gives InCo²'s features, the next `coarse_steps` the partial-conv coarse network (then
    frozen), the rest the style encoder, memory, MREM and refinement network against a PatchGAN.
    Adam (0.9, 0.99), lr 2e-4 and batch 8 as in the paper (Sec. 4). Loss weights: `weights` as
    LaFIn's Eq. 7 (pixel 1, perceptual 0.1, style 250, TV 0.1, adversarial 0.01) plus `inco2`;
    the semantic loss is off (no face parser to apply to the output).
    """

    batch: int = 8
    width: int = 32
    coarse_width: int = 32
    coarse_depth: int = 5
    blocks: int = 4
    spade_blocks: int = 2
    style_channels: int = 64
    slots: int = 8
    decay: float = 0.9
    patch: int = 2
    recon_width: int = 32
    recon_steps: int = 200
    coarse_steps: int = 300
    lr: float = 2e-4
    lr_d: float = 2e-5
    betas: tuple[float, float] = (0.9, 0.99)
    inco2: float = 1.0

    def __post_init__(self) -> None:
        if self.recon_steps < 0 or self.coarse_steps < 0 or self.recon_steps + self.coarse_steps >= self.steps:
            raise ValueError(f"MDRTrainConfig: recon_steps ({self.recon_steps}) + coarse_steps ({self.coarse_steps}) "
                             f"must leave refinement steps within steps ({self.steps})")

    def model_config(self, points: int) -> MDRConfig:
        """The generator architecture this run trains."""
        return MDRConfig(points=points, coarse_width=self.coarse_width, coarse_depth=self.coarse_depth,
                         width=self.width, blocks=self.blocks, spade_blocks=self.spade_blocks,
                         style_channels=self.style_channels, slots=self.slots, decay=self.decay, patch=self.patch)

    def stage(self, step: int) -> str:
        """The stage that trains at `step` (0-based): reconstruction, coarse or refine."""
        if step < self.recon_steps:
            return "reconstruction"
        return "coarse" if step < self.recon_steps + self.coarse_steps else "refine"
