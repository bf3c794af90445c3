"""Face crops in memory: every usable face of a dataset cropped once to S×S, and masked batches of them."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from lafin_aug.data.base import DatasetError, FaceReader
from lafin_aug.data.crop import crop_face
from lafin_aug.data.masks import MaskConfig, make_mask
from lafin_aug.data.spec import DatasetSpec, open_reader
from lafin_aug.images import to_tensor
from lafin_aug.landmarks import flip_landmarks, resolve_schema

log = logging.getLogger(__name__)


@dataclass
class FaceCrops:
    """Face crops of one reader: images [N,S,S,3] uint8, landmarks [N,P,2] float32, reader indices [N],
    `skipped`, a one-line account of the records the reader skipped ("" when none), and `schema`, the
    name of the landmarks' schema (None: the registered schema with P points)."""

    images: np.ndarray
    landmarks: np.ndarray
    source_index: np.ndarray
    skipped: str = ""
    schema: str | None = None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> int:
        return self.images.shape[1]

    @property
    def points(self) -> int:
        return self.landmarks.shape[1]

    def subset(self, indices: np.ndarray) -> FaceCrops:
        """The crops at `indices` (e.g. a fraction of the training set)."""
        return FaceCrops(self.images[indices], self.landmarks[indices], self.source_index[indices], self.skipped,
                         self.schema)


def crop_dataset(reader: FaceReader, size: int, progress: bool = True) -> FaceCrops:
    """Crop every readable face of `reader` to size×size; bad records follow the reader's on_error policy."""
    images, landmarks, kept = [], [], []
    for index in tqdm(range(len(reader)), desc=f"cropping {reader.kind} {reader.split} to {size}px",
                      unit="face", disable=not progress, leave=False):
        try:
            face = reader[index]
        except DatasetError as error:
            reader.reject(error)
            continue
        cropped = crop_face(face.image, face.landmarks, size)
        images.append(cropped.image)
        landmarks.append(cropped.landmarks)
        kept.append(index)
    if not images:
        raise ValueError(f"{reader.kind} dataset at {reader.root} ({reader.split}) has no usable faces"
                         + (f": {reader.skipped_summary()}" if reader.skipped.total else ""))
    schema = reader.schema
    return FaceCrops(np.stack(images), np.stack(landmarks).astype(np.float32), np.asarray(kept, np.int64),
                     reader.skipped_summary(), schema.name if schema is not None else None)


def masked_batch(bank: FaceCrops, indices: np.ndarray, epochs: np.ndarray, seed: int,
                 masks: MaskConfig, flips: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """A batch of crops with their epoch's masks: image [B,3,S,S] in [0,1], mask [B,1,S,S], landmarks [B,P,2].

    `flips` (bool [B]) mirrors chosen samples left-right, landmarks re-labelled; the mask is drawn
    for (seed, epoch, reader index) and is not mirrored.
    """
    size = bank.size
    images = bank.images[indices].copy()
    landmarks = bank.landmarks[indices].copy()
    if flips is not None:
        schema = resolve_schema(bank.schema, bank.points)  # fail early on an unknown markup
        for k in np.flatnonzero(flips):
            images[k] = images[k, :, ::-1]
            landmarks[k] = flip_landmarks(landmarks[k], size, schema)
    mask = np.stack([make_mask(size, seed, int(e), int(bank.source_index[i]), masks)
                     for i, e in zip(indices, epochs)])
    return {
        "image": to_tensor(images),
        "mask": torch.from_numpy(mask).unsqueeze(1).float(),
        "landmarks": torch.from_numpy(landmarks),
    }


def load_crops(spec: DatasetSpec, size: int, progress: bool = True) -> FaceCrops:
    """Every usable face of `spec` cropped to size×size (bad records skipped and reported)."""
    crops = crop_dataset(open_reader(spec), size, progress=progress)
    if crops.skipped:
        log.warning("%s", crops.skipped)
    return crops
