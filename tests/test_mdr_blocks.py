"""MDRNets building blocks (partial/gated conv, SPADE) and the partial-conv coarse U-Net."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lafin_aug.inpainters.mdr.blocks import SPADE, GatedConv2d, GatedResBlock, PartialConv2d, SPADEResBlock
from lafin_aug.inpainters.mdr.coarse import PartialConvUNet

# 5x5 valid map: a 3x3 hole in the top-left corner, so the windows centred on the 2x2 top-left
# cells (with zero padding) see no known pixel at all.
VALID_5X5 = torch.tensor([[0, 0, 0, 1, 1],
                          [0, 0, 0, 1, 1],
                          [0, 0, 0, 1, 1],
                          [1, 1, 1, 1, 1],
                          [1, 1, 1, 1, 1]], dtype=torch.float32).view(1, 1, 5, 5)


def _ones_pconv(in_channels: int = 1, bias: float = 0.0) -> PartialConv2d:
    conv = PartialConv2d(in_channels, 1, 3, padding=1)
    with torch.no_grad():
        conv.conv.weight.fill_(1.0)
        conv.bias.fill_(bias)
    return conv


def _reference_pconv(conv: PartialConv2d, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Liu et al.'s formula window by window (loops; for tiny inputs only)."""
    k, s, p = conv.conv.kernel_size[0], conv.conv.stride[0], conv.conv.padding[0]
    valid = valid.expand_as(x)
    xp, vp = F.pad(x * valid, (p, p, p, p)), F.pad(valid, (p, p, p, p))
    b, c, h, w = x.shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = torch.zeros(b, conv.conv.out_channels, ho, wo)
    new_valid = torch.zeros(b, 1, ho, wo)
    for i in range(ho):
        for j in range(wo):
            xs = xp[:, :, i * s:i * s + k, j * s:j * s + k]
            known = vp[:, :, i * s:i * s + k, j * s:j * s + k].sum(dim=(1, 2, 3))
            raw = torch.einsum("bchw,ochw->bo", xs, conv.conv.weight)
            scale = torch.where(known > 0, c * k * k / known.clamp(min=1), torch.zeros_like(known))
            out[:, :, i, j] = raw * scale[:, None] + conv.bias * (known > 0)[:, None]
            new_valid[:, 0, i, j] = (known > 0).float()
    return out, new_valid


def test_partial_conv_renormalises_a_constant_image_to_the_full_window_value():
    c = 2.0
    out, new_valid = _ones_pconv()(torch.full((1, 1, 5, 5), c), VALID_5X5)
    expected_valid = torch.ones(1, 1, 5, 5)
    expected_valid[..., :2, :2] = 0  # windows inside the hole (and the padding): nothing known
    assert torch.equal(new_valid, expected_valid)
    # every covered window, the border ones included, gives sum(c * valid) * 9 / known = 9c
    torch.testing.assert_close(out, 9 * c * expected_valid)
    assert out[0, 0, 2, 2] == 18.0 and out[0, 0, 4, 4] == 18.0 and out[0, 0, 0, 0] == 0.0


def test_partial_conv_bias_is_added_only_where_the_window_is_covered():
    out, new_valid = _ones_pconv(bias=0.5)(torch.full((1, 1, 5, 5), 1.0), VALID_5X5)
    torch.testing.assert_close(out, 9.5 * new_valid)


def test_partial_conv_one_window_by_hand():
    x = torch.arange(25, dtype=torch.float32).view(1, 1, 5, 5)
    out, _ = _ones_pconv()(x, VALID_5X5)
    # window at (2, 2): rows 1-3, cols 1-3; known: (1,3)=8, (2,3)=13, (3,1)=16, (3,2)=17, (3,3)=18
    assert out[0, 0, 2, 2].item() == pytest.approx((8 + 13 + 16 + 17 + 18) * 9 / 5)
    # corner window at (4, 0): rows 3-4, cols 0-1 (the rest is padding): 15, 16, 20, 21
    assert out[0, 0, 4, 0].item() == pytest.approx((15 + 16 + 20 + 21) * 9 / 4)


def test_partial_conv_matches_the_formula_with_stride_and_random_weights():
    torch.manual_seed(0)
    conv = PartialConv2d(3, 4, 3, stride=2, padding=1)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 3, 7, 7)
    valid = (torch.rand(2, 1, 7, 7) > 0.6).float()
    out, new_valid = conv(x, valid)
    ref_out, ref_valid = _reference_pconv(conv, x, valid)
    assert out.shape == (2, 4, 4, 4)
    assert torch.equal(new_valid, ref_valid)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)


def test_partial_conv_new_valid_is_any_known_in_window():
    valid = (torch.rand(1, 1, 9, 9, generator=torch.Generator().manual_seed(1)) > 0.85).float()
    _, new_valid = PartialConv2d(1, 2, 3, padding=1)(torch.randn(1, 1, 9, 9), valid)
    torch.testing.assert_close(new_valid, F.max_pool2d(valid, 3, stride=1, padding=1))


def test_partial_conv_ignores_hole_content():
    torch.manual_seed(0)
    conv = PartialConv2d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 5, 5)
    changed = torch.where(VALID_5X5 > 0, x, torch.full_like(x, 1e6))
    changed[0, 1, 0, 0] = float("nan")
    a, va = conv(x, VALID_5X5)
    b, vb = conv(changed, VALID_5X5)
    assert torch.equal(a, b) and torch.equal(va, vb)


def test_partial_conv_multi_channel_valid():
    torch.manual_seed(0)
    conv = PartialConv2d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 5, 5)
    # one map per channel: same as the broadcast map when the two channels agree...
    same = VALID_5X5.expand(-1, 2, -1, -1)
    torch.testing.assert_close(conv(x, same)[0], conv(x, VALID_5X5)[0])
    # ...and the window count spans both channels when they differ
    per_channel = torch.cat([VALID_5X5, torch.ones_like(VALID_5X5)], dim=1)
    out, new_valid = conv(x, per_channel)
    ref_out, ref_valid = _reference_pconv(conv, x, per_channel)
    assert torch.equal(new_valid, ref_valid) and new_valid.all()
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    constant, _ = _ones_pconv(2)(torch.full((1, 2, 5, 5), 1.0), per_channel)
    torch.testing.assert_close(constant, torch.full((1, 1, 5, 5), 18.0))  # 2 channels * 9 * c
    with pytest.raises(ValueError, match="valid must be"):
        conv(x, torch.ones(1, 3, 5, 5))


def test_partial_conv_under_bf16_autocast():
    torch.manual_seed(0)
    conv = PartialConv2d(8, 8, 3, padding=1)
    x = torch.randn(1, 8, 8, 8)
    valid = (torch.rand(1, 8, 8, 8) > 0.5).float()
    ref, ref_valid = conv(x, valid)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, new_valid = conv(x, valid)
    assert out.dtype == torch.bfloat16 and torch.equal(new_valid, ref_valid)
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)


def test_gated_conv_is_elu_features_times_sigmoid_gate():
    conv = GatedConv2d(2, 1, 3, padding=1)
    with torch.no_grad():
        conv.conv.weight.zero_()
        conv.conv.bias.copy_(torch.tensor([-2.0, 1.0]))  # [features, gate]
    out = conv(torch.randn(1, 2, 4, 4))
    gate = torch.sigmoid(torch.tensor(1.0)).item()
    torch.testing.assert_close(out, torch.full((1, 1, 4, 4), (torch.e ** -2 - 1) * gate))  # ELU(-2) = e^-2 - 1
    conv.activation = GatedConv2d(2, 1, 3, activation=False).activation
    torch.testing.assert_close(conv(torch.randn(1, 2, 4, 4)), torch.full((1, 1, 4, 4), -2 * gate))


def test_gated_conv_shapes_and_gradients():
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    assert GatedConv2d(4, 6, 3, stride=2, padding=1)(x).shape == (2, 6, 8, 8)
    assert GatedConv2d(4, 6, 3, padding=4, dilation=4)(x).shape == (2, 6, 16, 16)
    out = GatedConv2d(4, 6, 5, padding=2)(x)
    assert out.shape == (2, 6, 16, 16) and out.min() > -1  # ELU >= -1, gate in (0, 1)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_gated_res_block_keeps_shape_and_is_identity_without_its_last_conv():
    block = GatedResBlock(6, dilation=2)
    x = torch.randn(2, 6, 12, 12, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
    with torch.no_grad():
        block.body[1].conv.weight.zero_()
        block.body[1].conv.bias.zero_()
    torch.testing.assert_close(block(x), x)


def test_spade_without_gamma_and_beta_is_instance_norm():
    spade = SPADE(5, 3, hidden=8)
    with torch.no_grad():
        for conv in (spade.gamma, spade.beta):
            conv.weight.zero_()
            conv.bias.zero_()
    x = torch.randn(2, 5, 8, 8) * 3 + 1
    torch.testing.assert_close(spade(x, torch.randn(2, 3, 8, 8)), F.instance_norm(x))


def test_spade_resizes_cond_and_depends_on_it():
    torch.manual_seed(0)
    spade = SPADE(4, 3, hidden=8)
    x, cond = torch.randn(1, 4, 16, 16), torch.randn(1, 3, 4, 4)
    out = spade(x, cond)
    assert out.shape == x.shape
    torch.testing.assert_close(out, spade(x, cond.repeat_interleave(4, -1).repeat_interleave(4, -2)))
    assert not torch.allclose(out, spade(x, torch.randn(1, 3, 4, 4)))


def test_spade_res_block_shapes_shortcut_and_gradients():
    torch.manual_seed(0)
    block = SPADEResBlock(8, 4, cond_channels=3, hidden=8)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    cond = torch.randn(2, 3, 32, 32)
    out = block(x, cond)
    assert out.shape == (2, 4, 16, 16) and block.learned_shortcut
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
    assert not torch.allclose(out, block(x, torch.randn(2, 3, 32, 32)))

    same = SPADEResBlock(4, 4, cond_channels=3, hidden=8)
    assert not same.learned_shortcut and not hasattr(same, "shortcut_conv")
    with torch.no_grad():
        same.conv2.weight.zero_()
        same.conv2.bias.zero_()
    y = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(same(y, torch.randn(1, 3, 8, 8)), y)  # identity shortcut


def _coarse_inputs(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, size, size, generator=g)
    hole = torch.zeros(2, 1, size, size)
    hole[0, :, 10:40, 20:50] = 1
    hole[1, :, 30:60, 5:25] = 1
    return image, hole


def test_coarse_unet_shape_range_and_hole_content_ignored():
    torch.manual_seed(0)
    net = PartialConvUNet(width=8, depth=4)
    image, hole = _coarse_inputs()
    out = net(image, hole)
    assert out.shape == (2, 3, 64, 64) and out.min() >= 0 and out.max() <= 1
    leaked = torch.where(hole > 0, torch.full_like(image, float("nan")), image)
    assert torch.equal(net(leaked, hole), out)
    assert not torch.equal(net(1 - image, hole), out)  # the known pixels do matter


def test_coarse_unet_rejects_sizes_that_are_not_multiples_of_2_pow_depth():
    net = PartialConvUNet(width=4, depth=4)
    with pytest.raises(ValueError, match=r"multiples of 2\*\*depth = 16"):
        net(torch.rand(1, 3, 60, 60), torch.zeros(1, 1, 60, 60))
    with pytest.raises(ValueError, match="hole must be"):
        net(torch.rand(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))


def test_coarse_unet_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = PartialConvUNet(width=8, depth=4)
    image, hole = _coarse_inputs()
    net(image, hole).sub(image).abs().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_coarse_unet_under_bf16_autocast():
    torch.manual_seed(0)
    net = PartialConvUNet(width=8, depth=4)
    image, hole = _coarse_inputs()
    ref = net(image, hole)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(image, hole)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0)


def test_coarse_unet_reach_grows_with_depth():
    torch.manual_seed(0)
    image, hole = torch.rand(1, 3, 128, 128), torch.zeros(1, 1, 128, 128)
    hole[..., 16:112, 16:112] = 1  # 96 px across: wider than depth 4 can close
    centre = (..., slice(64, 80), slice(64, 80))  # what depth 4 leaves uncovered (off-centre: stride grid)
    assert torch.equal(PartialConvUNet(width=4, depth=4)(image, hole)[centre], torch.full((1, 3, 16, 16), 0.5))
    assert (PartialConvUNet(width=4, depth=6)(image, hole)[centre] != 0.5).all()
