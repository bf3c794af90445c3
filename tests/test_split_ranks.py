"""Both streaming datasets split one pass over real torch.distributed ranks and DataLoader workers:
the ranks' records are disjoint and together hold every record exactly once per epoch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from test_shards import all_pairs, make_shards

pytestmark = pytest.mark.filterwarnings("ignore:VGG-19")

FACES = 5  # odd, so the ranks' shares differ by one

_RANK_WORKER = """
import json
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from lafin_aug import AugmentedShards, OnTheFlyAugment
from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.runtime import init_distributed

rank, world = init_distributed(torch.device("cpu"))
assert dist.is_initialized() and dist.get_backend() == "gloo"
bank = crop_dataset(open_dataset("synthetic", count={faces}, seed=1), 32, progress=False)
datasets = {{"onthefly": OnTheFlyAugment(bank, {inpainter!r}, batch=2, precision="fp32"),
            "shards": AugmentedShards({shards!r}, seed=1, buffer_size=4)}}
seen = {{}}
for name, dataset in datasets.items():
    for workers in (0, 2):
        for epoch in (0, 1):
            dataset.set_epoch(epoch)
            loader = DataLoader(dataset, batch_size=None, num_workers=workers,
                                multiprocessing_context="fork" if workers else None)
            records = [[int(r["source_index"]), int(r["epoch"])] for r in loader]
            seen[f"{{name}} {{workers}} {{epoch}}"] = {{"len": len(dataset), "records": records}}
with open({out!r}.format(rank), "w") as handle:
    json.dump({{"world": world, "seen": seen}}, handle)
dist.destroy_process_group()
"""


@pytest.fixture(scope="module")
def ranks(tiny_runs, tmp_path_factory) -> list[dict]:
    """What each of 2 torchrun ranks (gloo) read from both datasets, per DataLoader workers and epoch."""
    root = tmp_path_factory.mktemp("split-ranks")
    make_shards(root / "shards")
    out = str(root / "rank{}.json")
    script = root / "worker.py"
    script.write_text(_RANK_WORKER.format(faces=FACES, inpainter=str(tiny_runs[0]), shards=str(root / "shards"),
                                          out=out))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(Path(out.format(rank)).read_text()) for rank in (0, 1)]


def split_of(ranks: list[dict], key: str) -> list[Counter]:
    """Each rank's (source_index, epoch) records under `key`, after checking it yielded len() of them."""
    counters = []
    for rank in ranks:
        assert rank["world"] == 2
        seen = rank["seen"][key]
        assert len(seen["records"]) == seen["len"], key
        counters.append(Counter(tuple(r) for r in seen["records"]))
    return counters


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("epoch", [0, 1])
def test_on_the_fly_ranks_cover_every_face_once_per_epoch(ranks, workers: int, epoch: int):
    first, second = split_of(ranks, f"onthefly {workers} {epoch}")
    assert not set(first) & set(second)
    assert first + second == Counter((s, epoch) for s in range(FACES))
    assert sorted([sum(first.values()), sum(second.values())]) == [FACES // 2, FACES - FACES // 2]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("epoch", [0, 1])
def test_shard_ranks_cover_every_record_once_per_epoch(ranks, workers: int, epoch: int):
    first, second = split_of(ranks, f"shards {workers} {epoch}")
    assert not set(first) & set(second)
    assert first + second == all_pairs()
    assert sum(first.values()) == sum(second.values()) == sum(all_pairs().values()) // 2
