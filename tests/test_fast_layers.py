"""The cast-free layers and attention compute what torch's own layers computed, and bf16 stays near fp32."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lafin_aug.inpainters import FAMILIES, build_inpainter
from lafin_aug.models.attention import SelfAttention, ShortLongAttention, _tokens
from lafin_aug.models.blocks import InstanceNorm, ReflectConv2d


def test_instance_norm_equals_torch_instance_norm_and_keeps_layout_and_dtype():
    x = torch.randn(2, 6, 9, 7) * 3 + 1
    torch.testing.assert_close(InstanceNorm(6)(x), nn.InstanceNorm2d(6)(x), atol=1e-5, rtol=1e-5)
    assert InstanceNorm(6).state_dict() == {} == nn.InstanceNorm2d(6).state_dict()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = InstanceNorm(6)(x.bfloat16().contiguous(memory_format=torch.channels_last))
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dilation", [1, 2])
def test_reflect_conv_equals_a_reflect_padded_torch_conv_and_loads_its_weights(dilation):
    torch.manual_seed(0)
    reference = nn.Conv2d(4, 5, 3, padding=dilation, dilation=dilation, padding_mode="reflect")
    ours = ReflectConv2d(4, 5, 3, padding=dilation, dilation=dilation)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(ours(x), reference(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # torch's reflection pad would return fp32 here
        padded_in_bf16 = ours(x.bfloat16())
    assert padded_in_bf16.dtype == torch.bfloat16


def _sdpa_short_long(layer: ShortLongAttention, decoder, encoder, hole):
    """The earlier formulation: one two-headed scaled_dot_product_attention call (no key pooling)."""
    b, c, h, w = decoder.shape
    known = hole.flatten(1) < 0.5
    known |= ~known.any(dim=1, keepdim=True)
    mask = torch.stack([torch.ones_like(known), known], dim=1).unsqueeze(2)
    query = _tokens(layer.query(decoder)).unsqueeze(1).expand(-1, 2, -1, -1)
    key = _tokens(layer.key(decoder)).unsqueeze(1).expand(-1, 2, -1, -1)
    value = torch.stack([_tokens(decoder), _tokens(encoder)], dim=1)
    attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask).transpose(2, 3).reshape(b, 2, c, h, w)
    short = decoder + layer.gamma * attended[:, 0]
    long = hole * layer.alpha * attended[:, 1] + (1 - hole) * encoder
    return layer.fuse(torch.cat([short, long], dim=1))


def test_attention_layers_equal_the_sdpa_formulation_in_fp32():
    torch.manual_seed(0)
    layer = ShortLongAttention(16)
    with torch.no_grad():
        layer.gamma.fill_(0.7)
        layer.alpha.fill_(0.9)
    decoder, encoder = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    hole = torch.zeros(2, 1, 8, 8)
    hole[0, :, 2:6, 2:6] = 1
    hole[1] = 1  # a sample with no known key attends everywhere
    torch.testing.assert_close(layer(decoder, encoder, hole), _sdpa_short_long(layer, decoder, encoder, hole),
                               atol=1e-5, rtol=1e-5)
    gated = SelfAttention(16)
    with torch.no_grad():
        gated.gamma.fill_(0.5)
    expected = decoder + 0.5 * F.scaled_dot_product_attention(
        _tokens(gated.query(decoder)), _tokens(gated.key(decoder)), _tokens(decoder)).transpose(1, 2).reshape(2, 16, 8, 8)
    torch.testing.assert_close(gated(decoder), expected, atol=1e-5, rtol=1e-5)


#: bf16 autocast against fp32 on the [0,1] output of a randomly initialised generator (gates opened):
#: mean absolute difference below 1/255 and maximum below 0.05 (measured: LaFIn 2.9e-3 / 2.0e-2,
#: MDRNets 2.1e-4 / 3.9e-3 at width 64 / defaults, 128 px, batch 8).
BF16_MEAN, BF16_MAX = 1 / 255, 0.05


@pytest.mark.parametrize("family, options", [("lafin", {"width": 16, "blocks": 2}), ("mdr", {})])
def test_generators_run_channels_last_and_bf16_stays_near_fp32(family, options):
    torch.manual_seed(0)
    model = build_inpainter(family, options).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 0:
                parameter.fill_(0.5)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.ndim == 4)
    size = 64
    image = torch.rand(2, 3, size, size)
    mask = torch.zeros(2, 1, size, size)
    mask[..., 16:48, 16:48] = 1
    conditions = FAMILIES.get(family).conditions(torch.rand(2, model.config.points, 2) * (size - 1), size)
    with torch.no_grad():
        reference = model(image, mask, conditions)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model(image, mask, conditions).float()
    difference = (fast - reference).abs()
    assert difference.mean() < BF16_MEAN and difference.max() < BF16_MAX, (difference.mean(), difference.max())
