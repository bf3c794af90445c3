"""Model shapes (paper Tables 6-8), the inpainter interface, checkpoints, conditioning, bf16 autocast."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lafin_aug.detectors import build_detector, predict_images
from lafin_aug.detectors.lafin_gl import LandmarkNet, LandmarkNetConfig, to_normalised, to_pixel
from lafin_aug.inpainters import FAMILIES, Conditions, InpainterFamily, build_inpainter, composite, register_family
from lafin_aug.inpainters.lafin import LafinConfig, LafinGenerator, LafinTrainConfig
from lafin_aug.models.attention import ShortLongAttention, key_pool_factor
from lafin_aug.models.conditioning import landmark_map
from lafin_aug.models.discriminator import PatchDiscriminator

SMALL = {"width": 8, "blocks": 2}


def _batch(size: int, batch: int = 2, points: int = 68) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    image = torch.rand(batch, 3, size, size)
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, size // 4: size // 2, size // 8: size * 3 // 4] = 1
    landmarks = torch.rand(batch, points, 2) * (size - 1)
    return image, mask, landmarks


# --- shapes at 256, default widths (paper Tables 6-8) ---------------------------------------------

def test_generator_default_width_256_shape():
    torch.manual_seed(0)
    model = build_inpainter("lafin", {}).eval()
    image, mask, landmarks = _batch(256, batch=1)
    with torch.no_grad():
        out = model(image, mask, Conditions(landmarks))
    assert out.shape == (1, 3, 256, 256)
    assert 0 <= out.min() and out.max() <= 1


def test_discriminator_30x30_patch_map_at_256():
    torch.manual_seed(0)
    model = PatchDiscriminator()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 256, 256), torch.zeros(2, 1, 256, 256))
    assert logits.shape == (2, 1, 30, 30)


def test_discriminator_spectral_norm_on_every_conv():
    convs = [m for m in PatchDiscriminator(width=8).modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 7  # 5 trunk convs + query/key of the attention
    assert all(hasattr(conv, "parametrizations") and "weight" in conv.parametrizations for conv in convs)


@pytest.mark.parametrize("points", [68, 98])
def test_landmark_net_outputs_2p_values_at_256(points):
    torch.manual_seed(0)
    model = LandmarkNet(LandmarkNetConfig(points=points)).eval()
    assert model.fc.out_features == 2 * points
    with torch.no_grad():
        out = model(torch.rand(2, 3, 256, 256))
    assert out.shape == (2, points, 2)
    assert torch.allclose(out, torch.full_like(out, 0.5), atol=0.2)  # untrained: near the centre


def test_landmark_net_small_width_any_multiple_of_32():
    model = LandmarkNet(LandmarkNetConfig(points=68, width_mult=0.25)).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 96, 64)).shape == (1, 68, 2)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 100, 100))


def test_landmark_net_config_round_trip():
    config = LandmarkNetConfig(points=98, width_mult=0.5)
    assert LandmarkNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        LandmarkNetConfig.from_dict({"points": 68, "depth": 3})


def test_normalised_coordinates_convention():
    pixel = torch.tensor([[0.0, 0.0], [99.0, 49.0], [49.5, 24.5]])
    normalised = to_normalised(pixel, (50, 100))  # H=50, W=100
    assert torch.allclose(normalised, torch.tensor([[0.005, 0.01], [0.995, 0.99], [0.5, 0.5]]))
    assert torch.allclose(to_pixel(normalised, (50, 100)), pixel)


# --- generator behaviour at small width ------------------------------------------------------------

@pytest.mark.parametrize("size", [64, 128])
def test_generator_small_width_sizes(size):
    torch.manual_seed(0)
    model = build_inpainter("lafin", SMALL)
    image, mask, landmarks = _batch(size)
    out = model(image, mask, Conditions(landmarks))
    assert out.shape == (2, 3, size, size) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_generator_never_sees_the_hole_content():
    torch.manual_seed(0)
    model = build_inpainter("lafin", SMALL).eval()
    image, mask, landmarks = _batch(64)
    other = torch.where(mask > 0.5, torch.rand_like(image), image)
    with torch.no_grad():
        assert torch.equal(model(image, mask, Conditions(landmarks)), model(other, mask, Conditions(landmarks)))


def test_generator_rejects_wrong_point_count_with_a_hint():
    model = build_inpainter("lafin", SMALL)
    image, mask, _ = _batch(64, batch=1)
    with pytest.raises(ValueError, match="to_ibug68"):
        model(image, mask, Conditions(torch.rand(1, 98, 2)))


def test_composite_keeps_known_pixels_bit_exact():
    torch.manual_seed(0)
    image, mask, _ = _batch(32)
    generated = torch.rand_like(image).requires_grad_()
    poisoned = generated * torch.tensor(float("inf"))  # inf * 0 would give NaN with arithmetic blending
    result = composite(poisoned, image, mask)
    known = (mask < 0.5).expand_as(image)
    assert torch.equal(result[known], image[known])
    result = composite(generated, image, mask)
    assert torch.equal(result[~known], generated.detach()[~known])
    result.sum().backward()
    assert torch.equal(generated.grad, (~known).float())


def test_long_term_attention_copies_only_known_features():
    torch.manual_seed(0)
    for max_keys, size in [(1024, 16), (64, 16)]:  # full key grid, then keys pooled 2x
        layer = ShortLongAttention(8, max_keys=max_keys).eval()
        nn.init.constant_(layer.gamma, 0.7)
        nn.init.constant_(layer.alpha, 1.3)
        decoder, encoder = torch.randn(2, 8, size, size), torch.randn(2, 8, size, size)
        hole = torch.zeros(2, 1, size, size)
        hole[:, :, 3:9, 5:12] = 1
        changed = torch.where(hole > 0, torch.randn_like(encoder) * 10, encoder)
        with torch.no_grad():
            assert torch.allclose(layer(decoder, encoder, hole), layer(decoder, changed, hole), atol=1e-6)
            assert not torch.allclose(layer(decoder, encoder, hole), layer(decoder, encoder * 2, hole))


def test_key_pool_factor():
    assert key_pool_factor(32, 32, 1024) == 1  # 128 input
    assert key_pool_factor(64, 64, 1024) == 2  # 256 input
    assert key_pool_factor(128, 128, 1024) == 4
    assert key_pool_factor(33, 32, 1024) == 2


# --- config, registry, checkpoints -----------------------------------------------------------------

def test_config_round_trip_and_checkpoint_weights_only(tmp_path):
    torch.manual_seed(0)
    config = LafinConfig(width=8, blocks=1, mask_channel=False, landmark_radius=1.5, max_attention_keys=64)
    model = LafinGenerator(config)
    assert LafinConfig.from_dict(config.to_dict()) == config
    torch.save({"config": config.to_dict(), "generator": model.state_dict(), "step": 3}, tmp_path / "ckpt.pt")

    checkpoint = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    rebuilt = build_inpainter("lafin", checkpoint["config"])
    rebuilt.load_state_dict(checkpoint["generator"])
    assert rebuilt.config == config
    image, mask, landmarks = _batch(64)
    with torch.no_grad():
        conditions = Conditions(landmarks)
        assert torch.equal(model.eval()(image, mask, conditions), rebuilt.eval()(image, mask, conditions))


def test_config_and_registry_errors():
    with pytest.raises(ValueError, match=r"unknown LafinConfig keys \['widht'\] \(valid: .*width"):
        LafinConfig.from_dict({"widht": 8})
    with pytest.raises(ValueError, match="unknown inpainter family 'nope' \\(registered: lafin"):
        build_inpainter("nope", {})
    with pytest.raises(ValueError, match="already registered"):
        register_family(InpainterFamily("lafin", LafinConfig, LafinGenerator, LafinTrainConfig, "x:y"))
    assert FAMILIES.get("lafin").model is LafinGenerator


# --- landmark map ----------------------------------------------------------------------------------

def test_landmark_map_discs_and_clipping():
    points = np.array([[10.0, 20.0], [0.4, 0.0], [-5.0, 3.0], [np.nan, 4.0]], np.float32)
    single = landmark_map(points, 32, radius=0)
    assert single.shape == (1, 1, 32, 32) and single.dtype == torch.float32
    assert single[0, 0, 20, 10] == 1 and single[0, 0, 0, 0] == 1 and single.sum() == 2  # off-image & NaN dropped
    plus = landmark_map(points[:1], 32, radius=1)
    assert plus.sum() == 5 and plus[0, 0, 19, 10] == plus[0, 0, 20, 11] == 1 and plus[0, 0, 19, 11] == 0
    assert landmark_map(points[:1], 32, radius=1.5).sum() == 9
    corner = landmark_map(points[1:2], 32, radius=1)
    assert corner.sum() == 3  # the disc is clipped at the border


def test_landmark_map_batched_rectangular():
    landmarks = torch.tensor([[[1.0, 2.0]], [[6.0, 3.0]]])
    maps = landmark_map(landmarks, (4, 8), radius=0)
    assert maps.shape == (2, 1, 4, 8)
    assert maps[0, 0, 2, 1] == 1 and maps[1, 0, 3, 6] == 1 and maps.sum() == 2


# --- bf16 autocast on CPU --------------------------------------------------------------------------

def test_bf16_autocast_forward_on_cpu():
    torch.manual_seed(0)
    generator, discriminator = build_inpainter("lafin", SMALL), PatchDiscriminator(width=8)
    landmark_net = LandmarkNet(LandmarkNetConfig(width_mult=0.25))
    image, mask, landmarks = _batch(64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = generator(image, mask, Conditions(landmarks))
        logits = discriminator(composite(out, image, mask), landmark_map(landmarks, 64))
        predicted = landmark_net(image)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 3, 64, 64)
    for tensor in (out, logits, predicted):
        assert torch.isfinite(tensor.float()).all()


class _PointAtCentre(torch.nn.Module):
    """A stand-in detector for 32-px crops that always answers the pixel centre (15.5, 15.5)."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"size": 32})()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        assert image.shape[-2:] == (32, 32), image.shape
        return torch.full((len(image), 68, 2), 15.5)


def test_predict_images_resizes_crops_of_another_size_and_maps_the_landmarks_back():
    images = np.zeros((3, 64, 64, 3), np.uint8)
    assert np.allclose(predict_images(_PointAtCentre(), images), 31.5)  # the centre of the 64-px grid
    assert np.allclose(predict_images(_PointAtCentre(), images[:, :32, :32]), 15.5)


@pytest.mark.parametrize("detector", ["lafin-gl", "lab"])
def test_every_detector_scores_crops_of_another_size(detector):
    options = {"width_mult": 0.25} if detector == "lafin-gl" else {"stacks": 1, "width": 8, "depth": 2}
    model = build_detector(detector, {"points": 68, "size": 32, **options}).eval()
    predicted = predict_images(model, np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8))
    assert predicted.shape == (2, 68, 2) and np.isfinite(predicted).all()
