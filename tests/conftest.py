"""Shared test fixtures: the real face data beside the repository, tiny torch settings."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(2)


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
