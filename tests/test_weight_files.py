"""Every weight file a user passes fails as one line naming it: junk, truncated, or of another network."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from lafin_aug.cli.main import main
from torch import nn

from lafin_aug.checkpoint import CheckpointError, read_torch_file
from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.detectors import load_detector
from lafin_aug.inpainters import export_inpainter, load_inpainter
from lafin_aug.inpainters.lafin import LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer
from lafin_aug.labelers import FACE_DETECTORS, LABELERS, BackendOptions
from lafin_aug.labelers.fan_backend import SfdDetector, load_fan
from lafin_aug.models.vgg import load_vgg19

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _foreign_state() -> dict[str, torch.Tensor]:
    """A valid state dict of another network."""
    return nn.Linear(3, 4).state_dict()


def _foreign_checkpoint(checkpoint: Path, key: str) -> Callable[[], dict]:
    """A valid lafin-aug checkpoint whose `key` weights belong to another network."""
    return lambda: {**torch.load(checkpoint, weights_only=True), key: _foreign_state()}


def _resume(path: Path) -> object:
    """Resume the training run whose last checkpoint is `path` (RUN/checkpoints/last.pt)."""
    bank = crop_dataset(open_dataset("synthetic", count=2), 32, progress=False)
    config = LafinTrainConfig(size=32, steps=2, batch=2, width=8, blocks=1, disc_width=8, vgg_weights="off",
                              device="cpu", sample_every=0)
    return LafinTrainer(config, path.parents[1], resume=True, bank=bank, progress=False)


@dataclass(frozen=True)
class Loader:
    """One library call that reads a user's weight file: `load(path)`, the file name it reads, what the
    wrong-architecture message calls the weights, and a valid torch payload of another architecture."""

    name: str
    load: Callable[[Path], object]
    file: str
    what: str
    foreign: Callable[[], object]


def loaders(inpainter: Path, detector: Path, export: Path) -> list[Loader]:
    """Every loader of user weight files, given real checkpoints to build foreign payloads from."""
    return [
        Loader("fan", load_fan, "fan.pth", "face-alignment's 2D FAN-4", _foreign_state),
        Loader("s3fd", SfdDetector.from_file, "s3fd.pth", "face-alignment's S3FD face detector", _foreign_state),
        Loader("vgg19", load_vgg19, "vgg19.pth", "torchvision VGG-19", _foreign_state),
        Loader("training checkpoint", _resume, "run/checkpoints/last.pt", "LafinGenerator",
               _foreign_checkpoint(inpainter, "generator")),
        Loader("exported inpainter", load_inpainter, "export.pt", "LafinGenerator",
               _foreign_checkpoint(export, "generator")),
        Loader("detector checkpoint", load_detector, "detector.pt", "LafinGLDetector",
               _foreign_checkpoint(detector, "model")),
    ]


LOADER_NAMES = ["fan", "s3fd", "vgg19", "training checkpoint", "exported inpainter", "detector checkpoint"]


@pytest.fixture(scope="module")
def by_name(tiny_runs, tmp_path_factory) -> dict[str, Loader]:
    inpainter, detector = tiny_runs
    export = tmp_path_factory.mktemp("export") / "export.pt"
    export_inpainter(inpainter, export)
    found = {loader.name: loader for loader in loaders(inpainter, detector, export)}
    assert list(found) == LOADER_NAMES
    return found


def _truncated(tmp_path: Path) -> bytes:
    """The first half of a real (small) torch file."""
    torch.save(_foreign_state(), tmp_path / "whole.pt")
    data = (tmp_path / "whole.pt").read_bytes()
    return data[: len(data) // 2]


def _failure(loader: Loader, path: Path) -> str:
    """The message of the CheckpointError `loader` raises on `path`, checked to be one line naming it."""
    with pytest.raises(CheckpointError) as error:
        loader.load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and "weights_only" not in message
    return message


def _place(tmp_path: Path, loader: Loader, content: bytes) -> Path:
    path = tmp_path / loader.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("name", LOADER_NAMES)
def test_junk_bytes_are_not_a_readable_torch_file(by_name, name, tmp_path):
    loader = by_name[name]
    path = _place(tmp_path, loader, np.random.default_rng(0).bytes(999))
    assert "not a readable torch weight file (neither a torch zip archive" in _failure(loader, path)


@pytest.mark.parametrize("name", LOADER_NAMES)
def test_a_truncated_torch_file_is_named(by_name, name, tmp_path):
    loader = by_name[name]
    path = _place(tmp_path, loader, _truncated(tmp_path))
    assert "not a readable torch weight file (a damaged or truncated zip archive" in _failure(loader, path)


@pytest.mark.parametrize("name", LOADER_NAMES)
def test_weights_of_another_network_list_the_missing_keys(by_name, name, tmp_path):
    loader = by_name[name]
    path = tmp_path / loader.file
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(loader.foreign(), path)
    message = _failure(loader, path)
    assert message.startswith(f"{path}: does not hold {loader.what} weights: missing keys ")
    assert "in all)" in message


@pytest.mark.parametrize("content, reason", [
    (b"", "the file is empty"),
    (b"\x80\x02" + bytes(range(256)), "neither a torch zip archive nor an intact legacy torch file"),
])
def test_each_failure_has_its_reason(tmp_path, content, reason):
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"^{path}: not a readable torch weight file \\({reason}"):
        read_torch_file(path)


def test_torchscript_and_pickled_code_are_refused_by_name(tmp_path):
    torch.jit.save(torch.jit.script(nn.Linear(3, 4)), tmp_path / "script.pt")
    with pytest.raises(CheckpointError, match=r"script.pt: not a readable torch weight file \(a TorchScript archive"):
        read_torch_file(tmp_path / "script.pt")
    torch.save({"rng": np.random.default_rng(0)}, tmp_path / "code.pt")
    with pytest.raises(CheckpointError, match=r"code.pt: .*holds Python objects other than tensors .*numpy\.random"):
        read_torch_file(tmp_path / "code.pt")


def test_legacy_format_state_dicts_still_load(tmp_path):
    """torchvision's and face-alignment's published files predate torch.save's zip format."""
    state = _foreign_state()
    torch.save(state, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    loaded = read_torch_file(tmp_path / "old.pth")
    assert all(torch.equal(loaded[key], value) for key, value in state.items())


def test_s3fd_from_a_wrapped_state_dict_detects_faces(tmp_path):
    """A state dict under "state_dict" with DataParallel's "module." prefixes loads like a plain one."""
    from face_alignment.detection.sfd.net_s3fd import s3fd

    torch.manual_seed(0)
    net = s3fd()
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "s3fd.pth")
    image = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    loaded = SfdDetector.from_file(tmp_path / "s3fd.pth", threshold=0.0)
    found, expected = loaded.detect(image), SfdDetector(net, threshold=0.0).detect(image)
    assert found and found == expected


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "face.png"), np.full((64, 64, 3), 128, np.uint8))
    return folder


def _label(image_folder: Path, *options: str) -> tuple[int, list[str]]:
    """(exit code, stderr lines) of `lafin-aug label --labeler fan` on the folder."""
    out = image_folder.parent / "out"
    result = CliRunner().invoke(main, ["label", "--images", str(image_folder), "--out", str(out), "--labeler", "fan",
                                       "--device", "cpu", *options])
    assert "Traceback" not in result.output and not isinstance(result.exception, CheckpointError)
    assert not out.exists(), "the weights are read before the output folder is claimed"
    return result.exit_code, result.stderr.strip().splitlines()


@pytest.mark.parametrize("content", [np.random.default_rng(1).bytes(500), None], ids=["junk", "truncated"])
def test_label_with_bad_detector_weights_is_one_error_line(image_folder, tmp_path, content):
    bad = tmp_path / "s3fd.pth"
    bad.write_bytes(_truncated(tmp_path) if content is None else content)
    code, lines = _label(image_folder, "--detector-weights", str(bad), "--fan-weights", str(bad))
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"Error: {bad}: not a readable torch weight file (")


@pytest.mark.parametrize("content", [np.random.default_rng(2).bytes(500), None], ids=["junk", "foreign"])
def test_label_with_bad_fan_weights_is_one_error_line(image_folder, tmp_path, content):
    pytest.importorskip("dlib")
    bad = tmp_path / "fan.pth"
    if content is None:
        torch.save(_foreign_state(), bad)
    else:
        bad.write_bytes(content)
    code, lines = _label(image_folder, "--detector", "dlib", "--fan-weights", str(bad))
    assert code == 1 and len(lines) == 1
    expected = "does not hold face-alignment's 2D FAN-4 weights" if content is None else "not a readable torch"
    assert lines[0].startswith(f"Error: {bad}: {expected}")


def test_the_factories_pass_the_files_through(tmp_path):
    """The registered backends read --fan-weights / --detector-weights through the same loaders."""
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not weights")
    options = BackendOptions(torch.device("cpu"), fan_weights=str(bad), detector_weights=str(bad))
    for factory in (LABELERS.get("fan"), FACE_DETECTORS.get("sfd")):
        with pytest.raises(CheckpointError, match=f"^{bad}: not a readable torch weight file"):
            factory(options)
