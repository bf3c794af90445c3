"""Checkpoint files: atomic write, safe read, and the typed header every consumer reads them through.

A checkpoint is a dict of tensors and plain data that loads with `torch.load(weights_only=True)`,
so a file from elsewhere can hold data but never code. Its "header" (a `CheckpointHeader` as a
dict) says what the file is: format and version, the model family (inpainter family or detector
name) and the model config that rebuilds the network from the file alone, crop size, landmark
count, training step, the precision it was trained in, which loss networks were used, and the
full training config. The rest of the dict is state: "generator"/"model" weights, and in a
training checkpoint the other networks, optimisers and RNG states that `--resume` needs.

Files written before format version 2 (a "kind" key and no header) do not load; they are
converted, losslessly, with `lafin-aug convert-checkpoint OLD --out NEW` (`convert_checkpoint`).

Every weight file a user passes (checkpoints, exported inpainters, VGG-19, FAN and S3FD files) is
read through `read_torch_file` and loaded into its network through `load_weights`, so whatever torch
raises, the user sees one CheckpointError line naming the file: `PATH: not a readable torch weight
file (reason)` or `PATH: does not hold WHAT weights: missing keys ... (N in all)`.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lafin_aug.config import Config
from lafin_aug.io import atomic_path

INPAINTER_FORMAT = "lafin-aug-inpainter"
DETECTOR_FORMAT = "lafin-aug-detector"
CHECKPOINT_VERSION = 2
#: a run directory keeps its newest checkpoint at RUN/checkpoints/last.pt
LAST_CHECKPOINT = Path("checkpoints", "last.pt")
#: detector names that changed since version 1
RENAMED_DETECTORS = {"builtin": "lafin-gl"}


#: the first bytes of a zip archive, the format torch.save writes
ZIP_MAGIC = b"PK\x03\x04"
#: how many keys a "does not hold ... weights" message lists of each kind
LISTED_KEYS = 4


class CheckpointError(ValueError):
    """A checkpoint or weight file that cannot be used; the message names the file and what was expected."""


@dataclass(frozen=True)
class CheckpointHeader(Config):
    """What a checkpoint file is; see the module docstring."""

    format: str
    family: str
    config: dict[str, Any]
    size: int
    points: int
    step: int = 0
    precision: str = "fp32"
    losses: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    version: int = CHECKPOINT_VERSION


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """torch.save a dict of tensors and plain data, atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def last_checkpoint(path: str | Path) -> Path:
    """`path` itself for a file; the newest checkpoint of a run directory."""
    path = Path(path)
    return path / LAST_CHECKPOINT if path.is_dir() else path


def _first_line(exc: BaseException) -> str:
    """`Type: first sentence` of an exception, without torch's advice around its unpickler's own error."""
    text = str(exc).split("WeightsUnpickler error:")[-1]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "").split(". ")[0][:160]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _unreadable_reason(path: Path, exc: Exception) -> str:
    """Why torch.load failed on `path`, in a few words (never torch's advice to drop weights_only)."""
    text = str(exc)
    if "TorchScript" in text:
        return "a TorchScript archive; a state dict saved with torch.save is needed"
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unsafe:
        return (f"it holds Python objects other than tensors and plain data ({unsafe[1]}); lafin-aug does not "
                f"unpickle code from a file")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    with open(path, "rb") as handle:
        zipped = handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    kind = ("a damaged or truncated zip archive" if zipped
            else "neither a torch zip archive nor an intact legacy torch file")
    return f"{kind}: {_first_line(exc)}"


def read_torch_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """What the torch file `path` holds (torch.save's zip archive or the legacy format), loaded with
    weights_only=True; CheckpointError `PATH: not a readable torch weight file (reason)` whatever torch raises."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointError(f"{path}: not a readable torch weight file (the file is empty)")
    try:
        with warnings.catch_warnings():  # the refusal below says it is TorchScript, in one line
            warnings.filterwarnings("ignore", message=".*looks like a TorchScript archive")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickling, zip, EOF, KeyError...: all mean "not a usable file"
        raise CheckpointError(f"{path}: not a readable torch weight file ({_unreadable_reason(path, exc)})") from exc


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a weight file from elsewhere (plain or under "state_dict", "module." prefixes
    removed); CheckpointError naming the file when it holds anything else."""
    state = read_torch_file(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors")
    other = next((key for key, value in state.items() if not torch.is_tensor(value)), None)
    if other is not None:
        raise CheckpointError(f"{path}: not a state dict of tensors ({other!r} holds a {type(state[other]).__name__})")
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The dict stored in `path`, loaded with weights_only=True; CheckpointError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    data = read_torch_file(path, map_location)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: a checkpoint holds a dict, this one holds a {type(data).__name__}")
    return data


def read_checkpoint(path: str | Path, expected_format: str,
                    map_location: str | torch.device = "cpu") -> tuple[CheckpointHeader, dict[str, Any]]:
    """(header, checkpoint dict) of a file that must be of `expected_format`; CheckpointError otherwise."""
    checkpoint = load_checkpoint(path, map_location)
    if "header" not in checkpoint:
        if "kind" in checkpoint:
            raise CheckpointError(f"{path}: written by lafin-aug before checkpoint version {CHECKPOINT_VERSION}; "
                                  f"convert it with `lafin-aug convert-checkpoint {path} --out NEW.pt`")
        raise CheckpointError(f"{path}: not a lafin-aug checkpoint (no 'header'; keys: {sorted(checkpoint)[:8]})")
    try:
        header = CheckpointHeader.from_dict(checkpoint["header"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint header ({exc})") from exc
    if header.format != expected_format:
        raise CheckpointError(f"{path}: a {header.format!r} checkpoint where a {expected_format!r} one is needed")
    if header.version != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {header.version}, this lafin-aug reads version "
                              f"{CHECKPOINT_VERSION} (a newer lafin-aug wrote it?)")
    return header, checkpoint


def state_of(checkpoint: dict[str, Any], key: str, path: str | Path) -> dict[str, Any]:
    """checkpoint[key], a state dict; CheckpointError naming the file when it is missing."""
    state = checkpoint.get(key)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: the checkpoint has no {key!r} weights (keys: {sorted(checkpoint)})")
    return state


def _listed(label: str, items: list[str]) -> str:
    """`label a, b, c, d ... (N in all)`."""
    more = " ..." if len(items) > LISTED_KEYS else ""
    return f"{label} {', '.join(items[:LISTED_KEYS])}{more} ({len(items)} in all)"


def _differences(target: torch.nn.Module, state: dict[str, Any]) -> str:
    """The keys missing from `state`, unexpected in it, and of another shape than in `target` ('' if none)."""
    own = {k: tuple(v.shape) for k, v in target.state_dict().items()}
    saved = {k: tuple(v.shape) for k, v in state.items() if torch.is_tensor(v)}
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    shapes = [f"{k} {saved[k]} vs {own[k]}" for k in own if k in saved and saved[k] != own[k]]
    return "; ".join(_listed(label, items) for label, items in (
        ("missing keys", missing), ("unexpected keys", unexpected), ("shapes (file vs model)", shapes)) if items)


def load_weights(target: Any, state: dict[str, Any], path: str | Path, what: str | None = None) -> None:
    """`target.load_state_dict(state)` (strict); CheckpointError `PATH: does not hold WHAT weights: ...` naming
    the missing, unexpected and other-shaped keys otherwise. WHAT defaults to the target's class name."""
    what = what or type(target).__name__
    differences = _differences(target, state) if isinstance(target, torch.nn.Module) else ""
    if differences:
        raise CheckpointError(f"{path}: does not hold {what} weights: {differences}")
    try:
        target.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - optimiser and module loaders raise several types for a foreign state
        raise CheckpointError(f"{path}: does not hold {what} weights: {_first_line(exc)}") from exc


def _converted_v1(old: dict[str, Any], path: Path) -> dict[str, Any]:
    """A version-1 checkpoint dict in the version-2 layout (weights and optimiser states untouched)."""
    kind, train = old.get("kind"), dict(old.get("train_config", {}))
    rest = {k: v for k, v in old.items() if k not in ("kind", "step", "train_config", "generator_config", "vgg",
                                                      "detector", "detector_config")}
    if kind == INPAINTER_FORMAT:
        config = {k: v for k, v in old["generator_config"].items() if k != "family"}
        header = CheckpointHeader(format=INPAINTER_FORMAT, family=old["generator_config"].get("family", "lafin"),
                                  config=config, size=int(train.get("size", 256)), points=int(config["points"]),
                                  step=int(old["step"]), precision=str(train.get("precision", "fp32")),
                                  losses={"vgg": old.get("vgg", "unknown")}, train_config=train)
    elif kind == DETECTOR_FORMAT:
        name = RENAMED_DETECTORS.get(old["detector"], old["detector"])
        train["detector"] = name
        if "augment" in train:
            train["transforms"] = train.pop("augment")
        config = dict(old["detector_config"])
        header = CheckpointHeader(format=DETECTOR_FORMAT, family=name, config=config, size=int(config["size"]),
                                  points=int(config["points"]), step=int(old["step"]),
                                  precision=str(train.get("precision", "fp32")), train_config=train)
    else:
        raise CheckpointError(f"{path}: unknown checkpoint kind {kind!r} (expected {INPAINTER_FORMAT!r} or "
                              f"{DETECTOR_FORMAT!r})")
    return {"header": header.to_dict(), **rest}


def convert_checkpoint(path: str | Path, out: str | Path) -> CheckpointHeader:
    """Write `path` (a version-1 checkpoint) to `out` in the current layout; returns the new header."""
    path = Path(path)
    old = load_checkpoint(path)
    if "header" in old:
        raise CheckpointError(f"{path}: already a version-{old['header'].get('version')} checkpoint; "
                              f"nothing to convert")
    try:
        new = _converted_v1(old, path)
    except KeyError as exc:
        raise CheckpointError(f"{path}: a version-1 checkpoint without its {exc} entry cannot be converted") from exc
    save_checkpoint(out, new)
    return CheckpointHeader.from_dict(new["header"])
