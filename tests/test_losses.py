"""Loss terms on hand-made cases, VGG-19 loading, the random-weights fallback."""
from __future__ import annotations

import logging

import pytest
import torch

from lafin_aug.losses import (
    InpaintLoss,
    InpaintLossWeights,
    gram,
    landmark_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    perceptual_loss,
    pixel_l1,
    style_loss,
    total_variation,
)
from lafin_aug.models.vgg import FEATURE_LAYERS, VGG19_LAYOUT, VGG19Features, load_vgg19

# --- loss terms ------------------------------------------------------------------------------------

def test_pixel_l1_is_normalised_by_hole_size():
    target = torch.zeros(1, 3, 4, 4)
    generated = torch.full_like(target, 0.5)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1  # 4 hole pixels, 12 known
    hole, valid = pixel_l1(generated, target, mask)
    assert hole.item() == pytest.approx(0.5 * 4 * 3 / (3 * 4))  # 0.5: mean error inside the hole
    assert valid.item() == pytest.approx(0.5 * 12 * 3 / (3 * 4))  # 1.5: same normaliser
    hole_only = torch.where(mask > 0, generated, target)
    assert pixel_l1(hole_only, target, mask)[1].item() == 0


def test_pixel_l1_without_holes_is_finite():
    hole, valid = pixel_l1(torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2))
    assert hole.item() == 0 and valid.item() == pytest.approx(4.0)


def test_total_variation():
    assert total_variation(torch.full((2, 3, 5, 5), 0.3)).item() == 0
    ramp = torch.arange(5.0).expand(1, 1, 4, 5)  # +1 per column, constant down the rows
    assert total_variation(ramp).item() == pytest.approx(1.0)


def test_gram_of_a_known_tensor():
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2, H=1, W=2
    expected = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / (2 * 1 * 2)
    assert torch.allclose(gram(features)[0], expected)
    assert gram(features.bfloat16()).dtype == torch.float32


def test_perceptual_and_style_of_known_features():
    a = [torch.zeros(1, 2, 1, 2), torch.ones(1, 1, 2, 2)]
    b = [torch.ones(1, 2, 1, 2), torch.ones(1, 1, 2, 2)]
    assert perceptual_loss(a, b).item() == pytest.approx(1.0)
    assert perceptual_loss(a, a).item() == 0 and style_loss(a, a).item() == 0
    assert style_loss(a, b).item() == pytest.approx(0.5)  # Gram of ones(1,2,1,2) is 2/4 everywhere


def test_lsgan_values():
    ones, zeros = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    assert lsgan_generator_loss(ones).item() == 0
    assert lsgan_generator_loss(zeros).item() == 1
    assert lsgan_generator_loss(torch.full((1, 1, 2, 2), 3.0)).item() == 4
    assert lsgan_discriminator_loss(ones, zeros).item() == 0
    assert lsgan_discriminator_loss(zeros, ones).item() == 1
    assert lsgan_discriminator_loss(ones, torch.full((1, 1, 2, 2), 2.0)).item() == 2


def test_landmark_loss_is_the_squared_norm_of_eq1():
    target = torch.zeros(2, 68, 2)
    predicted = target.clone()
    predicted[0, 5] = torch.tensor([3.0, 4.0])
    predicted[0, 7] = torch.tensor([1.0, 0.0])
    assert landmark_loss(predicted, target).item() == pytest.approx((25 + 1 + 0) / 2)


def _random_vgg() -> VGG19Features:
    torch.manual_seed(0)
    model, _ = load_vgg19("random")
    return model


@pytest.mark.filterwarnings("ignore:VGG-19")
def test_inpaint_loss_terms_and_weighted_total():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:20, 8:20] = 1
    generated = torch.rand(2, 3, 32, 32, requires_grad=True)
    composited = torch.where(mask > 0, generated, target)
    weights = InpaintLossWeights()
    terms = InpaintLoss(_random_vgg(), weights)(generated, composited, target, mask, torch.zeros(2, 1, 2, 2))
    assert set(terms) == {"pixel_hole", "pixel_valid", "pixel", "perceptual", "style", "tv", "adversarial", "total"}
    assert weights.to_dict() == {"pixel": 1.0, "perceptual": 0.1, "style": 250.0, "tv": 0.1, "adversarial": 0.01}
    expected = (terms["pixel"] + 0.1 * terms["perceptual"] + 250 * terms["style"] + 0.1 * terms["tv"]
                + 0.01 * terms["adversarial"])
    assert terms["total"].item() == pytest.approx(expected.item())
    assert terms["adversarial"].item() == 1 and terms["perceptual"] > 0 and terms["style"] > 0
    terms["total"].backward()
    assert generated.grad is not None and torch.isfinite(generated.grad).all()


@pytest.mark.filterwarnings("ignore:VGG-19")
def test_inpaint_loss_under_bf16_autocast_and_with_vgg_off():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 4:12, 4:20] = 1
    generated = torch.rand(1, 3, 32, 32, requires_grad=True)
    composited = torch.where(mask > 0, generated, target)
    loss = InpaintLoss(_random_vgg())
    reference = loss(generated, composited, target, mask, torch.ones(1, 1, 2, 2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = loss(generated.bfloat16(), composited, target, mask, torch.ones(1, 1, 2, 2).bfloat16())
    assert all(value.dtype == torch.float32 and torch.isfinite(value) for value in terms.values())
    assert terms["total"].item() == pytest.approx(reference["total"].item(), rel=0.05)
    terms["total"].backward()
    assert generated.grad is not None

    off = InpaintLoss(None)(generated, composited, target, mask, torch.ones(1, 1, 2, 2))
    assert off["perceptual"].item() == off["style"].item() == 0
    assert off["total"].item() == pytest.approx(off["pixel"].item() + 0.1 * off["tv"].item())


# --- VGG-19 loading --------------------------------------------------------------------------------

def _torchvision_vgg19_state_dict() -> dict[str, torch.Tensor]:
    """Random tensors under torchvision's vgg19 keys (features 0..34, a stand-in classifier)."""
    generator = torch.Generator().manual_seed(1)
    state, index, channels = {}, 0, 3
    for item in VGG19_LAYOUT:
        if item == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(item, channels, 3, 3, generator=generator) * 0.01
        state[f"features.{index}.bias"] = torch.randn(item, generator=generator)
        index, channels = index + 2, item
    state["classifier.0.weight"] = torch.randn(8, 4, generator=generator)  # ignored (really 4096 x 25088)
    state["classifier.6.bias"] = torch.randn(8, generator=generator)
    return state


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    state = _torchvision_vgg19_state_dict()
    path = tmp_path_factory.mktemp("hub") / "checkpoints" / "vgg19-dcbb9e9d.pth"
    path.parent.mkdir()
    torch.save(state, path)
    return path, state


def test_vgg_loads_a_torchvision_state_dict_with_weights_only(torchvision_file, monkeypatch):
    path, state = torchvision_file
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    model, source = load_vgg19(path)
    assert source == f"file:{path}"
    assert calls and all(call.get("weights_only") is True for call in calls)
    assert torch.equal(model.features[0].weight, state["features.0.weight"])
    assert torch.equal(model.features[28].bias, state["features.28.bias"])  # conv5_1, the last one built
    assert len(model.features) == FEATURE_LAYERS["relu5_1"] + 1
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_vgg_features_layers_and_shapes(torchvision_file):
    model, _ = load_vgg19(torchvision_file[0])
    with torch.no_grad():
        features = model(torch.rand(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in features] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4),
                                                      (512, 2, 2)]
    assert all((f >= 0).all() for f in features)  # post-ReLU


def test_vgg_found_in_the_hub_cache(torchvision_file, monkeypatch):
    path, _ = torchvision_file
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(path.parent.parent))
    model, source = load_vgg19(None)
    assert source == f"hub-cache:{path}"


def test_vgg_random_fallback_warns_loudly_and_is_seeded(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with caplog.at_level(logging.WARNING), pytest.warns(UserWarning, match="RANDOM"):
        model, source = load_vgg19(None)
    assert source == "random"
    assert any("RANDOM" in record.getMessage() for record in caplog.records)
    with pytest.warns(UserWarning):
        again, _ = load_vgg19("random")
    assert torch.equal(model.features[5].weight, again.features[5].weight)


def test_vgg_off_missing_and_wrong_files(tmp_path):
    assert load_vgg19("off") == (None, "off")
    with pytest.raises(FileNotFoundError):
        load_vgg19(tmp_path / "absent.pth")
    torch.save({"classifier.0.weight": torch.zeros(2, 2)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="wrong.pth: does not hold torchvision VGG-19 weights: missing keys"):
        load_vgg19(tmp_path / "wrong.pth")
