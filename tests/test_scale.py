"""Scale-out of generate: a Dask cluster and torchrun give the records of one serial process."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.generate import GenerateConfig, _cached_inpainter, generate
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


def models_loaded_on_workers(client) -> int:
    """How many inpainters the cluster's worker processes hold in generate's model cache."""
    return sum(client.run(lambda: len(__import__("lafin_aug.generate").generate._MODELS)).values())


def slow_down_shard_writes(seconds: float) -> None:
    """Run on a worker: each shard write first sleeps `seconds` (so a test can act mid-run)."""
    import lafin_aug.generate as engine

    write = engine.write_shard

    def slow_write(*args, **kwargs):
        time.sleep(seconds)
        return write(*args, **kwargs)

    engine.write_shard = slow_write


def config_for(inpainter: str, **overrides) -> GenerateConfig:
    base = dict(data=DATA, inpainter=inpainter, epochs=2, shard_size=3, device="cpu", batch=4, threads=1,
                precision="fp32")
    return GenerateConfig(**{**base, **overrides})


def assert_same_records(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> None:
    assert expected.keys() == actual.keys()
    for key in expected:
        assert np.array_equal(expected[key], actual[key]), key


def test_local_cluster_writes_the_serial_records(inpainter, serial, cluster, tmp_path):
    with distributed.Client(cluster) as client:
        assert models_loaded_on_workers(client) == 0
        summary = generate(config_for(inpainter, scheduler=cluster.scheduler_address), tmp_path, progress=False)
        assert models_loaded_on_workers(client) >= 1  # the shard jobs ran on the workers
    assert summary.shards_written == 10
    assert verify_shards(tmp_path).ok
    assert_same_records(serial, read_all(tmp_path))
    run = read_run_config(tmp_path)
    assert run["threads_per_job"] == 1 and run["config"]["scheduler"] == cluster.scheduler_address


def test_scheduler_local_n_starts_and_closes_its_own_cluster(inpainter, serial, tmp_path):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    generate(config_for(inpainter, scheduler="local:2"), tmp_path, progress=False)
    assert_same_records(serial, read_all(tmp_path))
    deadline = time.monotonic() + 20
    while {p.pid for p in psutil.Process().children(recursive=True)} - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not {p.pid for p in psutil.Process().children(recursive=True)} - before


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

        client.run(slow_down_shard_writes, 0.5)  # 5 shards per worker: the run lasts over 2.5 s
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 120
        while not (tmp_path / "manifest.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        written_before_kill = len(read_manifest(tmp_path))
        busy = [worker for worker, tasks in client.processing().items() if tasks]
        assert busy and written_before_kill < 10, "the run ended before a worker could be killed"
        os.kill(client.run(os.getpid, workers=[busy[0]])[busy[0]], signal.SIGKILL)
        thread.join(timeout=300)
        assert not thread.is_alive()
    print(f"killed a busy worker after {written_before_kill} of 10 shards; the run ended with {outcome[0]!r}")
    rerun = generate(config_for(inpainter), tmp_path, progress=False)
    assert rerun.shards_written + rerun.shards_skipped == 10
    assert verify_shards(tmp_path).ok
    assert len(read_manifest(tmp_path)) == 10
    assert_same_records(serial, read_all(tmp_path))


@pytest.mark.parametrize("scheduler", ["lots", "local:abc", "local:0", "tcp://127.0.0.1:notaport"])
def test_bad_scheduler_is_one_clear_error_before_anything_is_written(inpainter, tmp_path, scheduler):
    with pytest.raises(ValueError, match=r"--scheduler .*expected local:N \(N >= 1\) or a scheduler address"):
        generate(config_for(inpainter, scheduler=scheduler), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_scheduler_with_workers_or_under_torchrun_is_refused(inpainter, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="drop --workers"):
        generate(config_for(inpainter, scheduler="local:2", workers=2), tmp_path, progress=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="under torchrun"):
        generate(config_for(inpainter, scheduler="local:2"), tmp_path, progress=False)


def test_a_worker_refuses_an_inpainter_whose_weights_changed(inpainter):
    with pytest.raises(ValueError, match="changed after generate started"):
        _cached_inpainter(str(Path(inpainter).resolve()), torch.device("cpu"), "0" * 64)


def test_torchrun_two_ranks_write_the_serial_records(inpainter, serial, tmp_path):
    """torchrun --nproc-per-node 2 on CPU through the real command line, one thread per rank."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "lafin_aug.cli.main", "generate", "--dataset", "synthetic", "--count", "10", "--inpainter",
               inpainter, "--epochs", "2", "--shard-size", "3", "--device", "cpu", "--precision", "fp32",
               "--batch", "4", "--threads", "1", "--out", str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("5 shards written") == 2  # each rank wrote its own half
    assert verify_shards(tmp_path).ok
    assert_same_records(serial, read_all(tmp_path))
    assert read_run_config(tmp_path)["world_size"] == 2


def test_a_rewritten_checkpoint_is_reloaded_not_served_from_the_cache(inpainter, tmp_path):
    path = tmp_path / "inpainter.pt"
    shutil.copy(inpainter, path)
    first = _cached_inpainter(str(path), torch.device("cpu"))
    state = torch.load(path, weights_only=True)
    weights = state["generator"]
    name = next(iter(weights))
    weights[name] = weights[name] + 1
    torch.save(state, tmp_path / "new.pt")
    os.replace(tmp_path / "new.pt", path)
    second = _cached_inpainter(str(path), torch.device("cpu"))
    assert second.sha256 != first.sha256
    first_tensor, second_tensor = (next(iter(c.model.state_dict().values())) for c in (first, second))
    assert not torch.equal(first_tensor, second_tensor)
