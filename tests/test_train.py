"""Trainers: loss goes down, resume is exact, checkpoints load with weights_only, Ctrl-C saves."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from lafin_aug.cli.main import main

from lafin_aug.checkpoint import load_checkpoint
from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.detectors import load_detector
from lafin_aug.detectors.sources import RealSource
from lafin_aug.detectors.trainer import DetectorTrainConfig, DetectorTrainer
from lafin_aug.inpainters import Conditions, load_inpainter
from lafin_aug.inpainters.lafin.config import LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer
from lafin_aug.inpainters.mdr.config import MDRTrainConfig
from lafin_aug.inpainters.mdr.trainer import MDRTrainer
from lafin_aug.trainer import NonFiniteLoss, TrainingInterrupted

pytestmark = pytest.mark.filterwarnings("ignore:VGG-19")


@pytest.fixture(scope="module")
def bank():
    return crop_dataset(open_dataset("synthetic", count=12, seed=3), 32, progress=False)


def inpainter_config(**overrides) -> LafinTrainConfig:
    base = dict(size=32, steps=4, batch=2, width=8, blocks=1, disc_width=8, vgg_weights="random",
                device="cpu", log_every=1, sample_every=2, checkpoint_every=2)
    return LafinTrainConfig(**{**base, **overrides})


def detector_config(**overrides) -> DetectorTrainConfig:
    base = dict(detector="lab", model={"stacks": 1, "width": 8, "depth": 2}, size=32, steps=4, batch=4,
                device="cpu", log_every=1, sample_every=2, checkpoint_every=2)
    return DetectorTrainConfig(**{**base, **overrides})


def test_inpainter_loss_drops_on_a_fixed_batch(bank, tmp_path):
    trainer = LafinTrainer(inpainter_config(lr_g=1e-3), tmp_path / "run", bank=bank, progress=False)
    batch = trainer.batch(0)
    first = trainer.train_step(batch)["pixel"]
    for _ in range(25):
        last = trainer.train_step(batch)["pixel"]
    assert last < 0.7 * first


def test_inpainter_resume_is_bit_exact(bank, tmp_path):
    straight = LafinTrainer(inpainter_config(), tmp_path / "a", bank=bank, progress=False)
    straight.fit()
    LafinTrainer(inpainter_config(), tmp_path / "b", bank=bank, progress=False).fit(until=2)
    resumed = LafinTrainer(inpainter_config(), tmp_path / "b", resume=True, bank=bank, progress=False)
    assert resumed.step == 2
    resumed.fit()
    for name, tensor in straight.generator.state_dict().items():
        assert torch.equal(tensor, resumed.generator.state_dict()[name]), name
    for name, tensor in straight.discriminator.state_dict().items():
        assert torch.equal(tensor, resumed.discriminator.state_dict()[name]), name
    rows = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert (tmp_path / "b" / "samples" / "step-0000004.png").is_file()


def test_inpainter_checkpoint_rebuilds_model_with_weights_only(bank, tmp_path):
    trainer = LafinTrainer(inpainter_config(steps=2), tmp_path / "run", bank=bank, progress=False)
    path = trainer.fit()
    raw = torch.load(path, weights_only=True)
    header = raw["header"]
    assert header["losses"] == {"vgg": "random"} and header["config"]["width"] == 8
    assert (header["format"], header["version"], header["family"]) == ("lafin-aug-inpainter", 2, "lafin")
    assert (header["size"], header["points"], header["step"]) == (32, 68, 2)
    assert header["precision"] in ("fp32", "bf16") and header["train_config"]["precision"] == "auto"
    model, loaded = load_inpainter(path)
    assert loaded.to_dict() == header
    image = torch.rand(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    points = torch.from_numpy(bank.landmarks[:1])
    trainer.generator.eval()
    assert torch.equal(model(image, mask, Conditions(points)), trainer.generator(image, mask, Conditions(points)))


def test_checkpoint_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"kind": "lafin-aug-inpainter", "payload": np.random.default_rng(0)}, path)
    with pytest.raises(ValueError, match="evil.pt"):
        load_checkpoint(path)


def test_run_directory_is_not_overwritten(bank, tmp_path):
    LafinTrainer(inpainter_config(steps=1), tmp_path / "run", bank=bank, progress=False).fit()
    with pytest.raises(FileExistsError, match="--resume"):
        LafinTrainer(inpainter_config(steps=1), tmp_path / "run", bank=bank, progress=False)


def test_interrupt_saves_a_checkpoint_and_stops(bank, tmp_path):
    trainer = LafinTrainer(inpainter_config(steps=10, checkpoint_every=100), tmp_path / "run", bank=bank,
                               progress=False)
    real_step = trainer.train_step

    def step_then_interrupt(batch):
        values = real_step(batch)
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return values

    trainer.train_step = step_then_interrupt
    with pytest.raises(TrainingInterrupted, match="interrupted at step 3; continue with --resume"):
        trainer.fit()
    assert trainer.step == 3
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["header"]["step"] == 3


def test_ctrl_c_on_the_command_line_exits_130_saying_how_to_continue(tmp_path, monkeypatch):
    real_step = LafinTrainer.train_step

    def step_then_interrupt(self, batch):
        values = real_step(self, batch)
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return values

    monkeypatch.setattr(LafinTrainer, "train_step", step_then_interrupt)
    result = CliRunner().invoke(main, ["train", "inpainter", "--count", "4", "--size", "32", "--steps", "5",
                                       "--batch", "2", "--model", "width=8", "--model", "blocks=1",
                                       "--model", "vgg_weights=off", "--device", "cpu", "--out", str(tmp_path / "r")])
    assert result.exit_code == 130
    assert f"interrupted at step 2; continue with --resume (checkpoint {tmp_path / 'r'}" in result.output
    assert "Traceback" not in result.output


def test_a_non_finite_loss_stops_the_run_naming_the_step(bank, tmp_path):
    trainer = LafinTrainer(inpainter_config(steps=6, checkpoint_every=2), tmp_path / "run", bank=bank, progress=False)
    real_step = trainer.train_step
    trainer.train_step = lambda batch: {**real_step(batch), **({"pixel": float("nan")} if trainer.step == 3 else {})}
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss at step 4 \({'pixel': nan}\)"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["header"]["step"] == 2


def test_detector_learns_and_resumes_exactly(bank, tmp_path):
    source = RealSource(bank, seed=0)
    straight = DetectorTrainer(detector_config(), tmp_path / "a", source=source, points=68, progress=False)
    straight.fit()
    DetectorTrainer(detector_config(), tmp_path / "b", source=source, points=68, progress=False).fit(until=2)
    resumed = DetectorTrainer(detector_config(), tmp_path / "b", source=source, points=68, resume=True,
                              progress=False)
    resumed.fit()
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    model, header = load_detector(tmp_path / "b" / "checkpoints" / "last.pt")
    assert header.family == "lab" and model.config.stacks == 1


def test_weights_that_do_not_fit_their_config_name_the_file(bank, tmp_path):
    DetectorTrainer(detector_config(), tmp_path / "run", source=RealSource(bank, seed=0), points=68,
                    progress=False).fit(until=1)
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["header"]["config"]["norm"] = "batch"  # as a LAB checkpoint from before GroupNorm
    stale = tmp_path / "stale.pt"
    torch.save(checkpoint, stale)
    with pytest.raises(ValueError, match=f"{stale}: does not hold LABDetector weights: missing keys .*running_mean"):
        load_detector(stale)
    checkpoint["header"]["config"].update(norm="group", width=16)  # another width than the weights
    torch.save(checkpoint, stale)
    with pytest.raises(ValueError, match=r"boundary.stem.0.weight \(8, 3, 7, 7\) vs \(16, 3, 7, 7\)"):
        load_detector(stale)


def test_lafin_gl_predictor_loss_drops(bank, tmp_path):
    config = detector_config(detector="lafin-gl", model={"width_mult": 0.25}, lr=3e-3, hole_fraction=0.0)
    trainer = DetectorTrainer(config, tmp_path / "run", source=RealSource(bank), points=68, progress=False)
    batch = trainer.batch(0)
    first = trainer.train_step(batch)["total"]
    for _ in range(30):
        last = trainer.train_step(batch)["total"]
    assert last < 0.5 * first


def test_ddp_two_processes_on_cpu(tmp_path):
    """torchrun with the gloo backend, 2 processes, through the real command line."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
               "-m", "lafin_aug.cli.main", "train", "landmarks", "--dataset", "synthetic", "--count", "16",
               "--detector", "lafin-gl", "--model", "width_mult=0.25", "--size", "32", "--steps", "2", "--batch", "2",
               "--device", "cpu", "--out", str(tmp_path / "ddp")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    assert checkpoint["header"]["step"] == 2


def _vgg_input_dtypes(trainer: LafinTrainer) -> set[torch.dtype]:
    """The dtypes the VGG-19 loss network's first conv sees during one training step."""
    seen: set[torch.dtype] = set()
    handle = trainer.loss.vgg.features[0].register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    trainer.train_step(trainer.batch(0))
    handle.remove()
    return seen


@pytest.mark.parametrize("family", ["lafin", "mdr"])
def test_fast_step_keeps_fp32_losses_bit_for_bit(bank, tmp_path, family):
    """fast_step only removes work in fp32: the loss values of the first steps are identical."""
    curves = []
    for fast in (False, True):
        config = dict(size=32, batch=2, vgg_weights="random", disc_width=8, device="cpu", precision="fp32",
                      sample_every=0, fast_step=fast)
        if family == "lafin":
            trainer = LafinTrainer(LafinTrainConfig(width=8, blocks=1, steps=3, **config), tmp_path / f"l{fast}",
                                   bank=bank, progress=False)
        else:
            trainer = MDRTrainer(MDRTrainConfig(width=8, recon_steps=0, coarse_steps=0, steps=3, **config),
                                 tmp_path / f"m{fast}", bank=bank, progress=False)
        curves.append([trainer.train_step(trainer.batch(step)) for step in range(3)])
        discriminator = list(trainer.discriminator.parameters())
        assert all(p.requires_grad for p in discriminator)
        if family == "mdr":  # its generator update clears every gradient first: what is left came from it
            judges = discriminator + list(trainer.reconstruction.parameters())
            assert all(p.grad is None for p in judges) == fast
            assert all(p.requires_grad for p in judges)
    assert curves[0] == curves[1]


@pytest.mark.filterwarnings("ignore:VGG-19")
def test_fast_step_runs_the_vgg_loss_network_at_the_run_precision(bank, tmp_path):
    def trainer(fast: bool) -> LafinTrainer:
        config = inpainter_config(vgg_weights="random", precision="bf16", fast_step=fast)
        return LafinTrainer(config, tmp_path / str(fast), bank=bank, progress=False)

    assert _vgg_input_dtypes(trainer(True)) == {torch.bfloat16}
    assert _vgg_input_dtypes(trainer(False)) == {torch.float32}
