"""Scale-out of generate: a Dask cluster and torchrun give the records of one serial process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.generate import GenerateConfig, generate
from lafin_aug.inpainters.lafin.config import LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer
from lafin_aug.shards import read_manifest, read_run_config, verify_shards
from test_generate import read_all

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed (extra lafin-aug[dask])")

pytestmark = pytest.mark.filterwarnings("ignore:VGG-19", "ignore::DeprecationWarning")

SIZE = 32
DATA = DatasetSpec("synthetic", count=10)


@pytest.fixture(scope="module")
def inpainter(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("inpainter") / "run"
    bank = crop_dataset(open_dataset("synthetic", count=4), SIZE, progress=False)
    config = LafinTrainConfig(size=SIZE, steps=1, batch=2, width=8, blocks=1, disc_width=8, vgg_weights="off",
                              device="cpu", sample_every=0)
    return str(LafinTrainer(config, out, bank=bank, progress=False).fit())


@pytest.fixture(scope="module")
def serial(inpainter, tmp_path_factory):
    """One process, one torch thread: the reference records."""
    out = tmp_path_factory.mktemp("serial")
    generate(config_for(inpainter), out, progress=False)
    return read_all(out)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as local:
        yield local


def config_for(inpainter: str, **overrides) -> GenerateConfig:
    base = dict(data=DATA, inpainter=inpainter, epochs=2, shard_size=3, device="cpu", batch=4, threads=1,
                precision="fp32")
    return GenerateConfig(**{**base, **overrides})


def assert_same_records(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> None:
    assert expected.keys() == actual.keys()
    for key in expected:
        assert np.array_equal(expected[key], actual[key]), key


def test_local_cluster_writes_the_serial_records(inpainter, serial, cluster, tmp_path):
    summary = generate(config_for(inpainter, scheduler=cluster.scheduler_address), tmp_path, progress=False)
    assert summary.shards_written == 10
    assert verify_shards(tmp_path).ok
    assert_same_records(serial, read_all(tmp_path))
    run = read_run_config(tmp_path)
    assert run["threads_per_job"] == 1 and run["config"]["scheduler"] == cluster.scheduler_address


def test_scheduler_local_n_starts_and_closes_its_own_cluster(inpainter, serial, tmp_path):
    generate(config_for(inpainter, scheduler="local:2"), tmp_path, progress=False)
    assert_same_records(serial, read_all(tmp_path))


def test_a_worker_killed_mid_run_leaves_a_directory_a_rerun_completes(inpainter, serial, tmp_path):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as local, distributed.Client(local) as client:
        config = config_for(inpainter, scheduler=local.scheduler_address)
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                generate(config, tmp_path, progress=False)
                outcome.append(None)
            except BaseException as error:  # the run may fail or recover: both must leave a resumable directory
                outcome.append(error)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 120
        while not (tmp_path / "manifest.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = sorted(client.scheduler_info()["workers"])[0]
        os.kill(client.run(os.getpid, workers=[victim])[victim], signal.SIGKILL)
        written_before_kill = len(read_manifest(tmp_path))
        thread.join(timeout=300)
        assert not thread.is_alive()
    print(f"killed after {written_before_kill} of 10 shards; the run ended with {outcome[0]!r}")
    assert written_before_kill < 10
    rerun = generate(config_for(inpainter), tmp_path, progress=False)
    assert rerun.shards_written + rerun.shards_skipped == 10
    assert verify_shards(tmp_path).ok
    assert len(read_manifest(tmp_path)) == 10
    assert_same_records(serial, read_all(tmp_path))


def test_bad_scheduler_is_one_clear_error(inpainter, tmp_path):
    with pytest.raises(ValueError, match="local:N or a scheduler address"):
        generate(config_for(inpainter, scheduler="lots"), tmp_path, progress=False)


def test_torchrun_two_ranks_write_the_serial_records(inpainter, serial, tmp_path):
    """torchrun --nproc-per-node 2 on CPU through the real command line, one thread per rank."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29541",
               "-m", "lafin_aug.cli.main", "generate", "--dataset", "synthetic", "--count", "10", "--inpainter",
               inpainter, "--epochs", "2", "--shard-size", "3", "--device", "cpu", "--precision", "fp32",
               "--batch", "4", "--threads", "1", "--out", str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert verify_shards(tmp_path).ok
    assert_same_records(serial, read_all(tmp_path))
    assert read_run_config(tmp_path)["world_size"] == 2
