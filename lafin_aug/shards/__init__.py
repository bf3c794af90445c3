"""Augmented-record shards: the HDF5 format (version 1), its manifest, verification, and the
IterableDataset that streams them into any detector's training loop.

- :mod:`lafin_aug.shards.format`: the format (its table and the compression figures), ShardHeader,
  ManifestRow, write_shard, manifest.csv and run.json, open_shard and shard_errors, and the record
  checks the writer and both readers share;
- :mod:`lafin_aug.shards.verify`: verify_shards and its VerifyReport, completeness against
  ``shards_planned``, stale temporaries of interrupted writes;
- :mod:`lafin_aug.shards.dataset`: AugmentedShards and to_record, and what is refused where (with
  the checksum's measured cost);
- :mod:`lafin_aug.shards.split`: the split of one pass over ranks and DataLoader workers and the
  shuffle buffer, shared by AugmentedShards and OnTheFlyAugment.

Re-exported here are the names imported from ``lafin_aug.shards`` elsewhere; anything else is
imported from its module.
"""
from lafin_aug.shards.adapters import ArrayTransform, albumentations_transform
from lafin_aug.shards.dataset import AugmentedShards, to_record
from lafin_aug.shards.format import (COMPRESSIONS, DEFAULT_COMPRESSION, DEFAULT_MASK_COMPRESSION, MANIFEST_NAME,
                                     RUN_CONFIG_NAME, ManifestRow, ShardFormatError, ShardHeader, open_shard,
                                     read_manifest, read_run_config, read_shard_header, shard_errors, shard_name,
                                     write_manifest, write_shard)
from lafin_aug.shards.verify import remove_stale_temporaries, verify_shards

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_COMPRESSION",
    "DEFAULT_MASK_COMPRESSION",
    "MANIFEST_NAME",
    "RUN_CONFIG_NAME",
    "ArrayTransform",
    "AugmentedShards",
    "ManifestRow",
    "ShardFormatError",
    "ShardHeader",
    "albumentations_transform",
    "open_shard",
    "read_manifest",
    "read_run_config",
    "read_shard_header",
    "remove_stale_temporaries",
    "shard_errors",
    "shard_name",
    "to_record",
    "verify_shards",
    "write_manifest",
    "write_shard",
]
