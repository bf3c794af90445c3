"""The benchmark protocol: variants trained alike, the classic control uses the lafin records' masks, caching."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from lafin_aug.cli.main import main

from lafin_aug.bench import BenchConfig, PairSource, load_augmented, run_bench, summarise
from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.generate import GenerateConfig, generate
from lafin_aug.inpainters.lafin.config import LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer
from lafin_aug.shards import ShardFormatError

SIZE = 32
TRAIN = DatasetSpec("synthetic", count=8, seed=2)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    bank = crop_dataset(open_dataset("synthetic", count=8, seed=2), SIZE, progress=False)
    config = LafinTrainConfig(size=SIZE, steps=1, batch=2, width=8, blocks=1, disc_width=8, vgg_weights="off",
                                  device="cpu", sample_every=0)
    checkpoint = LafinTrainer(config, root / "inpainter", bank=bank, progress=False).fit()
    generate(GenerateConfig(data=TRAIN, inpainter=str(checkpoint), epochs=2, device="cpu"), root / "shards",
             bank=bank, progress=False)
    return root / "shards", bank


def test_classic_and_lafin_draw_the_same_faces_epochs_and_masks(shards):
    directory, bank = shards
    pairs = load_augmented(directory, SIZE, {int(s) for s in bank.source_index}, TRAIN, 68)
    assert pairs.epochs == 2 and len(pairs.lookup) == 16
    rng = np.random.default_rng(0)
    lafin = PairSource(bank, pairs, seed=0, fill="lafin")
    classic = PairSource(bank, pairs, seed=0, fill="telea")
    assert np.array_equal(lafin.batch(3, 6, rng)[1], classic.batch(3, 6, rng)[1])
    position = {int(s): k for k, s in enumerate(bank.source_index)}
    for (source, epoch), row in pairs.lookup.items():
        known = pairs.masks[row] == 0
        real = bank.images[position[source]]
        # outside the hole both fills are the real crop; inside, Telea differs from the generator
        assert np.array_equal(pairs.images[row][known], real[known])
        assert np.array_equal(classic.filled[row][known], real[known])
        assert not np.array_equal(classic.filled[row], pairs.images[row])


def test_shards_of_another_dataset_split_or_markup_are_refused(shards):
    directory, bank = shards
    sources = {int(s) for s in bank.source_index}
    with pytest.raises(ShardFormatError, match=r"shard-00000.h5: generated from synthetic/train with 68 points, "
                                               r"but the bench trains on synthetic/test"):
        load_augmented(directory, SIZE, sources, DatasetSpec("synthetic", split="test"), 68)
    with pytest.raises(ShardFormatError, match="with 98"):
        load_augmented(directory, SIZE, sources, TRAIN, 98)
    with pytest.raises(ShardFormatError, match="on wflw/train"):
        load_augmented(directory, SIZE, sources, DatasetSpec("wflw"), 68)


def test_every_variant_trains_the_same_steps_and_seeds(shards, tmp_path):
    directory, _ = shards
    config = BenchConfig(detector="lafin-gl", model={"width_mult": 0.25}, train=TRAIN,
                         test=DatasetSpec("synthetic", split="test", count=6), aug=str(directory), seeds=2, steps=3,
                         batch=4, size=SIZE)
    results = run_bench(config, tmp_path, progress=False)
    assert sorted(results.columns) == sorted(["detector", "variant", "seed", "subset", "nme", "fr10", "auc10", "n",
                                              "precision"])
    assert set(results["precision"]) <= {"fp32", "bf16"}
    assert len(results) == 3 * 2 and set(results["variant"]) == {"none", "classic", "lafin"}
    configs = {}
    for variant in ("none", "classic", "lafin"):
        for seed in range(2):
            run = tmp_path / "runs" / f"{variant}-seed{seed}"
            steps = [int(line.split(",")[0]) for line in (run / "log.csv").read_text().splitlines()[1:]]
            assert steps[-1] == 3
            train = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["header"]["train_config"]
            assert train["seed"] == seed
            configs[(variant, seed)] = train
    assert configs[("none", 0)] == configs[("classic", 0)] == configs[("lafin", 0)]
    for name in ("results.csv", "summary.md", "ced.png"):
        assert (tmp_path / name).is_file()
    # a rerun reuses every cached run and gives the same numbers
    stamp = (tmp_path / "runs" / "lafin-seed1" / "results.json").stat().st_mtime_ns
    again = run_bench(config, tmp_path, progress=False)
    assert (tmp_path / "runs" / "lafin-seed1" / "results.json").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again, results)


def test_identical_command_reproduces_the_numbers(shards, tmp_path):
    directory, _ = shards
    config = BenchConfig(detector="lab", model={"stacks": 1, "width": 8, "depth": 2}, train=TRAIN,
                         test=DatasetSpec("synthetic", split="test", count=4), aug=str(directory), seeds=1, steps=2,
                         batch=4, size=SIZE, variants=("lafin",))
    first = run_bench(config, tmp_path / "a", progress=False)
    second = run_bench(config, tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(first, second)


def test_cached_run_with_another_config_is_refused(shards, tmp_path):
    config = BenchConfig(detector="lafin-gl", model={"width_mult": 0.25}, train=TRAIN,
                         test=DatasetSpec("synthetic", split="test", count=4), seeds=1, steps=2, batch=4, size=SIZE,
                         variants=("none",))
    run_bench(config, tmp_path, progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        run_bench(BenchConfig(**{**config.__dict__, "steps": 3}), tmp_path, progress=False)
    # a run cached before a model default changed in the code is refused too
    cached = tmp_path / "runs" / "none-seed0" / "results.json"
    stored = json.loads(cached.read_text())
    stored["identity"]["model_config"]["width_mult"] = 1.0
    cached.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="another configuration"):
        run_bench(config, tmp_path, progress=False)


def test_summary_reports_mean_std_and_relative_change():
    rows = [("none", 0, 0.10), ("none", 1, 0.12), ("classic", 0, 0.10), ("classic", 1, 0.10),
            ("lafin", 0, 0.09), ("lafin", 1, 0.09)]
    table = pd.DataFrame([{"detector": "lab", "variant": v, "seed": s, "subset": "test", "nme": nme,
                           "fr10": 0.0, "auc10": 0.5, "n": 10} for v, s, nme in rows])
    text = summarise(table)
    assert "| test | none | 0.1100 ± 0.0141 |" in text
    assert "| test | -18.2% | -10.0% |" in text


def test_bench_cli_needs_shards_for_augmented_variants(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--dataset", "synthetic", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--aug" in result.output


def test_add_mix_keeps_the_full_real_batch_and_replace_halves_it(shards):
    from lafin_aug.detectors.sources import MixedSource, RealSource
    directory, bank = shards
    pairs = load_augmented(directory, SIZE, {int(s) for s in bank.source_index}, TRAIN, 68)
    real = RealSource(bank, seed=0)
    extra = PairSource(bank, pairs, seed=0)
    alone = real.batch(2, 4, np.random.default_rng(0))[0]
    added = MixedSource(real, extra, "add").batch(2, 4, np.random.default_rng(0))[0]
    replaced = MixedSource(real, extra, "replace").batch(2, 4, np.random.default_rng(0))[0]
    assert len(added) == 8 and np.array_equal(added[:4], alone)
    assert len(replaced) == 4 and np.array_equal(replaced[:2], real.batch(2, 2, np.random.default_rng(0))[0])
    with pytest.raises(ValueError, match="unknown mix 'half'"):
        MixedSource(real, extra, "half")
