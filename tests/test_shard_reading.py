"""Reading damaged or incomplete shard directories: AugmentedShards, open_shard (and so the preview) and
verify_shards refuse them with a ShardFormatError naming the file instead of yielding wrong records."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_shards import HEADER, S, all_pairs, make_records, make_shards, pairs_of, refresh_checksum
from torch.utils.data import DataLoader

from lafin_aug.io import sha256_file, write_json
from lafin_aug.shards import (
    AugmentedShards,
    ManifestRow,
    ShardFormatError,
    open_shard,
    read_manifest,
    remove_stale_temporaries,
    shard_name,
    verify_shards,
    write_manifest,
    write_shard,
)
from lafin_aug.viz import preview_shards

# make_shards: shard-00000..00002, 12 records each, record i of a shard is (source i // 3, epoch i % 3 - 1)
DAMAGED = "shard-00001.h5"


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    make_shards(tmp_path)
    return tmp_path


def read_all(directory: Path | str, **options) -> list[dict]:
    """Build the dataset and read one pass (checks may fire in either step)."""
    return list(AugmentedShards(directory, shuffle=False, **options))


def refused(call: Callable[[], object], path: Path, message: str) -> ShardFormatError:
    """The ShardFormatError `call` raises: its message starts with `path:` (or `path:LINE:`) and matches `message`."""
    with pytest.raises(ShardFormatError) as caught:
        call()
    text = str(caught.value)
    assert text.startswith(f"{path}:"), text
    assert re.search(message, text), text
    return caught.value


def refresh_row(directory: Path, name: str = DAMAGED) -> None:
    """Make the manifest row of `name` agree with the file (checksum, epochs, real records), so that only
    checks of the records' content can find what was changed."""
    with h5py.File(directory / name, "r") as handle:
        epoch = handle["epoch"][:]
    row = ManifestRow(name, len(epoch), sha256_file(directory / name), tuple(int(e) for e in np.unique(epoch)),
                      int((epoch == -1).sum()))
    write_manifest(directory, [row if r.name == name else r for r in read_manifest(directory)])


def edit_records(directory: Path, fn: Callable[[h5py.File], None], name: str = DAMAGED) -> None:
    with h5py.File(directory / name, "a") as handle:
        fn(handle)
    refresh_row(directory, name)


def chunk_offset(path: Path, dataset: str, record: int) -> tuple[int, int]:
    """(byte offset, size) in the file of one record's chunk of `dataset`."""
    with h5py.File(path, "r") as handle:
        info = handle[dataset].id.get_chunk_info_by_coord((record,) + (0,) * (handle[dataset].ndim - 1))
    return info.byte_offset, info.size


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def flip_image_byte(directory: Path, record: int = 7) -> None:
    """Flip one byte inside the (uncompressed) image of `record` of shard-00001: the file still reads."""
    path = directory / DAMAGED
    offset, _ = chunk_offset(path, "image", record)
    with open(path, "r+b") as handle:
        handle.seek(offset + 100)
        byte = handle.read(1)[0]
        handle.seek(offset + 100)
        handle.write(bytes([byte ^ 0xFF]))


def truncate(directory: Path, name: str = DAMAGED) -> Path:
    path = directory / name
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# --- checksums -----------------------------------------------------------------------------------

def test_a_flipped_image_byte_fails_the_checksum_unless_checksums_are_off(shard_dir: Path):
    stored = make_records(range(4, 8), (-1, 0, 1), seed=1)["image"][7]
    flip_image_byte(shard_dir)
    refused(lambda: read_all(shard_dir), shard_dir / DAMAGED, r"sha256 [0-9a-f]{64} differs from [0-9a-f]{64} in "
            + re.escape(str(shard_dir / "manifest.csv")))
    # the documented trade of verify_checksums=False: the damaged record is yielded as it now reads
    records = {(r["source_index"], r["epoch"]): r for r in read_all(shard_dir, verify_checksums=False)}
    yielded = (records[(6, 0)]["image"].permute(1, 2, 0) * 255).round().byte().numpy()
    assert (yielded != stored).sum() == 1


def test_a_lone_shard_file_is_checked_against_its_directory_manifest(shard_dir: Path):
    flip_image_byte(shard_dir)
    refused(lambda: read_all(shard_dir / DAMAGED), shard_dir / DAMAGED, "sha256")
    (shard_dir / "manifest.csv").unlink()  # a file on its own has no checksum to verify
    assert len(read_all(shard_dir / DAMAGED)) == 12


def test_each_shard_is_hashed_once_per_process_and_not_at_all_when_opted_out(shard_dir: Path, monkeypatch):
    import lafin_aug.shards.dataset as shards
    hashed = []
    monkeypatch.setattr(shards, "sha256_file", lambda path: hashed.append(Path(path).name) or sha256_file(path))
    dataset = AugmentedShards(shard_dir, buffer_size=4)
    for epoch in range(2):
        dataset.set_epoch(epoch)
        assert pairs_of(dataset) == all_pairs()
    assert sorted(hashed) == [shard_name(k) for k in range(3)]
    hashed.clear()
    assert pairs_of(AugmentedShards(shard_dir, verify_checksums=False)) == all_pairs()
    assert hashed == []


# --- the records' content (checksums made to agree) -----------------------------------------------

CONTENT_FAULTS = {
    "landmark at 999": (lambda h: h["landmarks"].__setitem__((4, 10, 0), 999.0),
                        r"landmarks of records \[4\] lie more than 4 px outside the 16x16 crop"),
    "NaN landmark": (lambda h: h["landmarks"].__setitem__((4, 10, 1), np.nan),
                     r"landmarks of records \[4\] are not finite"),
    "epoch -7": (lambda h: h["epoch"].__setitem__(1, -7), r"epoch of records \[1\] is below -1"),
    "negative source": (lambda h: h["source_index"].__setitem__(2, -1), r"source_index of records \[2\] is negative"),
    "edited 3": (lambda h: h["edited"].__setitem__(2, 3), r"edited of records \[2\] is not 0 or 1"),
    "mask value 2": (lambda h: h["mask"].__setitem__((5, 0, 0), 2),
                     r"mask of records \[5\] has values other than 0 and 1"),
    "real record masked": (lambda h: h["mask"].__setitem__((9, 3, 3), 1),
                           r"real \(epoch -1\) records \[9\] have a non-empty mask"),
}


@pytest.mark.parametrize("fault", CONTENT_FAULTS)
def test_out_of_range_records_are_refused_by_reader_and_verify(shard_dir: Path, fault: str):
    change, message = CONTENT_FAULTS[fault]
    edit_records(shard_dir, change)
    refused(lambda: read_all(shard_dir), shard_dir / DAMAGED, message)
    refused(lambda: read_all(shard_dir, verify_checksums=False, include_real=False), shard_dir / DAMAGED, message)
    report = verify_shards(shard_dir)
    assert any(f.file == DAMAGED and re.search(message, f.message) for f in report.failures), report.failures


@pytest.mark.parametrize("fault", ["NaN landmark", "mask value 2"])
def test_errors_in_dataloader_workers_reach_the_caller_naming_the_shard(shard_dir: Path, fault: str):
    change, message = CONTENT_FAULTS[fault]
    edit_records(shard_dir, change)
    loader = DataLoader(AugmentedShards(shard_dir), batch_size=4, num_workers=2, multiprocessing_context="fork")
    with pytest.raises(ShardFormatError, match=re.escape(str(shard_dir / DAMAGED)) + ": .*" + message):
        list(loader)


def test_a_checksum_failure_in_a_worker_reaches_the_caller(shard_dir: Path):
    flip_image_byte(shard_dir)
    loader = DataLoader(AugmentedShards(shard_dir), batch_size=None, num_workers=1, multiprocessing_context="fork")
    with pytest.raises(ShardFormatError, match=re.escape(str(shard_dir / DAMAGED)) + ": sha256"):
        list(loader)


# --- damaged files -------------------------------------------------------------------------------

def test_a_truncated_shard_is_refused_when_the_dataset_is_built(shard_dir: Path):
    path = truncate(shard_dir)
    for checksums in (True, False):
        refused(lambda: AugmentedShards(shard_dir, verify_checksums=checksums), path, "cannot be read .*truncated file")
    refused(lambda: open_shard(path), path, "truncated file")
    assert any(f.file == DAMAGED and "truncated file" in f.message for f in verify_shards(shard_dir).failures)


def test_preview_of_a_truncated_shard_names_the_file(shard_dir: Path, tmp_path_factory):
    path = truncate(shard_dir, shard_name(0))
    refused(lambda: preview_shards(shard_dir, tmp_path_factory.mktemp("preview") / "p.png"), path, "truncated file")


def test_unreadable_data_is_a_shard_format_error_naming_the_file(shard_dir: Path):
    path = shard_dir / DAMAGED
    offset, size = chunk_offset(path, "mask", 5)  # a gzip chunk: zeros are not a valid deflate stream
    overwrite(path, offset, bytes(size))
    refresh_checksum(shard_dir, DAMAGED)
    refused(lambda: read_all(shard_dir, verify_checksums=False), path, r"cannot be read \(OSError: .*")


# --- the directory against its manifest -----------------------------------------------------------

def drop_row(d: Path) -> None:
    write_manifest(d, [r for r in read_manifest(d) if r.name != DAMAGED])


def duplicate_row(d: Path) -> None:
    rows = read_manifest(d)
    write_manifest(d, rows + [rows[1]])


LISTING_FAULTS = {
    "row missing": (drop_row, DAMAGED, "present but not listed in manifest.csv"),
    "row duplicated": (duplicate_row, DAMAGED, "listed more than once in manifest.csv"),
    "header-only manifest": (lambda d: write_manifest(d, []), "manifest.csv", "lists no shards"),
    "file missing": (lambda d: (d / DAMAGED).unlink(), DAMAGED, "listed in manifest.csv but missing"),
    "stray shard": (lambda d: (d / "shard-00007.h5").write_bytes((d / "shard-00000.h5").read_bytes()),
                    "shard-00007.h5", "present but not listed"),
}


@pytest.mark.parametrize("fault", LISTING_FAULTS)
def test_the_manifest_must_list_exactly_the_shard_files(shard_dir: Path, fault: str):
    change, file, message = LISTING_FAULTS[fault]
    change(shard_dir)
    refused(lambda: AugmentedShards(shard_dir), shard_dir / file, message)
    report = verify_shards(shard_dir)
    assert any(f.file == file and message in f.message for f in report.failures), report.failures


@pytest.mark.parametrize("text, message", [
    (None, r"cannot be read \(FileNotFoundError"),
    ("file,records,sha256,epochs,real_records\nshard-00000.h5,12\n", r"manifest.csv:2: expected the 5 fields"),
    ("file,records,sha256,epochs,real_records\nshard-00000.h5,12,,-1;0;1,4\n", r"manifest.csv:2: sha256 '' is not 64"),
    (b"\xff\xfe\x00garbage", r"cannot be read \(UnicodeDecodeError"),
])
def test_an_unreadable_manifest_is_refused_naming_it(shard_dir: Path, text, message):
    path = shard_dir / "manifest.csv"
    path.unlink()
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    refused(lambda: AugmentedShards(shard_dir), path, message)
    refused(lambda: read_manifest(shard_dir), path, message)


def rewrite_shard(d: Path, header=HEADER, keep: slice = slice(None), points: int | None = None,
                  size: int | None = None) -> None:
    """Replace shard-00001 by records of another header or layout, with a matching manifest row."""
    records = make_records(range(4, 8), (-1, 0, 1), seed=1)
    records = {k: v[keep] for k, v in records.items()}
    if points is not None:
        records["landmarks"] = records["landmarks"][:, :points]
    if size is not None:
        records.update(image=records["image"][:, :size, :size], mask=records["mask"][:, :size, :size],
                       landmarks=records["landmarks"] * (size - 1) / (S - 1))
    row = write_shard(d / DAMAGED, header, **records)
    write_manifest(d, [row if r.name == row.name else r for r in read_manifest(d)])


STRUCTURE_FAULTS = {
    "size": (lambda d: rewrite_shard(d, dataclasses.replace(HEADER, size=8), size=8),
             "header differs from shard-00000.h5: size 8 != 16"),
    "points": (lambda d: rewrite_shard(d, dataclasses.replace(HEADER, points=5), points=5),
               "header differs from shard-00000.h5: points 5 != 68"),
    "seed": (lambda d: rewrite_shard(d, dataclasses.replace(HEADER, seed=4)),
             "header differs from shard-00000.h5: seed 4 != 3"),
    "record count": (lambda d: write_manifest(d, [dataclasses.replace(r, records=13) if r.name == DAMAGED else r
                                                  for r in read_manifest(d)]), "holds 12 records, manifest says 13"),
    "real records": (lambda d: write_manifest(d, [dataclasses.replace(r, real_records=3) if r.name == DAMAGED else r
                                                  for r in read_manifest(d)]), "holds 4 real records, manifest says 3"),
    "missing dataset": (lambda d: edit_records(d, lambda h: h.__delitem__("edited")), r"missing datasets \['edited'\]"),
    "layout": (lambda d: edit_records(d, lambda h: (h.__delitem__("source_index"),
                                                    h.create_dataset("source_index", data=np.zeros(12, np.int32)))),
               r"source_index is int32 \[12\], expected int64 \[12\]"),
}


@pytest.mark.parametrize("fault", STRUCTURE_FAULTS)
def test_shards_must_agree_with_each_other_and_the_manifest_when_built(shard_dir: Path, fault: str, monkeypatch):
    change, message = STRUCTURE_FAULTS[fault]
    change(shard_dir)
    monkeypatch.setattr(AugmentedShards, "__iter__", lambda self: pytest.fail("checked only when reading"))
    refused(lambda: AugmentedShards(shard_dir), shard_dir / DAMAGED, message)


# --- verify: completeness -------------------------------------------------------------------------

def plan(d: Path, **keys) -> None:
    write_json(d / "run.json", {**dataclasses.asdict(HEADER), **keys})


def test_verify_fails_an_incomplete_run_unless_partial_is_allowed(shard_dir: Path):
    plan(shard_dir, faces=40, shards_planned=16)
    report = verify_shards(shard_dir)
    assert not report.ok
    assert [(f.file, f.message.split(" (")[0]) for f in report.failures] == [
        ("manifest.csv", "incomplete: 3 of 16 shards")]
    partial = verify_shards(shard_dir, allow_partial=True)
    assert partial.ok and [f.message.split(" (")[0] for f in partial.warnings] == ["incomplete: 3 of 16 shards"]
    (shard_dir / DAMAGED).unlink()
    drop_row(shard_dir)
    assert "incomplete: 2 of 16 shards" in str(verify_shards(shard_dir).failures)


@pytest.mark.parametrize("keys, ok, message", [
    ({}, True, None),  # no shards_planned: completeness is not judged
    ({"shards_planned": 3}, True, None),
    ({"shards_planned": 2}, False, "shard-00002.h5: beyond the 2 shards planned in run.json"),
    ({"shards_planned": "16"}, False, "run.json: shards_planned is '16', expected a positive integer"),
])
def test_verify_judges_completeness_only_against_a_valid_plan(shard_dir: Path, keys, ok, message):
    plan(shard_dir, **keys)
    report = verify_shards(shard_dir)
    assert report.ok is ok and not report.warnings
    if message:
        assert any(str(f).startswith(message) for f in report.failures), report.failures


# --- stale temporaries ----------------------------------------------------------------------------

def test_remove_stale_temporaries_deletes_only_dead_writers_old_files(shard_dir: Path):
    dead, old = dead_pid(), time.time() - 3600
    stale = shard_dir / f".shard-00003.h5.tmp-{dead}"
    live = shard_dir / f".shard-00004.h5.tmp-{os.getpid()}"  # this process could still be writing it
    fresh = shard_dir / f".shard-00005.h5.tmp-{dead}"  # perhaps a writer on another machine
    other = shard_dir / f".manifest.csv.tmp-{dead}"
    for path in (stale, live, fresh, other):
        path.write_bytes(b"partial")
        if path is not fresh:
            os.utime(path, (old, old))
    assert sorted(f.file for f in verify_shards(shard_dir).warnings) == sorted(p.name for p in (stale, live, fresh))
    assert remove_stale_temporaries(shard_dir) == [stale]
    assert not stale.exists() and live.exists() and fresh.exists() and other.exists()
    assert remove_stale_temporaries(shard_dir, min_age=0) == [fresh]
    assert remove_stale_temporaries(shard_dir) == []
    assert pairs_of(AugmentedShards(shard_dir)) == all_pairs()
