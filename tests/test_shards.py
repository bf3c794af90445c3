"""Shard format: writer, manifest, verification, interrupted writes, and the AugmentedShards dataset."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lafin_aug.io import sha256_file, write_json
from lafin_aug.shards import (
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    DEFAULT_MASK_COMPRESSION,
    AugmentedShards,
    ManifestRow,
    ShardFormatError,
    ShardHeader,
    open_shard,
    read_manifest,
    read_run_config,
    read_shard_header,
    shard_name,
    verify_shards,
    write_manifest,
    write_shard,
)

S, P = 16, 68
# 3 workers on a 2-core machine is deliberate: more consumers than shards
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")

HEADER = ShardHeader(points=P, size=S, dataset="synthetic", split="train", seed=3, inpainter_sha256="ab" * 32)


def make_records(sources: range, epochs: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """Smooth fake records for every (source, epoch) pair, source-major."""
    rng = np.random.default_rng(seed)
    pairs = [(s, e) for s in sources for e in epochs]
    n = len(pairs)
    noise = rng.uniform(0, 255, (n, S, S, 3)).astype(np.float32)
    image = np.stack([cv2.GaussianBlur(x, (0, 0), 2) for x in noise]).clip(0, 255).astype(np.uint8)
    mask = np.zeros((n, S, S), np.uint8)
    for i, (_, e) in enumerate(pairs):
        if e >= 0:
            y, x = rng.integers(0, S // 2, 2)
            mask[i, y:y + S // 2, x:x + S // 2] = 1
    return {
        "image": image,
        "landmarks": rng.uniform(0, S - 1, (n, P, 2)).astype(np.float32),
        "mask": mask,
        "source_index": np.array([s for s, _ in pairs], np.int64),
        "epoch": np.array([e for _, e in pairs], np.int32),
        "edited": (np.arange(n) % 5 == 0).astype(np.uint8),
    }


def make_shards(directory: Path, shards: int = 3, sources_per_shard: int = 4) -> None:
    """A complete shard directory (shards, manifest.csv, run.json), epochs -1, 0 and 1 of each source."""
    rows = []
    for k in range(shards):
        sources = range(k * sources_per_shard, (k + 1) * sources_per_shard)
        rows.append(write_shard(directory / shard_name(k), HEADER, **make_records(sources, (-1, 0, 1), seed=k)))
    write_manifest(directory, rows)
    write_json(directory / "run.json", {**dataclasses.asdict(HEADER), "shard_records": 12})


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    make_shards(tmp_path)
    return tmp_path


def all_pairs(include_real: bool = True) -> Counter:
    """The (source_index, epoch) pairs make_shards() writes with its defaults."""
    return Counter((s, e) for s in range(12) for e in ((-1, 0, 1) if include_real else (0, 1)))


def pairs_of(records) -> Counter:
    return Counter((r["source_index"], r["epoch"]) for r in records)


def refresh_checksum(directory: Path, name: str) -> None:
    """Make manifest.csv agree with the current bytes of `name` (so only the intended defect shows)."""
    rows = [dataclasses.replace(r, sha256=sha256_file(directory / name)) if r.name == name else r
            for r in read_manifest(directory)]
    write_manifest(directory, rows)


# --- writer, header, manifest ------------------------------------------------------------------

def test_write_read_round_trip(tmp_path: Path):
    records = make_records(range(5), (-1, 0, 2))
    row = write_shard(tmp_path / shard_name(7), HEADER, **records)
    assert row == ManifestRow("shard-00007.h5", 15, sha256_file(tmp_path / "shard-00007.h5"), (-1, 0, 2), 5)
    with open_shard(tmp_path / row.name) as handle:
        for name, array in records.items():
            assert handle[name].dtype == array.dtype
            assert np.array_equal(handle[name][:], array), name
        assert handle["image"].chunks == (1, S, S, 3)
        assert handle["mask"].chunks == (1, S, S)
        assert handle["image"].compression == COMPRESSIONS[DEFAULT_COMPRESSION].get("compression")
        assert handle["mask"].compression == COMPRESSIONS[DEFAULT_MASK_COMPRESSION].get("compression")
        assert handle.attrs["format"] == "lafin-aug-shard" and handle.attrs["version"] == 1
    assert read_shard_header(tmp_path / row.name) == HEADER


def test_writer_casts_compatible_dtypes_and_accepts_every_compression(tmp_path: Path):
    records = make_records(range(2), (-1, 0))
    records.update(landmarks=records["landmarks"].astype(np.float64), mask=records["mask"].astype(bool),
                   source_index=records["source_index"].astype(np.int32), epoch=records["epoch"].astype(np.int64),
                   edited=records["edited"].astype(bool))
    for k, compression in enumerate(COMPRESSIONS):
        row = write_shard(tmp_path / shard_name(k), HEADER, compression=compression, mask_compression=compression,
                          **records)
        with open_shard(tmp_path / row.name) as handle:
            assert handle["image"].compression == handle["mask"].compression == COMPRESSIONS[compression].get(
                "compression")
            assert handle["landmarks"].dtype == np.float32 and handle["epoch"].dtype == np.int32
            assert np.array_equal(handle["mask"][:], records["mask"])


@pytest.mark.parametrize("field, value, message", [
    ("image", lambda r: r["image"].astype(np.float32), "image is float32"),
    ("landmarks", lambda r: np.where(np.arange(P)[None, :, None] == 3, np.nan, r["landmarks"]), "not finite"),
    ("mask", lambda r: r["mask"] * 2, "other than 0 and 1"),
    ("mask", lambda r: np.ones_like(r["mask"]), "non-empty mask"),
    ("epoch", lambda r: r["epoch"] - 5, "below -1"),
    ("landmarks", lambda r: r["landmarks"][:, :5], r"landmarks is float32 \[6, 5, 2\], expected float32 \[6, 68, 2\]"),
])
def test_writer_refuses_bad_records_naming_the_file(tmp_path: Path, field, value, message):
    records = make_records(range(2), (-1, 0, 1))
    records[field] = value(records)
    with pytest.raises(ValueError, match=message) as caught:
        write_shard(tmp_path / "shard-00000.h5", HEADER, **records)
    assert "shard-00000.h5" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_manifest_round_trip(tmp_path: Path):
    rows = [ManifestRow(shard_name(0), 12, "0" * 64, (-1, 0, 1), 4), ManifestRow(shard_name(1), 3, "1" * 64, (2,), 0)]
    write_manifest(tmp_path, rows)
    assert read_manifest(tmp_path) == rows
    assert (tmp_path / "manifest.csv").read_text().splitlines()[:2] == [
        "file,records,sha256,epochs,real_records", f"shard-00000.h5,12,{'0' * 64},-1;0;1,4"]


def test_malformed_manifest_and_run_config_are_refused_naming_the_file(tmp_path: Path):
    (tmp_path / "manifest.csv").write_text("file,records,sha256,epochs,real_records\n../evil.h5,1,x,0,0\n")
    with pytest.raises(ShardFormatError, match=r"manifest.csv:2: file '../evil.h5'"):
        read_manifest(tmp_path)
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(ShardFormatError, match="run.json: expected a JSON object"):
        read_run_config(tmp_path)


# --- verification ------------------------------------------------------------------------------

def test_verify_passes_on_good_shards(shard_dir: Path):
    report = verify_shards(shard_dir)
    assert report.ok, report.failures
    assert (report.shards, report.records) == (3, 36)
    assert report.to_dict()["ok"] is True and report.to_dict()["failures"] == []


def flip_byte(d: Path) -> None:
    path = d / "shard-00001.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def edit(d: Path, fn, name: str = "shard-00001.h5") -> None:
    with h5py.File(d / name, "a") as handle:
        fn(handle)
    refresh_checksum(d, name)


def nan_landmark(h: h5py.File) -> None:
    h["landmarks"][4, 10, 1] = np.nan


def wrong_mask_shape(h: h5py.File) -> None:
    del h["mask"]
    h["mask"] = np.zeros((12, S, S + 1), np.uint8)


def inconsistent_header(d: Path) -> None:
    other = dataclasses.replace(HEADER, seed=99)
    row = write_shard(d / "shard-00001.h5", other, **make_records(range(4, 8), (-1, 0, 1), seed=1))
    write_manifest(d, [row if r.name == row.name else r for r in read_manifest(d)])


def manifest_epochs(d: Path) -> None:
    write_manifest(d, [dataclasses.replace(r, epochs=(0, 1)) if r.name == "shard-00001.h5" else r
                       for r in read_manifest(d)])


@pytest.mark.parametrize("corrupt, file, message", [
    (flip_byte, "shard-00001.h5", "sha256"),
    (lambda d: (d / "shard-00001.h5").unlink(), "shard-00001.h5", "missing"),
    (lambda d: edit(d, lambda h: h.attrs.__setitem__("version", 2)), "shard-00001.h5", "version 2 is not supported"),
    (lambda d: edit(d, lambda h: h.attrs.__setitem__("format", "other")), "shard-00001.h5", "not a lafin-aug shard"),
    (lambda d: edit(d, nan_landmark), "shard-00001.h5", r"landmarks of records \[4\] are not finite"),
    (lambda d: edit(d, wrong_mask_shape), "shard-00001.h5", r"mask is uint8 \[12, 16, 17\]"),
    (lambda d: edit(d, lambda h: h["mask"].__setitem__(0, 1)), "shard-00001.h5", r"real .* records \[0\]"),
    (lambda d: edit(d, lambda h: h["epoch"].__setitem__(1, -3)), "shard-00001.h5", "below -1"),
    (lambda d: (d / "shard-00009.h5").write_bytes((d / "shard-00000.h5").read_bytes()), "shard-00009.h5",
     "not listed"),
    (inconsistent_header, "shard-00001.h5", "header differs from shard-00000.h5: seed 99 != 3"),
    (manifest_epochs, "shard-00001.h5", r"holds epochs \[-1, 0, 1\], manifest says \[0, 1\]"),
    (lambda d: write_json(d / "run.json", {"seed": 4}), "run.json", "seed is 4, shards say 3"),
    (lambda d: (d / "run.json").unlink(), "run.json", "No such file"),
])
def test_verify_fails_naming_the_shard(shard_dir: Path, corrupt, file, message):
    corrupt(shard_dir)
    report = verify_shards(shard_dir)
    assert not report.ok
    matching = [f for f in report.failures if f.file == file]
    assert matching, report.failures
    assert any(re.search(message, f.message) for f in matching), matching
    as_json = report.to_dict()
    assert as_json["ok"] is False and any(entry["file"] == file for entry in as_json["failures"])


# --- interrupted writes --------------------------------------------------------------------------

def test_exception_mid_write_leaves_no_file(shard_dir: Path, monkeypatch):
    original, calls = h5py.Group.create_dataset, []

    def failing(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_shard(shard_dir / shard_name(3), HEADER, **make_records(range(12, 14), (-1, 0)))
    monkeypatch.undo()
    assert calls == ["image", "landmarks", "mask"]
    assert sorted(p.name for p in shard_dir.iterdir()) == [
        "manifest.csv", "run.json", "shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    assert verify_shards(shard_dir).ok


def test_killed_write_is_ignored_by_verify_and_reader(shard_dir: Path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        import h5py
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_shards import HEADER, make_records
        from lafin_aug.shards import write_shard
        original = h5py.Group.create_dataset
        def killing(self, name, *args, **kwargs):
            if name == "mask":
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, name, *args, **kwargs)
        h5py.Group.create_dataset = killing
        write_shard({str(shard_dir / shard_name(3))!r}, HEADER, **make_records(range(12, 14), (-1, 0)))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    leftovers = [p.name for p in shard_dir.iterdir() if ".tmp-" in p.name]
    assert len(leftovers) == 1 and leftovers[0].startswith(".shard-00003.h5.tmp-")
    assert not (shard_dir / shard_name(3)).exists()
    report = verify_shards(shard_dir)
    assert report.ok, report.failures
    assert [w.file for w in report.warnings] == leftovers
    assert pairs_of(AugmentedShards(shard_dir, shuffle=False)) == all_pairs()


# --- readers refuse unknown versions -------------------------------------------------------------

def test_readers_refuse_an_unknown_version_naming_the_file(shard_dir: Path):
    edit(shard_dir, lambda h: h.attrs.__setitem__("version", 7), name="shard-00002.h5")
    path = shard_dir / "shard-00002.h5"
    for call in (lambda: open_shard(path), lambda: read_shard_header(path),
                 lambda: list(AugmentedShards(shard_dir, shuffle=False)), lambda: AugmentedShards(path)):
        with pytest.raises(ShardFormatError, match=r"shard-00002\.h5: shard format version 7 is not supported"):
            call()


# --- AugmentedShards -----------------------------------------------------------------------------

def test_records_have_documented_types_and_ranges(shard_dir: Path):
    records = list(AugmentedShards(shard_dir, shuffle=False))
    assert len(records) == 36
    stored = make_records(range(4), (-1, 0, 1), seed=0)
    first = records[0]
    assert first["image"].dtype == torch.float32 and first["image"].shape == (3, S, S)
    assert first["image"].is_contiguous()
    assert first["landmarks"].dtype == torch.float32 and first["landmarks"].shape == (P, 2)
    assert first["mask"].dtype == torch.uint8 and first["mask"].shape == (1, S, S)
    assert torch.equal(first["mask"][0], torch.from_numpy(stored["mask"][0]))
    assert torch.allclose(first["image"], torch.from_numpy(stored["image"][0]).permute(2, 0, 1) / 255)
    assert torch.equal(first["landmarks"], torch.from_numpy(stored["landmarks"][0]))
    assert isinstance(first["epoch"], int) and isinstance(first["source_index"], int)
    assert isinstance(first["edited"], bool) and first["edited"] == bool(stored["edited"][0])
    for r in records:
        assert 0 <= r["image"].min() and r["image"].max() <= 1
        assert set(r["mask"].unique().tolist()) <= {0, 1}
        assert r["epoch"] >= 0 or r["mask"].sum() == 0


@pytest.mark.parametrize("workers, context", [(0, None), (1, "fork"), (3, "fork"), (1, "spawn")])
def test_one_pass_yields_every_record_exactly_once(shard_dir: Path, workers: int, context: str | None):
    dataset = AugmentedShards(shard_dir, buffer_size=8)
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, multiprocessing_context=context)
    assert pairs_of(loader) == all_pairs()
    assert len(dataset) == 36


def test_batches_collate(shard_dir: Path):
    batch = next(iter(DataLoader(AugmentedShards(shard_dir), batch_size=5)))
    assert batch["image"].shape == (5, 3, S, S) and batch["edited"].dtype == torch.bool


@pytest.mark.parametrize("shards, workers", [(3, 3), (8, 2)])  # record split (6 > 3), shard split (8 >= 4)
def test_ranks_and_workers_partition_the_records(tmp_path: Path, shards: int, workers: int):
    make_shards(tmp_path, shards=shards, sources_per_shard=2)
    expected = Counter((s, e) for s in range(2 * shards) for e in (-1, 0, 1))
    seen = []
    for rank in range(2):
        dataset = AugmentedShards(tmp_path, seed=1, rank=rank, world_size=2)
        dataset.set_epoch(5)
        loader = DataLoader(dataset, batch_size=None, num_workers=workers, multiprocessing_context="fork")
        seen.append(pairs_of(loader))
        assert sum(seen[-1].values()) == len(dataset)
    assert not set(seen[0]) & set(seen[1])
    assert seen[0] + seen[1] == expected
    assert abs(sum(seen[0].values()) - sum(seen[1].values())) <= 1


def test_rank_comes_from_environment(shard_dir: Path, monkeypatch):
    seen = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        dataset = AugmentedShards(shard_dir)
        assert (dataset.rank, dataset.world_size, len(dataset)) == (rank, 2, 18)
        seen.append(pairs_of(dataset))
    assert seen[0] + seen[1] == all_pairs() and not set(seen[0]) & set(seen[1])


def test_set_epoch_reshuffles_deterministically(shard_dir: Path):
    def order(epoch: int, seed: int = 0) -> list[tuple[int, int]]:
        dataset = AugmentedShards(shard_dir, seed=seed, buffer_size=16)
        dataset.set_epoch(epoch)
        return [(r["source_index"], r["epoch"]) for r in dataset]

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert order(1) != order(1, seed=1)
    assert sorted(order(1)) == sorted(order(2))
    unshuffled = [(r["source_index"], r["epoch"]) for r in AugmentedShards(shard_dir, shuffle=False)]
    assert unshuffled == sorted(unshuffled)


def test_include_real_false_drops_real_crops(shard_dir: Path):
    dataset = AugmentedShards(shard_dir, include_real=False)
    assert len(dataset) == 24
    assert pairs_of(dataset) == all_pairs(include_real=False)
    ranks = [AugmentedShards(shard_dir, include_real=False, rank=r, world_size=3) for r in range(3)]
    assert sum((pairs_of(d) for d in ranks), Counter()) == all_pairs(include_real=False)


def test_transform_is_applied_last(shard_dir: Path):
    def flip(record):
        record["image"] = record["image"].flip(-1)
        record["tag"] = record["epoch"] + 100
        return record

    plain = list(AugmentedShards(shard_dir, shuffle=False))
    flipped = list(AugmentedShards(shard_dir, shuffle=False, transform=flip))
    assert all(torch.equal(a["image"].flip(-1), b["image"]) for a, b in zip(plain, flipped))
    assert [b["tag"] for b in flipped] == [a["epoch"] + 100 for a in plain]


def test_a_single_shard_file_can_be_read(shard_dir: Path):
    dataset = AugmentedShards(shard_dir / "shard-00001.h5", include_real=False)
    assert len(dataset) == 8
    assert pairs_of(dataset) == Counter((s, e) for s in range(4, 8) for e in (0, 1))
