"""The hostile probe: damaged inputs and wrong commands, each expected to fail with one clear line.

    .venv/bin/python tests/hostile_probe.py        # prints a table of cases, PASS/FAIL, exit 1 on a FAIL

Each case builds its damaged input in a scratch folder, runs one `lafin-aug` command in-process
(click's CliRunner) and checks the exit status, that the output holds the expected words (naming the
file), and that no traceback is printed. `tests/test_hostile.py` runs the same cases under pytest.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from lafin_aug.cli.main import main

from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.inpainters.lafin import LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer

SIZE = 32


@dataclass(frozen=True)
class Case:
    """One probe: `make(work)` returns the command-line arguments; the run must exit `status` and print `expect`."""

    name: str
    make: Callable[[Path], list[str]]
    status: int
    expect: str


def _inpainter(work: Path) -> Path:
    """A tiny trained LaFIn checkpoint (made once per scratch folder)."""
    path = work / "inpainter" / "checkpoints" / "last.pt"
    if not path.exists():
        bank = crop_dataset(open_dataset("synthetic", count=4), SIZE, progress=False)
        LafinTrainer(LafinTrainConfig(size=SIZE, steps=1, batch=2, width=8, blocks=1, disc_width=8, vgg_weights="off",
                                      device="cpu", sample_every=0), work / "inpainter", bank=bank,
                     progress=False).fit()
    return path


def _shards(work: Path, name: str = "shards", epochs: int = 1, shard_size: int = 4) -> Path:
    out = work / name
    result = CliRunner().invoke(main, ["generate", "--count", "6", "--inpainter", str(_inpainter(work)), "--epochs",
                                       str(epochs), "--shard-size", str(shard_size), "--device", "cpu", "--out",
                                       str(out)])
    assert result.exit_code == 0, result.output
    return out


def _write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _checkpoint_variant(work: Path, change: Callable[[dict], object]) -> Path:
    checkpoint = torch.load(_inpainter(work), weights_only=True)
    path = work / f"variant-{len(list(work.glob('variant-*')))}.pt"
    torch.save(change(checkpoint), path)
    return path


def _truncated_checkpoint(work: Path) -> list[str]:
    data = _inpainter(work).read_bytes()
    return ["generate", "--inpainter", str(_write(work / "half.pt", data[: len(data) // 2])), "--out",
            str(work / "x")]


def _foreign(path: Path) -> Path:
    """A valid torch file holding the state dict of another network."""
    torch.save(torch.nn.Linear(3, 4).state_dict(), path)
    return path


def _label(work: Path, *options: str | Path) -> list[str]:
    """`label --labeler fan` on a folder of one image, with `options`."""
    import cv2
    images = work / "label-images"
    images.mkdir(exist_ok=True)
    cv2.imwrite(str(images / "face.png"), np.full((64, 64, 3), 128, np.uint8))
    return ["label", "--images", str(images), "--out", str(work / "label-out"), "--labeler", "fan", "--device",
            "cpu", *map(str, options)]


def _truncated_shard(work: Path) -> list[str]:
    shards = _shards(work, "truncated")
    victim = shards / "shard-00000.h5"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return ["preview", str(shards), "--out", str(work / "grid.png"), "--n", "2"]


def _partial_run(work: Path) -> list[str]:
    shards = _shards(work, "partial", epochs=2)
    rows = (shards / "manifest.csv").read_text().splitlines()
    (shards / "manifest.csv").write_text("\n".join(rows[:2]) + "\n")
    for row in rows[2:]:
        (shards / row.split(",")[0]).unlink()
    return ["verify", str(shards)]


def _wide_weights(work: Path) -> list[str]:
    def widen(checkpoint: dict) -> dict:
        checkpoint["header"]["config"]["width"] = 16
        return checkpoint
    return ["generate", "--count", "2", "--inpainter", str(_checkpoint_variant(work, widen)), "--out",
            str(work / "x")]


def _rerun_other_epochs(work: Path) -> list[str]:
    shards = _shards(work, "one-config")
    return ["generate", "--count", "6", "--inpainter", str(_inpainter(work)), "--epochs", "2", "--device", "cpu",
            "--out", str(shards)]


def _coco(work: Path, annotation: dict) -> list[str]:
    image = work / "coco" / "face.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    import cv2
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    points = [[20 + (k % 10) * 2.0, 20 + (k // 10) * 3.0, 2] for k in range(68)]
    base = {"id": 1, "image_id": 1, "category_id": 1, "keypoints": [v for p in points for v in p]}
    data = {"images": [{"id": 1, "file_name": "face.png", "width": 64, "height": 64}],
            "annotations": [{**base, **annotation}], "categories": [{"id": 1, "name": "face"}]}
    path = _write(work / "coco" / "faces.json", json.dumps(data))
    return ["stats", "--dataset", "coco", "--root", str(path), "--json"]


CASES: list[Case] = [
    Case("dataset folder that does not exist",
         lambda w: ["generate", "--dataset", "pts", "--root", "/no/such/dir", "--inpainter", str(_inpainter(w)),
                    "--out", str(w / "x")], 1, "Error: dataset folder /no/such/dir does not exist"),
    Case("malformed COCO JSON",
         lambda w: ["stats", "--dataset", "coco", "--root", str(_write(w / "bad.json", '{"images": [1, 2'))],
         1, "bad.json:1: not valid JSON"),
    Case("dataset with no usable faces: generate refuses, no --out left",
         lambda w: ["generate", "--dataset", "pts", "--root", str(_write(w / "empty" / "readme.txt", "x").parent),
                    "--inpainter", str(_inpainter(w)), "--out", str(w / "never")], 1, "has no usable faces"),
    Case("stats on a folder without faces warns",
         lambda w: ["stats", "--dataset", "pts", "--root", str(_write(w / "empty2" / "a.txt", "x").parent)],
         0, "Warning: no usable faces under"),
    Case("generate --dataset wflw without WFLW data",
         lambda w: ["generate", "--dataset", "wflw", "--root", str(w / "nowflw"), "--inpainter", str(_inpainter(w)),
                    "--out", str(w / "x")], 1, "WFLW annotation list"),
    Case("preview on a truncated shard names it", _truncated_shard, 1, "shard-00000.h5"),
    Case("checkpoint: a dict without a header",
         lambda w: ["generate", "--inpainter", str(_checkpoint_variant(w, lambda c: {"generator": c["generator"]})),
                    "--out", str(w / "x")], 1, "not a lafin-aug checkpoint (no 'header'"),
    Case("checkpoint: a pickled list",
         lambda w: ["generate", "--inpainter", str(_checkpoint_variant(w, lambda c: [1, 2])), "--out", str(w / "x")],
         1, "a checkpoint holds a dict, this one holds a list"),
    Case("checkpoint: random bytes (and no weights_only advice)",
         lambda w: ["generate", "--inpainter", str(_write(w / "random.pt", np.random.default_rng(0).bytes(999))),
                    "--out", str(w / "x")], 1, "random.pt: not a readable torch weight file"),
    Case("checkpoint: an empty file",
         lambda w: ["generate", "--inpainter", str(_write(w / "empty.pt", b"")), "--out", str(w / "x")],
         1, "empty.pt: not a readable torch weight file (the file is empty)"),
    Case("checkpoint: a truncated file", _truncated_checkpoint, 1,
         "half.pt: not a readable torch weight file (a damaged or truncated zip archive"),
    Case("checkpoint: weights of another width say what differs", _wide_weights, 1,
         "encoder1.0.weight (8, 5, 7, 7) vs (16, 5, 7, 7)"),
    Case("--vgg-weights that are not a checkpoint name the file",
         lambda w: ["train", "inpainter", "--count", "2", "--size", "32", "--steps", "1", "--model",
                    f"vgg_weights={_write(w / 'vgg.pth', b'not weights')}", "--model", "width=8", "--out",
                    str(w / "vggrun")], 1, "vgg.pth: not a readable torch weight file"),
    Case("label: junk --detector-weights name the file",
         lambda w: _label(w, "--detector-weights", _write(w / "s3fd.pth", b"junk"), "--fan-weights", w / "s3fd.pth"),
         1, "s3fd.pth: not a readable torch weight file"),
    Case("label: --fan-weights of another network list the missing keys",
         lambda w: _label(w, "--detector", "dlib", "--fan-weights", _foreign(w / "fan.pth")),
         1, "fan.pth: does not hold face-alignment's 2D FAN-4 weights: missing keys"),
    Case("verify on an interrupted run", _partial_run, 1, "incomplete"),
    Case("generate into a directory of another configuration", _rerun_other_epochs, 1,
         "holds shards made with another --epochs (1 there, 2 here): use another --out"),
    Case("COCO without num_keypoints: the count comes from the array",
         lambda w: _coco(w, {}), 0, '"faces": 1'),
    Case("COCO keypoint value true is refused",
         lambda w: _coco(w, {"num_keypoints": 68, "keypoints": [True] + [20.0] * 203}), 0, '"non_numeric": 1'),
    Case("an unknown family option lists the valid ones",
         lambda w: ["train", "inpainter", "--model", "widht=8", "--out", str(w / "y")], 2,
         "unknown LafinTrainConfig keys ['widht']"),
]


def run_case(case: Case, work: Path) -> tuple[bool, str]:
    """(passed, what happened) for one case."""
    try:
        args = case.make(work)
    except Exception as exc:  # noqa: BLE001 - a broken setup is a failed case, reported as such
        return False, f"setup failed: {type(exc).__name__}: {exc}"
    result = CliRunner().invoke(main, args)
    output = result.output + (result.stderr if result.stderr_bytes is not None and result.stderr not in result.output
                              else "")
    problems = []
    if result.exit_code != case.status:
        problems.append(f"exit {result.exit_code}, expected {case.status}")
    if case.expect not in output:
        problems.append(f"missing {case.expect!r}")
    if "Traceback" in output or (result.exception is not None and not isinstance(result.exception, SystemExit)):
        problems.append(f"traceback ({type(result.exception).__name__})")
    last = [line for line in output.replace("\r", "\n").splitlines() if line.strip()]
    return not problems, "; ".join(problems) or (last[-1][:110] if last else "")


def main_probe() -> int:
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    failures = 0
    try:
        print(f"{'case':<62} {'result':<6} output")
        for case in CASES:
            passed, note = run_case(case, work)
            failures += not passed
            print(f"{case.name:<62} {'PASS' if passed else 'FAIL':<6} {note}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(CASES) - failures} of {len(CASES)} cases pass")
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main_probe())
