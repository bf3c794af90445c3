"""Shared test fixtures: the real face data beside the repository, tiny torch settings."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(2)


def pytest_configure(config: pytest.Config) -> None:
    """Register the `cuda` marker: tests of the CUDA path, skipped where torch sees no GPU (`pytest -m cuda`)."""
    config.addinivalue_line("markers", "cuda: exercises the CUDA path; skips where torch sees no CUDA device")


def shared_data_dir() -> Path:
    """$LAFIN_AUG_SHARED_DATA, default ../shared/data beside the repository."""
    return Path(os.environ.get("LAFIN_AUG_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-face data; tests that need it skip with the reason when it is absent."""
    path = shared_data_dir()
    if not (path / "fixtures").is_dir():
        pytest.skip(f"shared face data not found at {path} (set LAFIN_AUG_SHARED_DATA)")
    return path


@pytest.fixture
def one_torch_thread():
    """Tiny models (LAB, FAN forwards) run faster on one thread than on two, on a shared 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> tuple[Path, Path]:
    """(LaFIn inpainter, G_L detector) checkpoints trained 2 steps at 32 px on 6 synthetic faces.

    Shared by several test files; tests must not write into these run directories.
    """
    from lafin_aug.data import open_dataset
    from lafin_aug.data.crops import crop_dataset
    from lafin_aug.detectors.sources import RealSource
    from lafin_aug.detectors.trainer import DetectorTrainConfig, DetectorTrainer
    from lafin_aug.inpainters.lafin import LafinTrainConfig
    from lafin_aug.inpainters.lafin.trainer import LafinTrainer
    root = tmp_path_factory.mktemp("tiny-runs")
    bank = crop_dataset(open_dataset("synthetic", count=6), 32, progress=False)
    inpainter = LafinTrainer(LafinTrainConfig(size=32, steps=2, batch=2, width=8, blocks=1, disc_width=8,
                                              vgg_weights="off", device="cpu", sample_every=0),
                             root / "inpainter", bank=bank, progress=False).fit()
    detector = DetectorTrainer(DetectorTrainConfig(detector="lafin-gl", model={"width_mult": 0.25}, size=32, steps=2,
                                                   batch=2, device="cpu", sample_every=0),
                               root / "detector", source=RealSource(bank), points=68, progress=False).fit()
    return inpainter, detector
