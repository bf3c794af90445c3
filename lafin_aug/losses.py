"""Losses of LaFIn (paper Eq. 1-7): landmark squared L2, pixel L1, perceptual, style, total variation, LSGAN.

Images are RGB in [0,1] (the inpainter's output range); masks are 1 in the hole. Every reduction
runs in float32, so the losses can be called inside torch.autocast(bfloat16): VGG features may
come out in bfloat16, Gram matrices and means are computed after casting to float32.

Which image each term sees (Eq. 2-7; G = raw generator output, I = target, M = mask,
C = composite M*G + (1-M)*I):
  pixel       Eq. 2  sum|G - I| / (3 * sum M): the L1 error over the *whole* raw output,
                     normalised by the hole size (N_m = number of hole elements), so the loss
                     does not shrink with small holes. Logged split into its hole part
                     (sum|M*(G-I)|) and valid part (sum|(1-M)*(G-I)|), both divided by the same
                     3 * sum M, so pixel = pixel_hole + pixel_valid. Sums run over the batch.
  perceptual  Eq. 3  sum over relu1_1..relu5_1 of mean|phi(G) - phi(I)|
  style       Eq. 4  sum over relu1_1..relu5_1 of mean|Gram(phi(C)) - Gram(phi(I))|, on the
                     composite, so only the hole's content changes the statistics
  tv          Eq. 5  mean |horizontal differences| + mean |vertical differences| of C
  adversarial Eq. 6  LSGAN generator term, mean (D(fake) - 1)^2 over the logits the trainer got
                     from D (we suggest feeding D the composite)
  total       Eq. 7  weighted sum with InpaintLossWeights (paper: 1, 0.1, 250, 0.1, 0.01)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lafin_aug.config import Config


def landmark_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 1, L_lmk = ||L_hat - L_gt||_2^2: the squared L2 norm of each face's [P,2] error (flattened to
    2P), averaged over the batch. The norm is squared, as the paper writes it (not the plain norm)."""
    return (predicted.float() - target.float()).pow(2).flatten(1).sum(1).mean()


def pixel_l1(generated: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 2 split in two: (hole, valid) = (sum|M*(G-I)|, sum|(1-M)*(G-I)|) / (channels * sum M).

    The hole size sum M is clamped to at least 1 pixel, so a batch without holes gives finite values.
    """
    error = (generated.float() - target.float()).abs()
    hole = (mask > 0.5).float()
    size = hole.sum().clamp_min(1.0) * generated.shape[1]
    return (error * hole).sum() / size, (error * (1 - hole)).sum() / size


def gram(features: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> [B,C,C] float32 Gram matrix F F^T / (C*H*W), float32 even inside autocast."""
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)
    with torch.autocast(features.device.type, enabled=False):
        return flat @ flat.transpose(1, 2) / (c * h * w)


def perceptual_loss(features: list[torch.Tensor], target_features: list[torch.Tensor]) -> torch.Tensor:
    """Eq. 3: sum over layers of the mean absolute feature difference."""
    return sum((a.float() - b.float()).abs().mean() for a, b in zip(features, target_features, strict=True))


def style_loss(features: list[torch.Tensor], target_features: list[torch.Tensor]) -> torch.Tensor:
    """Eq. 4: sum over layers of the mean absolute Gram matrix difference."""
    return sum((gram(a) - gram(b)).abs().mean() for a, b in zip(features, target_features, strict=True))


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Eq. 5: mean |x[:, :, :, 1:] - x[:, :, :, :-1]| + mean |x[:, :, 1:, :] - x[:, :, :-1, :]|."""
    image = image.float()
    return ((image[..., :, 1:] - image[..., :, :-1]).abs().mean()
            + (image[..., 1:, :] - image[..., :-1, :]).abs().mean())


def lsgan_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 6, generator side: mean (D(fake) - 1)^2."""
    return (fake_logits.float() - 1).pow(2).mean()


def lsgan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 6, discriminator side: (mean (D(real) - 1)^2 + mean D(fake)^2) / 2."""
    return ((real_logits.float() - 1).pow(2).mean() + fake_logits.float().pow(2).mean()) / 2


@dataclass(frozen=True)
class InpaintLossWeights(Config):
    """Eq. 7 weights (the paper's defaults)."""

    pixel: float = 1.0
    perceptual: float = 0.1
    style: float = 250.0
    tv: float = 0.1
    adversarial: float = 0.01


class InpaintLoss(nn.Module):
    """The generator objective. forward(...) -> dict of unweighted terms plus the weighted "total".

    `vgg` is a VGG19Features (lafin_aug.models.vgg.load_vgg19) or None ("off"), in which case
    perceptual and style are logged as 0 and do not enter the total. The VGG network and its inputs
    are put in channels_last memory format (its convolutions' fast layout).
    """

    def __init__(self, vgg: nn.Module | None, weights: InpaintLossWeights | None = None):
        super().__init__()
        self.vgg = vgg if vgg is None else vgg.to(memory_format=torch.channels_last)
        self.weights = weights or InpaintLossWeights()

    def forward(self, generated: torch.Tensor, composited: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor, d_fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """All images [B,3,H,W] in [0,1]; mask [B,1,H,W]; d_fake_logits D's raw output for the fake."""
        terms: dict[str, torch.Tensor] = {}
        terms["pixel_hole"], terms["pixel_valid"] = pixel_l1(generated, target, mask)
        terms["pixel"] = terms["pixel_hole"] + terms["pixel_valid"]
        if self.vgg is None:
            terms["perceptual"] = terms["style"] = torch.zeros((), device=generated.device)
        else:
            with torch.no_grad():
                target_features = self.vgg(target.contiguous(memory_format=torch.channels_last))
            both = self.vgg(torch.cat([generated, composited]).contiguous(memory_format=torch.channels_last))
            generated_features = [f[: len(generated)] for f in both]
            composited_features = [f[len(generated):] for f in both]
            terms["perceptual"] = perceptual_loss(generated_features, target_features)
            terms["style"] = style_loss(composited_features, target_features)
        terms["tv"] = total_variation(composited)
        terms["adversarial"] = lsgan_generator_loss(d_fake_logits)
        w = self.weights
        terms["total"] = (w.pixel * terms["pixel"] + w.perceptual * terms["perceptual"] + w.style * terms["style"]
                          + w.tv * terms["tv"] + w.adversarial * terms["adversarial"])
        return terms
