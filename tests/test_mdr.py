"""MDRNets as a family: the generator, its three-stage trainer (exact resume, memory slots included),
and the rest of the toolkit (generate, verify, preview, OnTheFlyAugment, eval-inpaint, bench) unchanged."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from lafin_aug.cli.main import main

from lafin_aug.checkpoint import load_checkpoint
from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.inpainters import FAMILIES, composite, load_inpainter
from lafin_aug.inpainters.mdr import MDRConfig, MDRGenerator, MDRTrainConfig
from lafin_aug.inpainters.mdr.trainer import MDRTrainer

SIZE = 32
TINY = dict(width=8, coarse_width=8, coarse_depth=4, style_channels=16, slots=4, blocks=1, spade_blocks=1,
            disc_width=8, recon_width=8, vgg_weights="off")


def config(**overrides) -> MDRTrainConfig:
    base = dict(data=DatasetSpec("synthetic", count=8, seed=4), size=SIZE, steps=7, batch=2, recon_steps=2,
                coarse_steps=2, device="cpu", precision="fp32", log_every=1, sample_every=7, checkpoint_every=3,
                **TINY)
    return MDRTrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def bank():
    return crop_dataset(open_dataset("synthetic", count=8, seed=4), SIZE, progress=False)


@pytest.fixture(scope="module")
def trained(bank, tmp_path_factory):
    run = tmp_path_factory.mktemp("mdr") / "run"
    MDRTrainer(config(), run, bank=bank, progress=False).fit()
    return run


def _batch(size: int = SIZE):
    torch.manual_seed(0)
    image = torch.rand(2, 3, size, size)
    mask = torch.zeros(2, 1, size, size)
    mask[..., 4:20, 6:26] = 1
    landmarks = torch.rand(2, 68, 2) * (size - 12) + 6
    return image, mask, FAMILIES.get("mdr").conditions(landmarks, size)


def test_generator_shapes_range_and_composite_keeps_known_pixels():
    model = MDRGenerator(MDRConfig(**{k: v for k, v in TINY.items() if k in MDRConfig.__dataclass_fields__})).eval()
    image, mask, conditions = _batch()
    with torch.no_grad():
        stages = model.run(image, mask, conditions)
        other = torch.where(mask > 0.5, torch.rand_like(image), image)
        assert torch.equal(model(other, mask, conditions), stages["output"])  # the hole is never seen
    assert stages["output"].shape == stages["coarse"].shape == (2, 3, SIZE, SIZE)
    assert 0 <= stages["output"].min() and stages["output"].max() <= 1
    known = (mask < 0.5).expand_as(image)
    assert torch.equal(composite(stages["output"], image, mask)[known], image[known])
    assert torch.equal(stages["composited_coarse"][known], image[known])


def test_generator_needs_the_parsing_map_and_fitting_sizes():
    model = MDRGenerator(MDRConfig(coarse_depth=4, width=8, coarse_width=8, style_channels=16))
    image, mask, conditions = _batch()
    with pytest.raises(ValueError, match="needs conditions.parsing"):
        model(image, mask, type(conditions)(conditions.landmarks))
    with pytest.raises(ValueError, match="multiples of 16"):
        model(image[..., :24, :24], mask[..., :24, :24], conditions)


def test_memory_slots_move_only_in_training_from_known_classes():
    model = MDRGenerator(MDRConfig(coarse_depth=4, width=8, coarse_width=8, style_channels=16, slots=4))
    image, mask, conditions = _batch()
    before = model.memory.slots.clone()
    with torch.no_grad():
        model.run(image, mask, conditions)
    assert torch.equal(model.memory.slots, before)  # reading never writes
    with torch.no_grad():
        model.run(image, mask, conditions, update_memory=True)
    moved = (model.memory.slots != before).any(-1)  # [K, m]
    assert moved.any() and (moved.sum(-1) <= 2).all()  # at most one slot per class and sample (batch 2)
    background = 0
    assert moved[background].any()  # the corners are background and known


def test_stages_run_in_order_and_log_their_own_terms(trained):
    header = load_checkpoint(trained / "checkpoints" / "last.pt")["header"]
    assert (header["family"], header["step"]) == ("mdr", 7)
    assert header["losses"]["semantic_map"] == "landmarks" and header["losses"]["semantic"].startswith("off")
    log = (trained / "log.csv").read_text().splitlines()
    columns = log[0].split(",")
    rows = [dict(zip(columns, line.split(","))) for line in log[1:]]
    assert [r["step"] for r in rows] == [str(s) for s in range(1, 8)]
    assert rows[0]["recon_l1"] and not rows[0]["coarse_hole"]
    assert rows[2]["coarse_hole"] and not rows[2]["inco2"]
    assert rows[6]["inco2"] and rows[6]["adversarial"]
    assert (trained / "samples" / "step-0000007.png").is_file()


def test_resume_is_bit_exact_in_every_stage_memory_included(bank, trained, tmp_path):
    for stop in (1, 3, 5):  # inside the reconstruction, coarse and refine stages
        run = tmp_path / f"stop{stop}"
        MDRTrainer(config(), run, bank=bank, progress=False).fit(until=stop)
        MDRTrainer(config(), run, resume=True, bank=bank, progress=False).fit()
        resumed = load_checkpoint(run / "checkpoints" / "last.pt")
        straight = load_checkpoint(trained / "checkpoints" / "last.pt")
        for key in ("generator", "reconstruction", "discriminator"):
            for name, tensor in straight[key].items():
                assert torch.equal(tensor, resumed[key][name]), (stop, key, name)
    assert not torch.equal(straight["generator"]["memory.slots"],
                           MDRGenerator(MDRConfig(**{k: v for k, v in TINY.items()
                                                     if k in MDRConfig.__dataclass_fields__})).memory.slots)


def test_the_coarse_network_is_frozen_after_its_stage(bank, tmp_path):
    run = tmp_path / "run"
    trainer = MDRTrainer(config(), run, bank=bank, progress=False)
    trainer.fit(until=4)
    coarse = {k: v.clone() for k, v in trainer.generator.coarse.state_dict().items()}
    trainer.fit()
    assert all(torch.equal(coarse[k], v) for k, v in trainer.generator.coarse.state_dict().items())


def test_weights_only_loading_rebuilds_the_generator(trained):
    model, header = load_inpainter(trained)
    assert isinstance(model, MDRGenerator) and header.config["slots"] == 4
    raw = torch.load(trained / "checkpoints" / "last.pt", weights_only=True)
    assert torch.equal(model.memory.slots, raw["generator"]["memory.slots"])


def test_the_toolkit_runs_the_family_unchanged(trained, tmp_path):
    runner = CliRunner()
    shards = tmp_path / "shards"
    result = runner.invoke(main, ["generate", "--dataset", "synthetic", "--count", "6", "--inpainter", str(trained),
                                  "--epochs", "2", "--out", str(shards), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["verify", str(shards)]).exit_code == 0
    assert runner.invoke(main, ["preview", str(shards), "--out", str(tmp_path / "p.png"), "--n", "4"]).exit_code == 0
    assert json.loads((shards / "run.json").read_text())["inpainter"]["family"] == "mdr"

    from lafin_aug import OnTheFlyAugment
    stream = OnTheFlyAugment(crop_dataset(open_dataset("synthetic", count=4), SIZE, progress=False), trained,
                             batch=2)
    records = list(stream)
    assert len(records) == 4 and records[0]["image"].shape == (3, SIZE, SIZE)
    assert all((r["mask"] > 0).any() for r in records)


def test_consistency_loss_trains_through_a_frozen_detector(bank, tmp_path):
    from lafin_aug.detectors.sources import RealSource
    from lafin_aug.detectors.trainer import DetectorTrainConfig, DetectorTrainer
    judge = DetectorTrainer(DetectorTrainConfig(detector="lafin-gl", model={"width_mult": 0.25}, size=SIZE, steps=1,
                                                batch=2, device="cpu", sample_every=0),
                            tmp_path / "judge", source=RealSource(bank), points=68, progress=False).fit()
    trainer = MDRTrainer(config(consistency=0.5, consistency_detector=str(judge)), tmp_path / "run", bank=bank,
                         progress=False)
    before = {k: v.clone() for k, v in trainer.judge.state_dict().items()}
    trainer.fit()
    assert all(torch.equal(before[k], v) for k, v in trainer.judge.state_dict().items())  # frozen
    header = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["header"]
    assert header["losses"]["consistency"] == {"detector": str(judge), "weight": 0.5}
    assert "consistency" in (tmp_path / "run" / "log.csv").read_text().splitlines()[0]
    result = trainer.generator.run(*_batch()[:2], _batch()[2])["output"]
    loss = trainer.consistency_loss(result, _batch()[2].landmarks)
    loss.backward()
    assert loss.item() > 0 and trainer.generator.refine.to_rgb.weight.grad is not None


def test_stage_steps_must_leave_room_for_refinement():
    with pytest.raises(ValueError, match="must leave refinement steps"):
        config(steps=4, recon_steps=2, coarse_steps=2)


def test_eval_inpaint_puts_families_side_by_side_with_landmark_fidelity(bank, trained, tmp_path):
    from lafin_aug.detectors.sources import RealSource
    from lafin_aug.detectors.trainer import DetectorTrainConfig, DetectorTrainer
    from lafin_aug.inpainters.lafin import LafinTrainConfig
    from lafin_aug.inpainters.lafin.trainer import LafinTrainer
    lafin = LafinTrainer(LafinTrainConfig(size=SIZE, steps=1, batch=2, width=8, blocks=1, disc_width=8,
                                          vgg_weights="off", device="cpu", sample_every=0),
                         tmp_path / "lafin", bank=bank, progress=False).fit()
    judge = DetectorTrainer(DetectorTrainConfig(detector="lafin-gl", model={"width_mult": 0.25}, size=SIZE, steps=1,
                                                batch=2, device="cpu", sample_every=0),
                            tmp_path / "judge", source=RealSource(bank), points=68, progress=False).fit()
    result = CliRunner().invoke(main, ["eval-inpaint", "--inpainter", str(lafin), "--inpainter", str(trained),
                                       "--fidelity", str(judge), "--dataset", "synthetic", "--split", "test",
                                       "--count", "3", "--size", str(SIZE), "--device", "cpu",
                                       "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "| bucket | hole" in line)
    assert all(f"{m} PSNR" in header for m in ("lafin", "mdr", "telea", "ns"))
    for bucket in ("10-20", "50+", "centre", "1-20", "20-40", "40-60"):
        assert f"| {bucket} |" in result.output
    assert "Landmark fidelity" in result.output and "| bucket | lafin | mdr | telea | ns |" in result.output
    rows = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} >= {"fidelity:real", "fidelity:lafin", "fidelity:mdr", "fidelity:telea"}
    named = CliRunner().invoke(main, ["eval-inpaint", "--inpainter", f"small={lafin}", "--inpainter", f"ours={trained}",
                                      "--dataset", "synthetic", "--count", "2", "--size", str(SIZE), "--device", "cpu",
                                      "--out", str(tmp_path / "named")])
    assert named.exit_code == 0 and "small PSNR" in named.output and "ours PSNR" in named.output


_DDP_WORKER = """
import sys, torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
from test_mdr import config
from lafin_aug.inpainters.mdr.trainer import MDRTrainer

trainer = MDRTrainer(config(sample_every=0), {run!r}, progress=False)
trainer.fit()
torch.save({{"generator": trainer.generator.state_dict(), "reconstruction": trainer.reconstruction.state_dict(),
             "discriminator": trainer.discriminator.state_dict(), "faces": trainer.batch(5)["image"]}},
           {out!r}.format(dist.get_rank()))
"""


def test_ddp_ranks_hold_the_same_mdr_weights_and_memory_after_every_stage(tmp_path):
    """torchrun, gloo, 2 processes on different faces: after all three stages every network and the
    memory slots are identical on both ranks (without averaging, the stages' networks would diverge)."""
    script = tmp_path / "worker.py"
    out = str(tmp_path / "rank{}.pt")
    script.write_text(_DDP_WORKER.format(tests=str(Path(__file__).parent), run=str(tmp_path / "run"), out=out))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(out.format(rank), weights_only=True) for rank in (0, 1)]
    assert not torch.equal(ranks[0]["faces"], ranks[1]["faces"])  # each rank trained on its own faces
    for key in ("generator", "reconstruction", "discriminator"):
        for name, tensor in ranks[0][key].items():
            assert torch.equal(tensor, ranks[1][key][name]), (key, name)
    start = MDRGenerator(MDRConfig(**{k: v for k, v in TINY.items() if k in MDRConfig.__dataclass_fields__}))
    for name in ("memory.slots", "coarse.encoders.0.conv.conv.weight"):  # both trained: moved from the start
        assert not torch.equal(ranks[0]["generator"][name], start.state_dict()[name]), name
