import io
import math

import pytest
import torch

from lafin_aug.detectors.heatmaps import boundary_heatmaps
from lafin_aug.detectors.lab import LABConfig, LABDetector
from lafin_aug.landmarks import IBUG68, WFLW98

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(points: int = 68, stacks: int = 1, norm: str = "group") -> LABConfig:
    return LABConfig(points=points, size=64, stacks=stacks, width=8, depth=2, norm=norm)


def _landmarks(batch: int, points: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return size / 4 + torch.rand(batch, points, 2, generator=generator) * size / 2


# --------------------------------------------------------------------------- boundary heatmaps


def _flat_contour(y: float) -> torch.Tensor:
    """68-point landmarks whose contour (points 0-16) runs along y from x = 10 to x = 50."""
    points = _landmarks(1, 68, 64)
    points[0, :17, 0] = torch.linspace(10, 50, 17)
    points[0, :17, 1] = y
    return points


@pytest.mark.parametrize("schema", [IBUG68, WFLW98])
def test_heatmaps_have_13_channels_in_unit_range(schema):
    maps = boundary_heatmaps(_landmarks(2, schema.num_points, 64), schema, 64, 16, 1.0)
    assert maps.shape == (2, 13, 16, 16)
    assert 0 <= maps.min() and maps.max() <= 1


def test_heatmap_is_one_on_the_curve_and_gaussian_off_it():
    sigma = 2.0
    maps = boundary_heatmaps(_flat_contour(20.0), IBUG68, 64, 64, sigma)[0, 0]  # contour channel
    assert maps[20, 10] == pytest.approx(1.0)  # a landmark
    assert maps[20, 33] == pytest.approx(1.0)  # between landmarks
    assert maps[22, 30] == pytest.approx(math.exp(-0.5))  # sigma away from the segment
    assert maps[24, 7] == pytest.approx(math.exp(-25 / (2 * sigma**2)))  # 5 px past the end point
    assert maps[60, 30] < 1e-30


def test_heatmap_distance_matches_dense_sampling():
    points = _landmarks(1, 68, 64, seed=1)
    maps = boundary_heatmaps(points, IBUG68, 64, 64, 3.0)[0, 0]
    curve = points[0, :17]
    t = torch.linspace(0, 1, 400)[:, None, None]
    dense = (curve[:-1] + t * (curve[1:] - curve[:-1])).reshape(-1, 2)
    axis = torch.arange(64.0)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    distance = torch.cdist(grid, dense).amin(1).view(64, 64)
    assert torch.allclose(maps, torch.exp(-(distance**2) / 18), atol=2e-3)


def test_heatmap_coordinates_scale_pixel_centres():
    points = _landmarks(1, 68, 256)
    points[0, :17] = torch.tensor([41.5, 81.5])  # centre of heatmap pixel (10, 20) when S = 4H
    sigma = 1.5
    maps = boundary_heatmaps(points, IBUG68, 256, 64, sigma)[0, 0]
    assert maps[20, 10] == pytest.approx(1.0)
    assert maps[20, 11] == pytest.approx(math.exp(-1 / (2 * sigma**2)))
    assert maps[21, 10] == pytest.approx(maps[19, 10].item())


def test_heatmaps_reject_wrong_point_count():
    with pytest.raises(ValueError, match="wflw98"):
        boundary_heatmaps(_landmarks(1, 68, 64), WFLW98, 64, 16, 1.0)


# --------------------------------------------------------------------------- LAB detector


@pytest.mark.parametrize("points,stacks", [(68, 1), (68, 2), (98, 1), (98, 2)])
def test_output_shapes(points, stacks):
    model = LABDetector(_tiny(points, stacks))
    outputs = model(torch.rand(2, 3, 64, 64))
    assert outputs["landmarks"].shape == (2, points, 2)
    assert len(outputs["boundaries"]) == stacks
    assert all(h.shape == (2, 13, 16, 16) for h in outputs["boundaries"])
    image = torch.rand(2, 3, 64, 64)
    model.eval()
    expected = model(image)["landmarks"] * 64 - 0.5
    model.train()
    assert torch.allclose(model.predict(image), expected)
    assert model.training


def test_forward_rejects_other_image_sizes():
    with pytest.raises(ValueError, match=r"\[B,3,64,64\]"):
        LABDetector(_tiny())(torch.rand(1, 3, 128, 128))


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    model = LABDetector(_tiny(stacks=2))
    images, landmarks = torch.rand(4, 3, 64, 64), _landmarks(4, 68, 64)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(30):
        losses = model.loss(model(images), landmarks)
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
        history.append({name: value.item() for name, value in losses.items()})
    first, last = history[0], history[-1]
    assert last["total"] < 0.3 * first["total"]
    assert last["boundary"] < first["boundary"] and last["landmark"] < first["landmark"]


def test_gradients_reach_both_parts():
    model = LABDetector(_tiny(stacks=2))
    losses = model.loss(model(torch.rand(2, 3, 64, 64)), _landmarks(2, 68, 64).double())
    losses["landmark"].backward(retain_graph=True)
    # through the fusion, the landmark loss alone already trains the boundary estimator's last stack
    assert model.boundary.stacks[-1].head.weight.grad.abs().sum() > 0
    model.zero_grad()
    losses["total"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_config_round_trip_rebuilds_the_model():
    config = LABConfig(points=98, size=64, stacks=2, width=8, depth=2, sigma=1.5, boundary_weight=0.5)
    assert LABConfig.from_dict(config.to_dict()) == config
    model = LABDetector(config).eval()
    buffer = io.BytesIO()
    torch.save({"config": config.to_dict(), "model": model.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    rebuilt = LABDetector(LABConfig.from_dict(checkpoint["config"]))
    rebuilt.load_state_dict(checkpoint["model"])
    image = torch.rand(1, 3, 64, 64)
    assert torch.equal(rebuilt.predict(image), model.predict(image))


def test_group_norm_predictions_do_not_depend_on_batch_statistics():
    torch.manual_seed(0)
    model = LABDetector(_tiny(stacks=2))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    images = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        in_training_mode = model(images)["landmarks"]
        alone = model(images[:1])["landmarks"]
    torch.testing.assert_close(model.predict(images), in_training_mode * 64 - 0.5)
    torch.testing.assert_close(alone, in_training_mode[:1])


def test_batch_norm_remains_available():
    model = LABDetector(_tiny(norm="batch"))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())


def test_config_validation():
    with pytest.raises(ValueError, match="'group' or 'batch'"):
        LABConfig(norm="layer")
    with pytest.raises(ValueError, match="unknown"):
        LABConfig.from_dict({"points": 68, "colour": 1})
    with pytest.raises(ValueError, match="multiple of 16"):
        LABConfig(size=72)
    with pytest.raises(ValueError, match="depth"):
        LABConfig(size=64, depth=5)
    with pytest.raises(ValueError, match="schema"):
        LABConfig(points=5)
    assert LABConfig(size=128).heatmap_size == 32
