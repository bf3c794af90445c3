"""Verification of a shard directory (:func:`verify_shards`, behind ``lafin-aug verify``): every
shard and record against the format, manifest.csv and run.json, completeness against run.json's
``shards_planned``, and the temporaries interrupted writes leave (:func:`remove_stale_temporaries`).
What is refused where, by the writer, the dataset and the verifier, is listed in
:mod:`lafin_aug.shards.dataset`.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lafin_aug.io import sha256_file
from lafin_aug.shards.format import (
    MANIFEST_NAME,
    RUN_CONFIG_NAME,
    Finding,
    ManifestRow,
    ShardFormatError,
    ShardHeader,
    _header_differences,
    _listing_problems,
    _mask_problems,
    _structure,
    _value_problems,
    open_shard,
    read_manifest,
    read_run_config,
    shard_errors,
    shard_name,
)

_TEMPORARY_GLOB = ".shard-*.h5.tmp-*"
_TEMPORARY_NAME = re.compile(r"\.shard-\d{5,}\.h5\.tmp-(\d+)")  # lafin_aug.io.atomic_path's names


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_shards`: failures make it not ok, warnings do not."""

    directory: str
    shards: int = 0
    records: int = 0
    failures: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no failure was found."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` output."""
        return {"ok": self.ok, **asdict(self)}


def _inspect(path: Path, row: ManifestRow) -> tuple[ShardHeader, list[str]]:
    """Header of one shard and its departures from the format and from its manifest row."""
    with open_shard(path) as handle:
        header, epoch, problems = _structure(handle, path, row)
        if epoch is None:
            return header, problems
        with shard_errors(path):
            problems += _value_problems(handle["landmarks"][:], handle["source_index"][:], epoch,
                                        handle["edited"][:], header.size)
            block = 256
            for start in range(0, len(epoch), block):
                problems += _mask_problems(handle["mask"][start:start + block], epoch[start:start + block], start)
    return header, problems


def _completeness(directory: Path, rows: Sequence[ManifestRow],
                  config: Mapping[str, Any]) -> tuple[list[Finding], Finding | None]:
    """(failures, the `incomplete` finding or None) of the shards listed against run.json's
    ``shards_planned``; nothing when run.json has no such key."""
    planned = config.get("shards_planned")
    if planned is None:
        return [], None
    if not isinstance(planned, int) or isinstance(planned, bool) or planned < 1:
        return [Finding(RUN_CONFIG_NAME, f"shards_planned is {planned!r}, expected a positive integer")], None
    present = {row.name for row in rows if (directory / row.name).is_file()}
    beyond = sorted(name for name in present if int(name[len("shard-"):-len(".h5")]) >= planned)
    failures = [Finding(name, f"beyond the {planned} shards planned in {RUN_CONFIG_NAME} "
                              f"(shards_planned: {shard_name(0)} to {shard_name(planned - 1)})") for name in beyond]
    if len(present) - len(beyond) < planned:
        return failures, Finding(MANIFEST_NAME, f"incomplete: {len(present) - len(beyond)} of {planned} shards "
                                                f"(shards_planned in {RUN_CONFIG_NAME}); rerun the generate "
                                                f"command to finish")
    return failures, None


def verify_shards(directory: str | Path, allow_partial: bool = False) -> VerifyReport:
    """Check every shard of a directory against manifest.csv, run.json and the format guarantees.

    A run.json with ``shards_planned`` makes fewer shards than planned a failure
    (``incomplete: 3 of 16 shards``), or only a warning with ``allow_partial=True``; without that
    key completeness is not judged.
    """
    directory = Path(directory)
    report = VerifyReport(str(directory))
    try:
        rows = read_manifest(directory)
    except ShardFormatError as exc:
        report.failures.append(Finding(MANIFEST_NAME, str(exc)))
        return report

    report.failures += _listing_problems(directory, rows)
    for path in sorted(directory.glob(_TEMPORARY_GLOB)):
        report.warnings.append(Finding(path.name, "temporary file of an interrupted write; safe to delete "
                                                  "(remove_stale_temporaries)"))

    reference: tuple[str, ShardHeader] | None = None
    for row in rows:
        path = directory / row.name
        if not path.is_file():
            continue  # reported by _listing_problems
        digest = sha256_file(path)
        if digest != row.sha256:
            report.failures.append(Finding(row.name, f"sha256 {digest} differs from manifest {row.sha256}"))
        try:
            header, problems = _inspect(path, row)
        except Exception as exc:  # any failure to read is a finding, not a crash
            message = str(exc).removeprefix(f"{path}: ")
            report.failures.append(Finding(row.name, message if isinstance(exc, ShardFormatError)
                                           else f"cannot be read: {exc}"))
            continue
        report.failures += [Finding(row.name, p) for p in problems]
        if reference is None:
            reference = (row.name, header)
        elif diffs := _header_differences(header, reference[1]):
            report.failures.append(Finding(row.name, f"header differs from {reference[0]}: " + ", ".join(diffs)))
        report.shards += 1
        report.records += row.records

    try:
        config = read_run_config(directory)
    except (OSError, ShardFormatError) as exc:
        report.failures.append(Finding(RUN_CONFIG_NAME, str(exc)))
    else:
        if reference is not None:
            for key, value in asdict(reference[1]).items():
                if key in config and config[key] != value:
                    report.failures.append(Finding(RUN_CONFIG_NAME, f"{key} is {config[key]!r}, shards say {value!r}"))
        failures, incomplete = _completeness(directory, rows, config)
        report.failures += failures
        if incomplete is not None:
            (report.warnings if allow_partial else report.failures).append(incomplete)
    return report


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (a reused id counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory: str | Path, min_age: float = 60.0) -> list[Path]:
    """Delete the ``.shard-*.h5.tmp-PID`` files hard-killed writers left in `directory`; the paths removed.

    A file is stale when its writer's PID runs no process on this machine and it has not been
    modified for `min_age` seconds (a live writer on another machine sharing the directory keeps
    its file fresh: shards are written in one go after inpainting). Call it before resuming.
    """
    removed, now = [], time.time()
    for path in sorted(Path(directory).glob(_TEMPORARY_GLOB)):
        match = _TEMPORARY_NAME.fullmatch(path.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        try:
            if now - path.stat().st_mtime < min_age:
                continue
            path.unlink()
        except FileNotFoundError:  # another process removed it first
            continue
        removed.append(path)
    return removed
