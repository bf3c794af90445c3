"""The MDRNets generator (paper Sec. 3, Fig. 2): coarse face -> semantic memory -> MREM -> guided refinement.

Value ranges at the model boundary:
  image      [B,3,H,W] float RGB in [0,1]; H, W multiples of 2**coarse_depth and of 4 * patch. Hole
             pixels are never seen (the coarse network zeroes them; later stages read the coarse
             face composited with the known pixels).
  mask       [B,1,H,W] 1 where content is missing; binarised at 0.5.
  conditions `Conditions` with `parsing` [B,K,H,W], the one-hot face-parsing map drawn from the
             landmarks (`lafin_aug.data.parsing`; K = 12). The landmarks themselves enter only
             through that map.
  output     [B,3,H,W] float RGB in [0,1], not composited (`lafin_aug.inpainters.composite`).

Data flow (c = style_channels, w = width; resolutions relative to the input):
  coarse     PartialConvUNet(image, hole) -> P, composited with the known pixels: P'     1
  style      3x3 conv (3 -> w), two 4x4 stride-2 convs (-> 2w -> c), 3x3 conv: F_s     1/4
  Q, V       region-wise average pooling of F_s over the K classes, Q over all pixels,
             V over non-corrupted pixels only                                  [B,K,c]
  memory     DisentangledMemory (K blocks x `slots` slots of c): during training the slots are
             updated from (Q, V) of the classes present in the known region (Eq. 1-3), then read
             with soft scores: Q_hat (Eq. 4-5)
  MREM       Q_hat and V broadcast onto the (1/4-scale) map; memory features inside the hole, real
             features outside; masked correlation mining (patch side `patch`) inside the hole  1/4
  refine     gated convs over [P', hole] down to 1/4 (w, 2w, 4w), `blocks` gated residual blocks
             (dilations 1, 2, 4, ...), `spade_blocks` SPADE residual blocks conditioned on
             [MREM features, parsing map], upsample + gated conv + SPADE block at 1/2, upsample +
             gated conv at 1, 3x3 conv, sigmoid                                           1
The parsing map also conditions the SPADE blocks directly (our choice: it is the landmark
guidance, and the paper's decoder layers are unspecified). Weights and activations are channels_last
(see lafin_aug.inpainters.lafin.generator).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lafin_aug.data.parsing import PARSING_CLASSES
from lafin_aug.inpainters.family import Conditions, composite
from lafin_aug.inpainters.mdr.blocks import GatedConv2d, GatedResBlock, SPADEResBlock
from lafin_aug.inpainters.mdr.coarse import PartialConvUNet
from lafin_aug.inpainters.mdr.config import MDRConfig
from lafin_aug.inpainters.mdr.memory import DisentangledMemory, region_pool
from lafin_aug.inpainters.mdr.mrem import MaskedCorrelationMining, broadcast, fuse
from lafin_aug.models.blocks import InstanceNorm

#: a class counts as present in a region when it covers this much of a 1/4-scale cell
PRESENT_MASS = 1e-3


class StyleEncoder(nn.Module):
    """F_s: the coarse face [B,3,H,W] in [0,1] -> style features [B,c,H/4,W/4]."""

    def __init__(self, width: int, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), InstanceNorm(2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, channels, 4, 2, 1), InstanceNorm(channels), nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image * 2 - 1)


class GuidedRefinement(nn.Module):
    """[P', hole] and the conditioning maps (1/4 scale) -> the refined face in [0,1]."""

    def __init__(self, width: int, blocks: int, spade_blocks: int, cond_channels: int):
        super().__init__()
        w = width
        self.encode = nn.Sequential(GatedConv2d(4, w, 5, padding=2), GatedConv2d(w, 2 * w, 4, 2, 1),
                                    GatedConv2d(2 * w, 4 * w, 4, 2, 1))
        self.middle = nn.Sequential(*(GatedResBlock(4 * w, dilation=2 ** (k % 3)) for k in range(blocks)))
        self.spade = nn.ModuleList(SPADEResBlock(4 * w, 4 * w, cond_channels) for _ in range(spade_blocks))
        self.up1 = GatedConv2d(4 * w, 2 * w, 3, padding=1)
        self.spade_half = SPADEResBlock(2 * w, 2 * w, cond_channels)
        self.up2 = GatedConv2d(2 * w, w, 3, padding=1)
        self.to_rgb = nn.Conv2d(w, 3, 3, padding=1)

    def forward(self, coarse: torch.Tensor, hole: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = self.middle(self.encode(torch.cat([coarse * 2 - 1, hole], 1)))
        for block in self.spade:
            x = block(x, cond)
        x = self.spade_half(self.up1(F.interpolate(x, scale_factor=2.0, mode="nearest")), cond)
        x = self.up2(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return torch.sigmoid(self.to_rgb(x))


class MDRGenerator(nn.Module):
    """(image, mask, conditions with parsing) -> refined RGB in [0,1]; see the module docstring."""

    def __init__(self, config: MDRConfig | None = None):
        super().__init__()
        self.config = config = config or MDRConfig()
        classes = len(PARSING_CLASSES)
        self.coarse = PartialConvUNet(config.coarse_width, config.coarse_depth)
        self.style = StyleEncoder(config.width, config.style_channels)
        self.memory = DisentangledMemory(classes, config.slots, config.style_channels, config.decay)
        self.mcm = MaskedCorrelationMining(config.style_channels, config.patch)
        self.refine = GuidedRefinement(config.width, config.blocks, config.spade_blocks,
                                       config.style_channels + classes)
        self.to(memory_format=torch.channels_last)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        return self.run(image, mask, conditions)["output"]

    def run(self, image: torch.Tensor, mask: torch.Tensor, conditions: Conditions, update_memory: bool = False,
            train_coarse: bool = False) -> dict[str, torch.Tensor]:
        """Every stage's result: coarse (P), composited coarse (P'), output; `update_memory` applies
        Eq. 1-3 first (training), `train_coarse` lets gradients reach the coarse network."""
        classes = self._check_inputs(image, mask, conditions).contiguous(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)
        hole = (mask > 0.5).to(image.dtype).contiguous(memory_format=torch.channels_last)
        with torch.set_grad_enabled(train_coarse and torch.is_grad_enabled()):
            coarse = self.coarse(image, hole)
        composited = composite(coarse.to(image.dtype), image, hole)
        features = self.style(composited)
        queries, _ = region_pool(features, classes)
        values, mass = region_pool(features, classes, weight=1 - hole)
        if update_memory:
            self.memory.update(queries.detach().float(), values.detach().float(), mass > PRESENT_MASS)
        small = F.adaptive_avg_pool2d(classes, features.shape[-2:]).to(features.dtype)
        fused = fuse(broadcast(self.memory.read(queries).to(features.dtype), small),
                     broadcast(values.to(features.dtype), small), hole)
        enhanced = self.mcm(fused, hole)
        output = self.refine(composited, hole, torch.cat([enhanced, small.to(enhanced.dtype)], 1))
        return {"coarse": coarse, "composited_coarse": composited, "output": output}

    def _check_inputs(self, image: torch.Tensor, mask: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        b, c, h, w = image.shape
        step = max(2 ** self.config.coarse_depth, 4 * self.config.patch)
        if c != 3 or h % step or w % step:
            raise ValueError(f"image must be [B,3,H,W] with H, W multiples of {step}, got {tuple(image.shape)}")
        if tuple(mask.shape) != (b, 1, h, w):
            raise ValueError(f"mask must be [{b},1,{h},{w}], got {tuple(mask.shape)}")
        parsing = conditions.parsing
        if parsing is None or tuple(parsing.shape) != (b, len(PARSING_CLASSES), h, w):
            raise ValueError(f"MDRNets needs conditions.parsing [{b},{len(PARSING_CLASSES)},{h},{w}] (the face-parsing "
                             f"map of lafin_aug.data.parsing), got "
                             f"{None if parsing is None else tuple(parsing.shape)}")
        return parsing.to(image.dtype)
