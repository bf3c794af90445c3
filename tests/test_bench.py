"""The benchmark protocol: variants trained alike, the classic control uses the pairs' masks, caching, variant
names, per-face NMEs and the paired comparison."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from lafin_aug.cli.main import main

from lafin_aug.bench import (BenchConfig, PairSource, detector_training, load_augmented, paired_table,
                             resolve_variants, run_bench, shard_sets, summarise)
from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.generate import GenerateConfig, generate
from lafin_aug.inpainters.lafin.config import LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer
from lafin_aug.shards import ShardFormatError

SIZE = 32
TRAIN = DatasetSpec("synthetic", count=8)  # what `bench --dataset synthetic --count 8` trains on


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    bank = crop_dataset(open_dataset("synthetic", count=8), SIZE, progress=False)
    config = LafinTrainConfig(size=SIZE, steps=1, batch=2, width=8, blocks=1, disc_width=8, vgg_weights="off",
                                  device="cpu", sample_every=0)
    checkpoint = LafinTrainer(config, root / "inpainter", bank=bank, progress=False).fit()
    generate(GenerateConfig(data=TRAIN, inpainter=str(checkpoint), epochs=2, device="cpu"), root / "shards",
             bank=bank, progress=False)
    return root / "shards", bank


def test_classic_and_pairs_draw_the_same_faces_epochs_and_masks(shards):
    directory, bank = shards
    pairs = load_augmented(directory, SIZE, {int(s) for s in bank.source_index}, TRAIN, 68)
    assert pairs.epochs == 2 and len(pairs.lookup) == 16
    rng = np.random.default_rng(0)
    generated = PairSource(bank, pairs, seed=0, fill="generated")
    classic = PairSource(bank, pairs, seed=0, fill="telea")
    assert np.array_equal(generated.batch(3, 6, rng)[1], classic.batch(3, 6, rng)[1])
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
    config = BenchConfig(training=detector_training(detector="lafin-gl", model={"width_mult": 0.25}, data=TRAIN,
                                                    steps=3, batch=4, size=SIZE),
                         test=DatasetSpec("synthetic", split="test", count=6), pairs=(("", str(directory)),), seeds=2)
    results = run_bench(config, tmp_path, progress=False)
    assert list(results.columns) == ["detector", "variant", "seed", "subset", "nme", "fr10", "auc10", "n",
                                     "precision"]
    assert set(results["precision"]) <= {"fp32", "bf16"}
    assert len(results) == 3 * 2 and set(results["variant"]) == {"none", "classic", "pairs"}
    configs = {}
    for variant in ("none", "classic", "pairs"):
        for seed in range(2):
            run = tmp_path / "runs" / f"{variant}-seed{seed}"
            steps = [int(line.split(",")[0]) for line in (run / "log.csv").read_text().splitlines()[1:]]
            assert steps[-1] == 3
            train = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["header"]["train_config"]
            assert train["seed"] == seed and train["checkpoint_every"] == 1 and train["hole_fraction"] == 0.0
            configs[(variant, seed)] = train
    assert configs[("none", 0)] == configs[("classic", 0)] == configs[("pairs", 0)]
    for name in ("results.csv", "per_face.csv", "paired.csv", "summary.md", "ced.png"):
        assert (tmp_path / name).is_file()
    stored = json.loads((tmp_path / "bench.json").read_text())
    assert stored.pop("resolved_variants") == ["none", "classic", "pairs"] and stored.pop("resolved_precision")
    assert BenchConfig.from_dict(stored) == config
    # every test face of every run, and the run's NME is their mean
    per_face = pd.read_csv(tmp_path / "per_face.csv")
    assert len(per_face) == 3 * 2 * 6 and sorted(set(per_face["face"])) == list(range(6))
    means = per_face.groupby(["variant", "seed"])["nme"].mean()
    for _, row in results.iterrows():
        assert means[(row["variant"], row["seed"])] == pytest.approx(row["nme"])
    # the paired mean difference is the difference of the mean NMEs (same faces, same seeds)
    paired = pd.read_csv(tmp_path / "paired.csv")
    assert list(zip(paired["variant"], paired["baseline"])) == [("classic", "none"), ("pairs", "none"),
                                                                ("pairs", "classic")]
    nme = results.groupby("variant")["nme"].mean()
    for _, row in paired.iterrows():
        assert row["mean"] == pytest.approx(nme[row["variant"]] - nme[row["baseline"]])
        assert (row["seeds"], row["n"]) == (2, 6) and 0 <= row["seeds_better"] <= 2
    # a rerun reuses every cached run and gives the same numbers
    stamp = (tmp_path / "runs" / "pairs-seed1" / "results.json").stat().st_mtime_ns
    again = run_bench(config, tmp_path, progress=False)
    assert (tmp_path / "runs" / "pairs-seed1" / "results.json").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again, results)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "paired.csv"), paired)


def test_identical_command_reproduces_the_numbers(shards, tmp_path):
    directory, _ = shards
    config = BenchConfig(training=detector_training(detector="lab", model={"stacks": 1, "width": 8, "depth": 2},
                                                    data=TRAIN, steps=2, batch=4, size=SIZE),
                         test=DatasetSpec("synthetic", split="test", count=4), pairs=(("", str(directory)),), seeds=1,
                         variants=("pairs",))
    first = run_bench(config, tmp_path / "a", progress=False)
    second = run_bench(config, tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(first, second)


def test_cached_run_with_another_config_is_refused(shards, tmp_path):
    config = BenchConfig(training=detector_training(detector="lafin-gl", model={"width_mult": 0.25}, data=TRAIN,
                                                    steps=2, batch=4, size=SIZE),
                         test=DatasetSpec("synthetic", split="test", count=4), seeds=1, variants=("none",))
    run_bench(config, tmp_path, progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        run_bench(config.replace(training=config.training.replace(steps=3)), tmp_path, progress=False)
    # a run cached before a model default changed in the code is refused too
    cached = tmp_path / "runs" / "none-seed0" / "results.json"
    stored = json.loads(cached.read_text())
    stored["identity"]["model_config"]["width_mult"] = 1.0
    cached.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="another configuration"):
        run_bench(config, tmp_path, progress=False)


def test_pairs_expands_to_every_shard_set_and_lafin_is_its_old_name():
    one, two = (("", "d"),), (("lafin", "d1"), ("mdr", "d2"))
    assert resolve_variants(("none", "classic", "lafin"), one) == ("none", "classic", "pairs")
    assert resolve_variants(("none", "pairs"), two) == ("none", "pairs:lafin", "pairs:mdr")
    assert resolve_variants(("pairs:mdr", "lafin"), two) == ("pairs:mdr", "pairs:lafin")
    with pytest.raises(ValueError, match=r"unknown variant 'pairs:lama' \(known: none, classic, pairs, "
                                         r"pairs:lafin, pairs:mdr; alias: lafin = pairs\)"):
        resolve_variants(("pairs:lama",), two)
    with pytest.raises(ValueError, match="variant 'classic' needs augmented pairs"):
        resolve_variants(("none", "classic"), ())
    for names in ((("", "d1"), ("mdr", "d2")), (("mdr", "d1"), ("mdr", "d2")), (("a/b", "d1"),)):
        with pytest.raises(ValueError, match="shard set names"):
            resolve_variants(("none",), names)


def test_classic_uses_the_first_shard_set_and_each_set_is_loaded_once(shards, tmp_path):
    directory, bank = shards
    (tmp_path / "second").symlink_to(directory)
    config = BenchConfig(training=detector_training(data=TRAIN, size=SIZE),
                         pairs=(("a", str(directory)), ("b", str(tmp_path / "second"))))
    sets = shard_sets(config, ("none", "classic", "pairs:b"), bank)
    assert sorted(sets) == ["classic", "pairs:b"]
    assert sets["classic"].directory == str(directory) and sets["pairs:b"].directory == str(tmp_path / "second")
    sets = shard_sets(config, ("pairs:a", "classic"), bank)
    assert sets["classic"] is sets["pairs:a"]


def test_summary_reports_mean_std_and_the_paired_comparison():
    nmes = {("none", 0): [0.10, 0.10], ("none", 1): [0.12, 0.12], ("classic", 0): [0.10, 0.10],
            ("classic", 1): [0.10, 0.10], ("pairs", 0): [0.08, 0.10], ("pairs", 1): [0.08, 0.10]}
    per_face = pd.DataFrame([(v, s, "test", face, nme) for (v, s), values in nmes.items()
                             for face, nme in enumerate(values)], columns=["variant", "seed", "subset", "face", "nme"])
    results = per_face.groupby(["variant", "seed", "subset"], sort=False)["nme"].mean().reset_index()
    results = results.assign(detector="lab", fr10=0.0, auc10=0.5, n=2)
    paired = paired_table(per_face)
    text = summarise(results, paired)
    assert "| test | none | 0.1100 ± 0.0141 |" in text
    # pairs - none per face: seed 0 [-0.02, 0], seed 1 [-0.04, -0.02] -> averaged [-0.03, -0.01]: mean -0.02,
    # SE std([-0.03, -0.01]) / sqrt(2) = 0.01; both faces better; both seeds better; -0.02 / 0.11 = -18.2 %
    assert "| test | pairs | none | -18.2% | -0.0200 ± 0.0100 | 100.0% | 2/2 |" in text
    # pairs - classic per face [-0.02, 0]: the second face is a tie, not an improvement
    assert "| test | pairs | classic | -10.0% | -0.0100 ± 0.0100 | 50.0% | 2/2 |" in text
    # classic - none: seed 0 ties, seed 1 better
    assert "| test | classic | none | -9.1% | -0.0100 ± 0.0000 | 100.0% | 1/2 |" in text
    assert list(paired["baseline_nme"]) == pytest.approx([0.11, 0.11, 0.10])


def test_bench_cli_needs_shards_for_augmented_variants(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--dataset", "synthetic", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--aug" in result.output


def test_bench_cli_names_the_pairs_by_their_shard_set_and_keeps_the_lafin_alias(shards, tmp_path):
    directory, _ = shards
    seeds = next(p for p in main.commands["bench"].params if p.name == "seeds")
    assert seeds.default == 3  # the documented protocol; the tests pass --seeds
    result = CliRunner().invoke(main, [
        "bench", "--dataset", "synthetic", "--count", "8", "--detector", "lafin-gl", "--model", "width_mult=0.25",
        "--size", str(SIZE), "--steps", "1", "--batch", "4", "--seeds", "1", "--aug", f"lafin={directory}",
        "--variants", "none,lafin", "--device", "cpu", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(tmp_path / "results.csv")["variant"]) == ["none", "pairs:lafin"]
    assert (tmp_path / "runs" / "pairs-lafin-seed0" / "results.json").is_file()
    assert "| test | pairs:lafin | none |" in result.output
    result = CliRunner().invoke(main, ["bench", "--dataset", "synthetic", "--aug", f"lafin={directory}",
                                       "--variants", "pairs:mdr", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown variant 'pairs:mdr'" in result.output


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
