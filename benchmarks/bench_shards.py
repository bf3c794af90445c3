"""Shard storage speed: write/read records/s and file size per compression, and AugmentedShards
throughput against a plain h5py loop over the same files.

    .venv/bin/python benchmarks/bench_shards.py [--records 512] [--sizes 128 256] [--repeats 3]
        [--tables storage loader checksum]

Images are the wild face crops (``$LAFIN_AUG_SHARED_DATA/wild/train``, default
../shared/data beside the repository) resized to each size, or smooth synthetic images when those
are absent; masks are LaMa-style strokes plus a box, one record in four is a real crop with an
empty mask. Files are read right after being written, so the page cache is warm: read figures
measure decompression and h5py overhead, not the disk. Each figure is the best of --repeats runs.
The "in-memory dataset" rows pass batches of the same shapes through the same DataLoader without
reading anything: the ceiling the DataLoader itself sets on this machine. The checksum table times
building AugmentedShards and one first pass through a new dataset and DataLoader with and without
``verify_checksums`` (what every epoch costs with non-persistent workers).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lafin_aug.io import sha256_file
from lafin_aug.runtime import cpu_capability
from lafin_aug.shards import (
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    DEFAULT_MASK_COMPRESSION,
    AugmentedShards,
    ShardHeader,
    shard_name,
    write_manifest,
    write_shard,
)

REPO = Path(__file__).resolve().parents[1]
POINTS = 68
BLOCK = 32


def wild_dir() -> Path:
    """The wild face crops used as realistic image content."""
    return Path(os.environ.get("LAFIN_AUG_SHARED_DATA", REPO.parent / "shared" / "data")) / "wild" / "train"


def load_images(count: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """`count` RGB uint8 images of size x size, and where they came from."""
    files = sorted(wild_dir().glob("*.jpg"))
    if files:
        picks = [files[i % len(files)] for i in range(count)]
        images = [cv2.resize(cv2.imread(str(f))[..., ::-1], (size, size), interpolation=cv2.INTER_AREA)
                  for f in picks]
        return np.stack(images), f"{len(set(picks))} wild face crops from {wild_dir()}"
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = []
    for _ in range(count):
        gradient = np.stack([xx * 200 + 30, yy * 180 + 40, (1 - xx) * 150 + 50], axis=-1)
        noise = cv2.GaussianBlur(rng.uniform(-80, 80, (size, size, 3)).astype(np.float32), (0, 0), size / 32)
        images.append((gradient + noise).clip(0, 255).astype(np.uint8))
    return np.stack(images), "smooth synthetic images (wild crops not found)"


def make_masks(epoch: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Stroke-and-box masks for augmented records, empty for real ones."""
    masks = np.zeros((len(epoch), size, size), np.uint8)
    for mask, e in zip(masks, epoch):
        if e < 0:
            continue
        x, y = rng.integers(0, size // 2, 2)
        mask[y:y + size // 3, x:x + size // 3] = 1
        points = rng.integers(0, size, (6, 2))
        cv2.polylines(mask, [points.reshape(-1, 1, 2).astype(np.int32)], False, 1, max(2, size // 16))
    return masks


def records(count: int, size: int, seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """Shard arrays for `count` records and the image source."""
    rng = np.random.default_rng(seed)
    image, source = load_images(count, size, rng)
    epoch = (np.arange(count) % 4 - 1).astype(np.int32)
    return {
        "image": image,
        "landmarks": rng.uniform(0, size - 1, (count, POINTS, 2)).astype(np.float32),
        "mask": make_masks(epoch, size, rng),
        "source_index": np.arange(count) // 4,
        "epoch": epoch,
        "edited": np.zeros(count, np.uint8),
    }, source


def best_of(repeats: int, fn: Callable[[], int]) -> float:
    """Highest records/s of `repeats` runs of `fn`, which returns the records it handled."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn()
        rates.append(count / (time.perf_counter() - start))
    return max(rates)


def read_dataset(path: Path, name: str) -> int:
    """Read one dataset of a shard sequentially in blocks; the records read."""
    with h5py.File(path, "r") as handle:
        dataset = handle[name]
        for start in range(0, len(dataset), BLOCK):
            dataset[start:start + BLOCK]
        return len(dataset)


def plain_read(paths: list[Path]) -> int:
    """Read every record's image, mask and landmarks sequentially with h5py, in blocks."""
    count = 0
    for path in paths:
        with h5py.File(path, "r") as handle:
            landmarks = handle["landmarks"][:]
            for start in range(0, len(landmarks), BLOCK):
                handle["mask"][start:start + BLOCK]
                count += len(handle["image"][start:start + BLOCK])
    return count


def plain_batches(paths: list[Path]) -> int:
    """plain_read, plus turning each block into a float [B,3,S,S] batch in [0,1] as a loader must."""
    count = 0
    for path in paths:
        with h5py.File(path, "r") as handle:
            landmarks = handle["landmarks"][:]
            for start in range(0, len(landmarks), BLOCK):
                torch.from_numpy(handle["mask"][start:start + BLOCK])
                image = torch.from_numpy(handle["image"][start:start + BLOCK])
                count += len(image.permute(0, 3, 1, 2).contiguous().float().mul_(1.0 / 255.0))
    return count


class InMemory(IterableDataset):
    """The same batches as AugmentedShards from memory: what the DataLoader alone can pass on."""

    def __init__(self, count: int, size: int):
        self.count, self.size = count, size

    def __iter__(self):
        info = get_worker_info()
        image = torch.rand(3, self.size, self.size)
        mask = torch.zeros(1, self.size, self.size, dtype=torch.uint8)
        landmarks = torch.zeros(POINTS, 2)
        for _ in range(self.count // (info.num_workers if info else 1)):
            yield {"image": image.clone(), "landmarks": landmarks.clone(), "mask": mask.clone(), "epoch": 0}


def loader_rate(dataset: IterableDataset, workers: int, repeats: int) -> float:
    """Records/s of passes through a DataLoader (batch 32, persistent workers) after a warm-up pass."""
    loader = DataLoader(dataset, batch_size=BLOCK, num_workers=workers, persistent_workers=workers > 0,
                        multiprocessing_context="fork" if workers else None)
    sum(len(batch["epoch"]) for batch in loader)
    return best_of(repeats, lambda: sum(len(batch["epoch"]) for batch in loader))


def storage_table(sizes: list[int], count: int, repeats: int, tmp: Path) -> None:
    """Print write/read speed and size per compression, image and mask measured apart."""
    print(f"{'size':>4} {'compression':>11} {'write rec/s':>11} {'image read':>10} {'mask read':>9} "
          f"{'both read':>9} {'image KB':>8} {'mask KB':>7}   (read in rec/s, KB per record)")
    for size in sizes:
        data, source = records(count, size)
        header = ShardHeader(POINTS, size, "bench", "train", 0, "")
        schemes = [(c, c) for c in COMPRESSIONS] + [(DEFAULT_COMPRESSION, DEFAULT_MASK_COMPRESSION)]
        for image_scheme, mask_scheme in schemes:
            label = image_scheme if image_scheme == mask_scheme else f"{image_scheme}+{mask_scheme}"
            path = tmp / f"{size}-{label}" / shard_name(0)
            write = best_of(repeats, lambda: write_shard(path, header, compression=image_scheme,
                                                         mask_compression=mask_scheme, **data).records)
            image = best_of(repeats, lambda: read_dataset(path, "image"))
            mask = best_of(repeats, lambda: read_dataset(path, "mask"))
            with h5py.File(path, "r") as handle:
                kb = [handle[n].id.get_storage_size() / 1e3 / count for n in ("image", "mask")]
            print(f"{size:>4} {label:>11} {write:>11.0f} {image:>10.0f} {mask:>9.0f} "
                  f"{1 / (1 / image + 1 / mask):>9.0f} {kb[0]:>8.1f} {kb[1]:>7.1f}")
    print(f"images: {source}; raw sizes per record: image {3 * size * size / 1e3:.1f} KB, "
          f"mask {size * size / 1e3:.1f} KB at {size}px; last row per size = the default")


def loader_shards(size: int, count: int, tmp: Path) -> Path:
    """A directory of 4 shards (default compression) holding `count` records of `size` px."""
    data, _ = records(count, size, seed=1)
    directory = tmp / f"loader-{size}"
    header = ShardHeader(POINTS, size, "bench", "train", 0, "")
    per_shard = count // 4
    rows = [write_shard(directory / shard_name(k), header,
                        **{key: value[k * per_shard:(k + 1) * per_shard] for key, value in data.items()})
            for k in range(4)]
    write_manifest(directory, rows)
    return directory


def loader_table(size: int, count: int, repeats: int, tmp: Path) -> None:
    """Print AugmentedShards records/s (0 and 2 workers) against a plain h5py loop on the same files."""
    directory = loader_shards(size, count, tmp)
    paths = sorted(directory.glob("shard-*.h5"))
    per_shard = count // 4
    plain = best_of(repeats, lambda: plain_read(paths))
    batches = best_of(repeats, lambda: plain_batches(paths))
    print(f"\nreading 4 shards x {per_shard} records of {size}px ({DEFAULT_COMPRESSION} images, "
          f"{DEFAULT_MASK_COMPRESSION} masks), DataLoader batch {BLOCK}, shuffle on, persistent workers, "
          f"after one warm-up pass:")
    print(f"{'reader':>28} {'rec/s':>7} {'vs plain':>8}")
    print(f"{'plain h5py loop':>28} {plain:>7.0f} {1:>8.2f}")
    print(f"{'plain loop + float batches':>28} {batches:>7.0f} {batches / plain:>8.2f}")
    for workers in (0, 2):
        for name, dataset in (("AugmentedShards", AugmentedShards(directory, seed=0)),
                              ("in-memory dataset", InMemory(count, size))):
            rate = loader_rate(dataset, workers, repeats)
            print(f"{f'{name}, {workers} workers':>28} {rate:>7.0f} {rate / plain:>8.2f}")


def fresh_pass(directory: Path, verify_checksums: bool, workers: int) -> int:
    """Records of one pass through a new AugmentedShards and DataLoader (built inside the timing)."""
    dataset = AugmentedShards(directory, seed=0, verify_checksums=verify_checksums)
    loader = DataLoader(dataset, batch_size=BLOCK, num_workers=workers,
                        multiprocessing_context="fork" if workers else None)
    return sum(len(batch["epoch"]) for batch in loader)


def checksum_table(size: int, count: int, repeats: int, tmp: Path) -> None:
    """Print the cost of AugmentedShards' checks: building it, and a first pass with and without checksums.

    A first pass is what every epoch costs with non-persistent DataLoader workers (each new worker
    hashes the shards it reads again); with 0 or persistent workers only the first epoch pays.
    """
    directory = loader_shards(size, count, tmp)
    paths = sorted(directory.glob("shard-*.h5"))
    megabytes = sum(path.stat().st_size for path in paths) / 1e6
    build = min(timed(lambda: AugmentedShards(directory, verify_checksums=False)) for _ in range(repeats))
    hashing = count / min(timed(lambda: [sha256_file(path) for path in paths]) for _ in range(repeats))
    print(f"\nchecks of AugmentedShards on 4 shards x {count // 4} records of {size}px ({megabytes:.1f} MB): "
          f"building it (structure checks, all shards opened) {build * 1e3:.1f} ms; sha256 alone "
          f"{hashing:.0f} rec/s ({hashing * megabytes / count:.0f} MB/s)")
    print(f"{'first pass (new dataset and loader)':>40} {'rec/s':>7} {'vs off':>6}")
    for workers in (0, 2):
        rates = {verify: best_of(repeats, lambda: fresh_pass(directory, verify, workers)) for verify in (False, True)}
        for verify, rate in rates.items():
            label = f"{workers} workers, checksums {'on' if verify else 'off'}"
            print(f"{label:>40} {rate:>7.0f} {rate / rates[False]:>6.2f}")


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


TABLES = ("storage", "loader", "checksum")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES),
                        help="Which measurements to run (loader and checksum at the largest size).")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{os.cpu_count()} CPUs ({cpu_capability()}; load average {os.getloadavg()[0]:.1f}), "
          f"h5py {h5py.__version__}, HDF5 {h5py.version.hdf5_version}, {args.records} records per file, "
          f"best of {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="bench_shards_") as tmp:
        if "storage" in args.tables:
            storage_table(args.sizes, args.records, args.repeats, Path(tmp))
        if "loader" in args.tables:
            loader_table(max(args.sizes), args.records, args.repeats, Path(tmp))
        if "checksum" in args.tables:
            checksum_table(max(args.sizes), args.records, args.repeats, Path(tmp))


if __name__ == "__main__":
    main()
