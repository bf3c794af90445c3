"""Training samples: every face of a reader cropped once to S×S and held in memory, plus batch assembly."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from lafin_aug.data.base import DatasetError, FaceReader
from lafin_aug.data.crop import crop_face
from lafin_aug.data.masks import MaskConfig, make_mask
from lafin_aug.landmarks import flip_landmarks, schema_for


@dataclass
class CropBank:
    """Face crops of one reader: images [N,S,S,3] uint8, landmarks [N,P,2] float32, reader indices [N]."""

    images: np.ndarray
    landmarks: np.ndarray
    source_index: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> int:
        return self.images.shape[1]

    @property
    def points(self) -> int:
        return self.landmarks.shape[1]

    def subset(self, indices: np.ndarray) -> CropBank:
        """The crops at `indices` (e.g. a fraction of the training set)."""
        return CropBank(self.images[indices], self.landmarks[indices], self.source_index[indices])


def crop_bank(reader: FaceReader, size: int, progress: bool = True) -> CropBank:
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
        raise ValueError(f"{reader.kind} dataset at {reader.root} ({reader.split}) has no usable faces")
    return CropBank(np.stack(images), np.stack(landmarks).astype(np.float32), np.asarray(kept, np.int64))


def masked_batch(bank: CropBank, indices: np.ndarray, epochs: np.ndarray, seed: int,
                 masks: MaskConfig, flips: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """A batch of crops with their epoch's masks: image [B,3,S,S] in [0,1], mask [B,1,S,S], landmarks [B,P,2].

    `flips` (bool [B]) mirrors chosen samples left-right, landmarks re-labelled; the mask is drawn
    for (seed, epoch, reader index) and is not mirrored.
    """
    size = bank.size
    images = bank.images[indices].copy()
    landmarks = bank.landmarks[indices].copy()
    if flips is not None:
        schema_for(bank.points)  # fail early on an unknown markup
        for k in np.flatnonzero(flips):
            images[k] = images[k, :, ::-1]
            landmarks[k] = flip_landmarks(landmarks[k], size)
    mask = np.stack([make_mask(size, seed, int(e), int(bank.source_index[i]), masks)
                     for i, e in zip(indices, epochs)])
    return {
        "image": torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255),
        "mask": torch.from_numpy(mask).unsqueeze(1).float(),
        "landmarks": torch.from_numpy(landmarks),
    }
