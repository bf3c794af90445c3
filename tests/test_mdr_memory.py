"""MDRNets building blocks on hand-made cases: region pooling, the disentangled memory, MREM, InCo^2."""
from __future__ import annotations

import math

import pytest
import torch

from lafin_aug.inpainters.mdr.losses import inco2_loss
from lafin_aug.inpainters.mdr.memory import DisentangledMemory, region_pool
from lafin_aug.inpainters.mdr.mrem import MaskedCorrelationMining, broadcast, fuse


def _columns(width: int, *spans: tuple[int, int], height: int | None = None) -> torch.Tensor:
    """[1,K,H,W] one-hot maps whose class k covers columns spans[k] = (start, stop)."""
    maps = torch.zeros(1, len(spans), height or width, width)
    for k, (start, stop) in enumerate(spans):
        maps[0, k, :, start:stop] = 1
    return maps


# --- region_pool -----------------------------------------------------------------------------------

def test_region_pool_means_and_masses_on_a_two_class_map():
    classes = _columns(4, (0, 2), (2, 4))  # class 0: columns 0-1, class 1: columns 2-3
    features = torch.stack([torch.arange(16.0).reshape(4, 4), torch.full((4, 4), 2.0)])[None]
    pooled, mass = region_pool(features, classes)
    # class 0: 0,1,4,5,8,9,12,13 -> 52/8; class 1: 2,3,6,7,10,11,14,15 -> 68/8
    assert torch.allclose(pooled, torch.tensor([[[6.5, 2.0], [8.5, 2.0]]]))
    assert torch.equal(mass, torch.tensor([[8.0, 8.0]]))


def test_region_pool_over_known_pixels_only():
    classes = _columns(4, (0, 2), (2, 4), (4, 4))  # class 2 is empty
    features = torch.arange(16.0).reshape(1, 1, 4, 4)
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., :2, :2] = 1  # the top half of class 0
    pooled, mass = region_pool(features, classes, weight=1 - hole)
    # class 0 known: 8,9,12,13 -> 10.5 over 4 pixels; class 2: no mass, zero vector
    assert torch.allclose(pooled[0, :, 0], torch.tensor([10.5, 8.5, 0.0]))
    assert torch.equal(mass, torch.tensor([[4.0, 8.0, 0.0]]))
    pooled, mass = region_pool(features, classes, weight=hole)
    assert torch.allclose(pooled[0, :, 0], torch.tensor([2.5, 0.0, 0.0]))  # 0,1,4,5
    assert torch.equal(mass, torch.tensor([[4.0, 0.0, 0.0]]))


def test_region_pool_soft_membership_after_downsampling():
    classes = _columns(4, (0, 1), (1, 4))  # class 0: column 0 only
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]  # 2x2: each cell is 2x2 map pixels
    pooled, mass = region_pool(features, classes)
    # class 0 owns half of the left cells: (0.5*1 + 0.5*3) / 1; class 1: (0.5*1 + 2 + 0.5*3 + 4) / 3
    assert torch.allclose(pooled[0, :, 0], torch.tensor([2.0, 8.0 / 3.0]))
    assert torch.allclose(mass, torch.tensor([[1.0, 3.0]]))
    known = torch.ones(1, 1, 4, 4)
    known[..., 0, 0] = 0  # one class-0 pixel in the hole
    pooled, mass = region_pool(features, classes, weight=known)
    # class 0 known pixels: (1,0) in the top-left cell (1/4), (2,0) and (3,0) in the bottom-left (2/4)
    assert torch.allclose(mass, torch.tensor([[0.75, 3.0]]))
    assert torch.allclose(pooled[0, :, 0], torch.tensor([(0.25 * 1 + 0.5 * 3) / 0.75, 8.0 / 3.0]))


# --- DisentangledMemory ----------------------------------------------------------------------------

def _memory(decay: float = 0.9, temperature: float = 1.0) -> DisentangledMemory:
    memory = DisentangledMemory(classes=2, slots=3, channels=2, decay=decay, temperature=temperature)
    memory.slots.copy_(torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]],
                                     [[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]]))
    return memory


def test_memory_starts_seeded_and_unit_norm():
    a, b = DisentangledMemory(12, 4, 8, seed=3), DisentangledMemory(12, 4, 8, seed=3)
    assert a.slots.shape == (12, 4, 8) and torch.equal(a.slots, b.slots)
    assert not torch.equal(a.slots, DisentangledMemory(12, 4, 8, seed=4).slots)
    assert torch.allclose(a.slots.norm(dim=-1), torch.ones(12, 4))
    assert not a.slots.requires_grad and "slots" in a.state_dict() and not list(a.parameters())


def test_update_moves_only_the_most_similar_slot():
    memory = _memory()
    before = memory.slots.clone()
    queries = torch.tensor([[[0.1, 1.0], [1.0, 0.0]]])  # class 0 -> slot 1; class 1 is absent
    values = torch.tensor([[[2.0, 3.0], [float("nan"), 7.0]]])
    memory.update(queries, values, torch.tensor([[True, False]]))
    expected = before.clone()
    expected[0, 1] = 0.9 * before[0, 1] + (1 - 0.9) * values[0, 0]
    assert torch.equal(memory.slots, expected)  # bit-exact, every other slot untouched
    assert torch.equal(memory.slots[1], before[1])


def test_update_uses_the_mean_of_samples_that_pick_the_same_slot():
    memory = _memory(decay=0.5)
    before = memory.slots.clone()
    queries = torch.tensor([[[0.0, 1.0], [0.0, 0.0]], [[0.2, 0.9], [0.0, 0.0]], [[-1.0, 0.1], [0.0, -3.0]]])
    values = torch.tensor([[[2.0, 3.0], [0.0, 0.0]], [[4.0, 1.0], [0.0, 0.0]], [[5.0, 5.0], [1.0, 1.0]]])
    present = torch.tensor([[True, False], [True, False], [True, True]])
    memory.update(queries, values, present)
    expected = before.clone()
    expected[0, 1] = 0.5 * before[0, 1] + 0.5 * torch.tensor([3.0, 2.0])  # mean of (2,3) and (4,1)
    expected[0, 2] = 0.5 * before[0, 2] + 0.5 * torch.tensor([5.0, 5.0])
    expected[1, 2] = 0.5 * before[1, 2] + 0.5 * torch.tensor([1.0, 1.0])
    assert torch.allclose(memory.slots, expected, atol=1e-6)
    for i, j in [(0, 0), (1, 0), (1, 1)]:
        assert torch.equal(memory.slots[i, j], before[i, j])


def test_read_scores_and_hand_computed_read():
    memory = _memory()
    queries = torch.tensor([[[0.0, 1.0], [0.0, 2.0]]])
    scores = memory.scores(queries)
    assert torch.allclose(scores.sum(-1), torch.ones(1, 2))
    # class 0: cosines (0, 1, 0) -> slot 1 gets e/(e+2); slots 0 and 2 cancel in x
    e = math.e
    assert torch.allclose(scores[0, 0], torch.tensor([1 / (e + 2), e / (e + 2), 1 / (e + 2)]))
    assert torch.allclose(memory.read(queries)[0, 0], torch.tensor([0.0, e / (e + 2)]))
    sharp = _memory(temperature=0.01)
    assert torch.allclose(sharp.read(queries)[0], torch.tensor([[0.0, 1.0], [0.0, 1.0]]), atol=1e-6)


def test_read_gradient_reaches_queries_not_slots():
    memory = DisentangledMemory(3, 4, 5)
    queries = torch.randn(2, 3, 5, requires_grad=True)
    (memory.read(queries) * torch.randn(2, 3, 5)).sum().backward()
    assert queries.grad is not None and queries.grad.abs().sum() > 0
    assert memory.slots.grad is None and not memory.slots.requires_grad


def test_state_dict_round_trip_restores_slots_exactly():
    memory = DisentangledMemory(3, 4, 5, seed=1)
    memory.update(torch.randn(2, 3, 5), torch.randn(2, 3, 5), torch.ones(2, 3, dtype=torch.bool))
    restored = DisentangledMemory(3, 4, 5, seed=2)
    restored.load_state_dict(memory.state_dict())
    assert torch.equal(restored.slots, memory.slots)


def test_memory_rejects_wrong_query_shapes():
    with pytest.raises(ValueError, match="queries must be"):
        DisentangledMemory(3, 4, 5).read(torch.randn(2, 2, 5))


# --- broadcast / fuse ------------------------------------------------------------------------------

def test_broadcast_weights_vectors_by_membership():
    vectors = torch.tensor([[[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]]])
    classes = torch.tensor([[[[1.0, 0.25]], [[0.0, 0.75]]]])  # [1,2,1,2]
    out = broadcast(vectors, classes)
    assert out.shape == (1, 3, 1, 2)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(out[0, :, 0, 1], torch.tensor([7.75, 15.5, 23.25]))


def test_fuse_takes_memory_in_the_hole_and_real_outside():
    memory_map, real_map = torch.full((1, 1, 2, 2), 5.0), torch.ones(1, 1, 2, 2)
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., :2, :2] = 1
    hole[..., 3, 3] = 1  # a quarter of the bottom-right cell
    out = fuse(memory_map, real_map, hole)
    assert torch.allclose(out, torch.tensor([[[[5.0, 1.0], [1.0, 0.25 * 5 + 0.75]]]]))


# --- MaskedCorrelationMining -----------------------------------------------------------------------

def test_mcm_changes_only_the_hole():
    torch.manual_seed(0)
    mcm = MaskedCorrelationMining(4, patch=2)
    x = torch.randn(2, 4, 4, 6)
    assert torch.equal(mcm(x, torch.zeros(2, 1, 8, 12)), x)
    hole = torch.zeros(2, 1, 8, 12)
    hole[..., :4, :4] = 1  # features [:2, :2]
    out = mcm(x, hole)
    assert out.shape == x.shape
    inside = torch.zeros(4, 6, dtype=torch.bool)
    inside[:2, :2] = True
    assert torch.equal(out[..., ~inside], x[..., ~inside])
    assert (out[..., inside] - x[..., inside]).abs().min() > 0


def test_mcm_matches_a_patch_by_patch_reference():
    torch.manual_seed(1)
    mcm = MaskedCorrelationMining(2, patch=2)
    x = torch.randn(1, 2, 4, 4)
    out = mcm(x, torch.ones(1, 1, 4, 4))
    q, k, v = mcm.query(x), mcm.key(x), mcm.value(x)
    cells = [(r, c) for r in range(0, 4, 2) for c in range(0, 4, 2)]

    def patches(t):
        return torch.stack([t[0, :, r:r + 2, c:c + 2].reshape(-1) for r, c in cells])  # [N, C*4]

    weights = torch.softmax(patches(q) @ patches(k).T / math.sqrt(8), dim=-1)
    mixed = weights @ patches(v)
    expected = x.clone()
    for (r, c), patch in zip(cells, mixed, strict=True):
        expected[0, :, r:r + 2, c:c + 2] += patch.reshape(2, 2, 2)
    assert torch.allclose(out, expected, atol=1e-5)


def test_mcm_rejects_sizes_not_multiple_of_patch():
    with pytest.raises(ValueError, match="multiple of the patch size 2"):
        MaskedCorrelationMining(4, patch=2)(torch.randn(1, 4, 5, 6), torch.zeros(1, 1, 5, 6))


def test_mcm_under_bf16_autocast():
    torch.manual_seed(2)
    mcm = MaskedCorrelationMining(4, patch=2)
    x = torch.randn(1, 4, 4, 4)
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., 2:, :] = 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mcm(x, hole)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert torch.equal(out[..., :2, :], x[..., :2, :])


# --- InCo^2 ----------------------------------------------------------------------------------------

def _two_columns() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """2-channel 2x2 features on a map with class 0 = left column, class 1 = right column, hole = top row.

    Hole pixels: class 0 (1, 0), class 1 (0, 1); known pixels: both (1, 0).
    """
    classes = _columns(2, (0, 1), (1, 2))
    hole = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    features = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]], [[0.0, 1.0], [0.0, 0.0]]]])
    return features, classes, hole


def test_inco2_hand_computed_scale_free_and_symmetric():
    out, classes, hole = _two_columns()
    gt = torch.zeros_like(out)
    gt[:, 0] = 1  # every pixel (1, 0)
    # cosines: intra out [[1,0],[0,1]] vs gt all 1 -> mean 0.5; inter out [[1,1],[0,0]] vs gt all 1 -> mean 0.5
    assert inco2_loss(out, gt, classes, hole).item() == pytest.approx(1.0)
    assert inco2_loss(gt, out, classes, hole).item() == pytest.approx(1.0)
    assert inco2_loss(5 * out, gt, classes, hole).item() == pytest.approx(1.0)  # cosines: no feature scale
    empty = torch.cat([classes, torch.zeros(1, 1, 2, 2)], dim=1)  # an absent class does not count
    assert inco2_loss(out, gt, empty, hole).item() == pytest.approx(1.0)


def test_inco2_counts_only_present_pairs():
    out, classes, _ = _two_columns()
    gt = torch.zeros_like(out)
    gt[:, 0] = 1
    hole = torch.zeros(1, 1, 2, 2)
    hole[..., 0, 0] = 1  # only class 0 has hole pixels
    # intra: (0,0) only, 1 - 1 = 0; inter: class 0 in the hole (1,0) vs known class 0 (1,0): 1 - 1 = 0, vs known
    # class 1, the mean of (0,1) and (1,0): cosine 1/sqrt(2) against 1 -> mean (1 - 1/sqrt(2)) / 2
    assert inco2_loss(out, gt, classes, hole).item() == pytest.approx((1 - 2 ** -0.5) / 2)
    assert inco2_loss(out, gt, classes, torch.zeros(1, 1, 2, 2)).item() == 0.0


def test_inco2_zero_for_identical_features_and_gradient_flows():
    torch.manual_seed(3)
    classes = torch.nn.functional.one_hot(torch.randint(0, 12, (2, 16, 16)), 12).permute(0, 3, 1, 2).float()
    hole = (torch.rand(2, 1, 16, 16) > 0.5).float()
    gt = torch.randn(2, 6, 8, 8)
    assert inco2_loss(gt.clone(), gt, classes, hole).item() == 0.0
    out = (gt + 0.1 * torch.randn_like(gt)).requires_grad_()
    loss = inco2_loss(out, gt, classes, hole)
    assert loss.item() > 0 and loss.dtype == torch.float32
    loss.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = inco2_loss(out, gt, classes, hole)
    assert cast.dtype == torch.float32 and cast.item() == pytest.approx(loss.item())
