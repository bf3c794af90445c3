"""The generate engine: format guarantees, determinism, resume after a kill, rank split, 98->68 conditioning."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from lafin_aug import generate as generate_module
from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.generate import GenerateConfig, generate, plan_shards
from lafin_aug.inpainters.lafin.config import LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer
from lafin_aug.shards import read_manifest, verify_shards

pytestmark = pytest.mark.filterwarnings("ignore:VGG-19")

SIZE = 32


@pytest.fixture(scope="module")
def inpainter(tmp_path_factory):
    """A real (barely trained) inpainter checkpoint at 32 px."""
    out = tmp_path_factory.mktemp("inpainter") / "run"
    bank = crop_dataset(open_dataset("synthetic", count=4), SIZE, progress=False)
    config = LafinTrainConfig(size=SIZE, steps=1, batch=2, width=8, blocks=1, disc_width=8,
                                  vgg_weights="off", device="cpu", sample_every=0)
    return str(LafinTrainer(config, out, bank=bank, progress=False).fit())


@pytest.fixture(scope="module")
def bank():
    return crop_dataset(open_dataset("synthetic", count=10, seed=1), SIZE, progress=False)


def config_for(inpainter: str, **overrides) -> GenerateConfig:
    base = dict(data=DatasetSpec("synthetic", count=10, seed=1), inpainter=inpainter, epochs=2, shard_size=8,
                device="cpu", batch=4)
    return GenerateConfig(**{**base, **overrides})


def read_all(directory) -> dict[str, np.ndarray]:
    parts: dict[str, list] = {}
    for row in read_manifest(directory):
        with h5py.File(directory / row.name) as handle:
            for key in handle:
                parts.setdefault(key, []).append(handle[key][:])
    return {key: np.concatenate(value) for key, value in parts.items()}


def test_plan_is_epoch_major_and_complete():
    plans = plan_shards(5, GenerateConfig(epochs=2, shard_size=4, include_real=True))
    epochs = np.concatenate([p.epochs for p in plans])
    faces = np.concatenate([p.faces for p in plans])
    assert list(epochs) == [-1] * 5 + [0] * 5 + [1] * 5
    assert list(faces) == list(range(5)) * 3
    assert [len(p.faces) for p in plans] == [4, 4, 4, 3]


def test_generated_shards_keep_real_pixels_and_labels(inpainter, bank, tmp_path):
    summary = generate(config_for(inpainter), tmp_path, bank=bank, progress=False)
    assert summary.records_written == 30 and summary.shards_written == 4
    assert verify_shards(tmp_path).ok
    data = read_all(tmp_path)
    position = {int(s): k for k, s in enumerate(bank.source_index)}
    for image, landmarks, mask, source, epoch in zip(data["image"], data["landmarks"], data["mask"],
                                                     data["source_index"], data["epoch"]):
        real = bank.images[position[int(source)]]
        known = mask == 0
        assert np.array_equal(image[known], real[known])
        assert np.array_equal(landmarks, bank.landmarks[position[int(source)]])
        if epoch >= 0:
            assert 0.1 <= mask.mean() <= 0.6
            assert not np.array_equal(image, real)
        else:
            assert not mask.any()
    pairs = sorted(zip(data["source_index"].tolist(), data["epoch"].tolist()))
    assert pairs == sorted((int(s), e) for s in bank.source_index for e in (-1, 0, 1))
    # each epoch of a face has its own mask
    first = data["mask"][(data["source_index"] == bank.source_index[0]) & (data["epoch"] >= 0)]
    assert len(first) == 2 and not np.array_equal(first[0], first[1])


def test_two_runs_with_the_same_seed_are_identical(inpainter, bank, tmp_path):
    generate(config_for(inpainter), tmp_path / "a", bank=bank, progress=False)
    generate(config_for(inpainter), tmp_path / "b", bank=bank, progress=False)
    a, b = read_all(tmp_path / "a"), read_all(tmp_path / "b")
    assert all(np.array_equal(a[key], b[key]) for key in a)
    generate(config_for(inpainter, seed=5), tmp_path / "c", bank=bank, progress=False)
    assert not np.array_equal(a["mask"], read_all(tmp_path / "c")["mask"])


def test_killed_run_resumes_without_duplicates_or_gaps(inpainter, bank, tmp_path, monkeypatch):
    real_build = generate_module.build_shard
    calls = []

    def dies_on_third_shard(plan, *args, **kwargs):
        calls.append(plan.index)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_build(plan, *args, **kwargs)

    monkeypatch.setattr(generate_module, "build_shard", dies_on_third_shard)
    with pytest.raises(KeyboardInterrupt):
        generate(config_for(inpainter), tmp_path, bank=bank, progress=False)
    assert len(read_manifest(tmp_path)) == 2
    monkeypatch.setattr(generate_module, "build_shard", real_build)
    summary = generate(config_for(inpainter), tmp_path, bank=bank, progress=False)
    assert summary.shards_skipped == 2 and summary.shards_written == 2
    assert verify_shards(tmp_path).ok
    data = read_all(tmp_path)
    pairs = list(zip(data["source_index"].tolist(), data["epoch"].tolist()))
    assert len(pairs) == len(set(pairs)) == 30


def test_rerun_rewrites_a_corrupted_shard(inpainter, bank, tmp_path):
    generate(config_for(inpainter), tmp_path, bank=bank, progress=False)
    victim = tmp_path / "shard-00001.h5"
    raw = bytearray(victim.read_bytes())
    raw[-100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    assert not verify_shards(tmp_path).ok
    summary = generate(config_for(inpainter), tmp_path, bank=bank, progress=False)
    assert summary.shards_written == 1 and verify_shards(tmp_path).ok


def test_ranks_write_disjoint_shards_into_one_manifest(inpainter, bank, tmp_path, monkeypatch):
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        summary = generate(config_for(inpainter), tmp_path, bank=bank, progress=False)
        assert summary.shards_written == 2
    assert [row.name for row in read_manifest(tmp_path)] == [f"shard-0000{i}.h5" for i in range(4)]
    assert verify_shards(tmp_path).ok


def test_joblib_workers_give_the_same_shards(inpainter, bank, tmp_path):
    generate(config_for(inpainter), tmp_path / "one", bank=bank, progress=False)
    generate(config_for(inpainter, workers=2), tmp_path / "two", bank=bank, progress=False)
    one, two = read_all(tmp_path / "one"), read_all(tmp_path / "two")
    assert np.array_equal(one["mask"], two["mask"]) and np.array_equal(one["landmarks"], two["landmarks"])
    assert np.abs(one["image"].astype(int) - two["image"].astype(int)).max() <= 2


def test_wflw_98_points_condition_on_the_68_subset(inpainter, shared_data, tmp_path):
    json_path = shared_data / "fixtures" / "mmpose" / "wflw" / "test_wflw.json"
    config = config_for(inpainter, data=DatasetSpec("coco", str(json_path)), epochs=1)
    generate(config, tmp_path, progress=False)
    data = read_all(tmp_path)
    assert data["landmarks"].shape[1:] == (98, 2)
    with h5py.File(tmp_path / "shard-00000.h5") as handle:
        assert handle.attrs["points"] == 98 and handle.attrs["dataset"] == "coco"


def test_landmark_edits_stay_inside_the_hole_and_are_flagged(inpainter, bank, tmp_path):
    config = dataclasses.replace(config_for(inpainter, epochs=3), edit=1.0,
                                 mask_buckets=("40-50", "50+"))
    generate(config, tmp_path, bank=bank, progress=False)
    data = read_all(tmp_path)
    position = {int(s): k for k, s in enumerate(bank.source_index)}
    edited = np.flatnonzero(data["edited"])
    assert len(edited) > 0
    for k in range(len(data["epoch"])):
        truth = bank.landmarks[position[int(data["source_index"][k])]]
        moved = np.any(data["landmarks"][k] != truth, axis=1)
        assert moved.any() == bool(data["edited"][k])
        for x, y in np.round(truth[moved]).astype(int):
            assert data["mask"][k][y, x] == 1


def test_on_the_fly_matches_the_generated_records(inpainter, bank, tmp_path):
    from lafin_aug import OnTheFlyAugment
    generate(config_for(inpainter, include_real=False), tmp_path, bank=bank, progress=False)
    stored = read_all(tmp_path)
    online = OnTheFlyAugment(bank, inpainter, batch=4)
    online.set_epoch(1)
    records = list(online)
    assert len(records) == len(bank) and sorted(r["source_index"] for r in records) == sorted(bank.source_index)
    for record in records:
        k = np.flatnonzero((stored["source_index"] == record["source_index"]) & (stored["epoch"] == 1))[0]
        assert np.array_equal(record["mask"][0].numpy(), stored["mask"][k])
        image = (record["image"].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        assert np.abs(image.astype(int) - stored["image"][k].astype(int)).max() <= 1


def test_a_directory_holds_one_configuration(inpainter, bank, tmp_path):
    out = tmp_path / "shards"
    generate(config_for(inpainter, epochs=1), out, bank=bank, progress=False)
    before = read_all(out)
    for change, option in [({"epochs": 2}, "--epochs (1 there, 2 here)"), ({"seed": 7}, "--seed (0 there, 7 here)"),
                           ({"mask_buckets": ("10-20",)}, "--mask-buckets"), ({"edit": 0.5}, "--edit")]:
        with pytest.raises(ValueError, match=rf"{re.escape(str(out))} holds shards made with another "
                                             rf"{re.escape(option)}.*use another --out"):
            generate(config_for(inpainter, **{"epochs": 1, **change}), out, bank=bank, progress=False)
    again = generate(config_for(inpainter, epochs=1, workers=1, batch=2), out, bank=bank, progress=False)
    assert again.shards_written == 0 and again.shards_skipped == again.shards_total  # batch/workers change nothing
    after = read_all(out)
    assert all(np.array_equal(before[key], after[key]) for key in before)
    run = json.loads((out / "run.json").read_text())
    assert run["faces"] == 10 and run["shards_planned"] == 3 and run["identity"]["epochs"] == 1


def test_concurrent_runs_of_one_configuration_write_one_complete_directory(inpainter, tmp_path):
    out = tmp_path / "shards"
    command = [sys.executable, "-m", "lafin_aug.cli.main", "generate", "--count", "10", "--inpainter", inpainter,
               "--epochs", "2", "--shard-size", "4", "--device", "cpu", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    assert [run.wait(timeout=300) for run in runs] == [0, 0], [run.stderr.read()[-2000:] for run in runs]
    assert verify_shards(out).ok
    records = read_all(out)
    assert len(records["epoch"]) == 30 and len({(int(s), int(e)) for s, e in
                                                zip(records["source_index"], records["epoch"])}) == 30
    other = subprocess.run([*command[:-1], str(out), "--seed", "8"], env=env, capture_output=True, text=True)
    assert other.returncode == 1 and "holds shards made with another --seed (0 there, 8 here)" in other.stderr
