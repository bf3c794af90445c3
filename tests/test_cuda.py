"""The CUDA path: generator forwards agree with the CPU, `generate` writes verifiable shards whose known
pixels are the real ones bit for bit, and tiny inpainter and detector trainings run, in fp32 and bf16.

Every test is marked `cuda` (`pytest -m cuda`; benchmarks/gpu_check.sh runs them) and skips, saying
so, where torch sees no CUDA device. Tolerances against the CPU allow for TF32 convolutions (cuDNN's
default for fp32) and for bf16 rounding; a device bug (wrong layout, indexing, transfer) is far larger.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lafin_aug.data import open_dataset
from lafin_aug.data.crops import FaceCrops, crop_dataset
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.detectors import load_detector, predict_images
from lafin_aug.detectors.sources import RealSource
from lafin_aug.detectors.trainer import DetectorTrainConfig, DetectorTrainer
from lafin_aug.generate import GenerateConfig, generate
from lafin_aug.images import to_uint8
from lafin_aug.inpainters import FAMILIES, Conditions, load_inpainter
from lafin_aug.inpainters.lafin import LafinConfig, LafinGenerator, LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer
from lafin_aug.inpainters.mdr import MDRConfig, MDRGenerator, MDRTrainConfig
from lafin_aug.inpainters.mdr.trainer import MDRTrainer
from lafin_aug.runtime import autocast, resolve_device, resolve_precision
from lafin_aug.shards import AugmentedShards, verify_shards

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False"),
    pytest.mark.filterwarnings("ignore:VGG-19"),
]

DEVICE = "cuda"
SIZE = 32
PRECISIONS = ("fp32", "bf16")
MDR_TINY = dict(width=8, coarse_width=8, coarse_depth=4, style_channels=16, slots=4, blocks=1, spade_blocks=1)
GENERATORS = {"lafin": lambda: LafinGenerator(LafinConfig(width=8, blocks=1)),
              "mdr": lambda: MDRGenerator(MDRConfig(**MDR_TINY))}
FORWARD_TOLERANCE = {"fp32": 1e-2, "bf16": 0.1}  # largest output difference to the CPU's fp32, [0,1] range


@pytest.fixture(scope="module")
def bank() -> FaceCrops:
    return crop_dataset(open_dataset("synthetic", count=8, seed=2), SIZE, progress=False)


def fixed_batch(family: str) -> tuple[torch.Tensor, torch.Tensor, Conditions]:
    """Two random images with a rectangular hole and landmarks inside the image, on the CPU."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, SIZE, SIZE, generator=generator)
    mask = torch.zeros(2, 1, SIZE, SIZE)
    mask[..., 4:20, 6:26] = 1
    landmarks = torch.rand(2, 68, 2, generator=generator) * (SIZE - 12) + 6
    return image, mask, FAMILIES.get(family).conditions(landmarks, SIZE)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("family", sorted(GENERATORS))
def test_generator_forward_on_cuda_agrees_with_the_cpu(family, precision):
    torch.manual_seed(0)
    model = GENERATORS[family]().eval()
    image, mask, conditions = fixed_batch(family)
    device = torch.device(DEVICE)
    with torch.no_grad():
        expected = model(image, mask, conditions)
        model.to(device)
        with autocast(device, precision):
            output = model(image.to(device), mask.to(device), conditions.to(device))
    assert output.device.type == DEVICE and output.shape == expected.shape
    difference = (output.float().cpu() - expected).abs().max().item()
    assert difference < FORWARD_TOLERANCE[precision], f"{family} {precision}: max |cuda - cpu| = {difference:.4f}"


def shard_records(directory) -> list[dict]:
    """The records of a shard directory in manifest order, images as uint8 [S,S,3]."""
    return [{**record, "image": to_uint8(record["image"][None])[0]}
            for record in AugmentedShards(directory, shuffle=False)]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_generate_on_cuda_writes_verifiable_shards_with_the_real_pixels_kept(tiny_runs, bank, precision, tmp_path):
    inpainter, _ = tiny_runs

    def run(name: str, device: str, run_precision: str) -> list[dict]:
        config = GenerateConfig(data=DatasetSpec("synthetic", count=8, seed=2), inpainter=str(inpainter), epochs=2,
                                shard_size=6, batch=4, device=device, precision=run_precision)
        out = tmp_path / name
        summary = generate(config, out, bank=bank, progress=False)
        assert summary.records_written == 3 * len(bank) and verify_shards(out).ok
        return shard_records(out)

    on_gpu, on_cpu = run("gpu", DEVICE, precision), run("cpu", "cpu", "fp32")
    position = {int(source): k for k, source in enumerate(bank.source_index)}
    holes = []
    for gpu, cpu in zip(on_gpu, on_cpu, strict=True):
        assert (gpu["source_index"], gpu["epoch"]) == (cpu["source_index"], cpu["epoch"])
        assert torch.equal(gpu["mask"], cpu["mask"]) and torch.equal(gpu["landmarks"], cpu["landmarks"])
        real = bank.images[position[gpu["source_index"]]]
        hole = gpu["mask"][0].numpy().astype(bool)
        assert np.array_equal(gpu["image"][~hole], real[~hole])
        assert gpu["epoch"] == -1 or hole.any()
        holes.append(np.abs(gpu["image"][hole].astype(int) - cpu["image"][hole].astype(int)))
    levels = np.concatenate(holes)
    if precision == "fp32":
        assert levels.max() <= 8 and levels.mean() < 1, (levels.max(), levels.mean())
    else:
        assert levels.mean() < 8, levels.mean()


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("family", ["lafin", "mdr"])
def test_inpainter_trains_on_cuda_and_its_checkpoint_runs_on_the_cpu(bank, family, precision, tmp_path):
    common = dict(size=SIZE, batch=2, disc_width=8, vgg_weights="random", device=DEVICE, precision=precision,
                  log_every=1, checkpoint_every=100)
    if family == "lafin":
        steps = 2
        trainer = LafinTrainer(LafinTrainConfig(steps=steps, width=8, blocks=1, sample_every=steps, **common),
                               tmp_path / "run", bank=bank, progress=False)
    else:  # one step in each of the three stages
        steps = 3
        trainer = MDRTrainer(MDRTrainConfig(steps=steps, recon_steps=1, coarse_steps=1, recon_width=8,
                                            sample_every=steps, **MDR_TINY, **common),
                             tmp_path / "run", bank=bank, progress=False)
    last = trainer.fit()  # a non-finite loss raises NonFiniteLoss
    assert (tmp_path / "run" / "samples" / f"step-{steps:07d}.png").is_file()
    model, header = load_inpainter(last, "cpu")
    assert (header.step, header.precision) == (steps, precision)
    with torch.no_grad():
        assert model(*fixed_batch(family)).isfinite().all()


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("detector", ["lafin-gl", "lab"])
def test_detector_trains_on_cuda_and_predicts_as_on_the_cpu(bank, detector, precision, tmp_path):
    options = {"lafin-gl": {"width_mult": 0.25}, "lab": {"stacks": 1, "width": 8, "depth": 2}}[detector]
    config = DetectorTrainConfig(detector=detector, model=options, size=SIZE, steps=2, batch=4, device=DEVICE,
                                 precision=precision, log_every=1, sample_every=2, checkpoint_every=100)
    last = DetectorTrainer(config, tmp_path / "run", source=RealSource(bank), points=68, progress=False).fit()
    assert (tmp_path / "run" / "samples" / "step-0000002.png").is_file()
    model, header = load_detector(last, "cpu")
    assert (header.step, header.precision) == (2, precision)
    on_cpu = predict_images(model, bank.images)
    on_gpu = predict_images(model.to(DEVICE), bank.images)
    assert np.isfinite(on_gpu).all() and np.abs(on_gpu - on_cpu).max() < 0.5  # pixels of a 32 px crop


def test_auto_device_and_precision_take_the_gpu():
    device = resolve_device("auto")
    assert device.type == DEVICE
    assert resolve_precision("auto", device) == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
