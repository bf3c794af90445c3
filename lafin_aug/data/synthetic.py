"""The embedded default dataset: drawn faces with exact 68-point iBUG landmarks, any count, from a seed.

Face `index` of a split is decided by ``numpy.random.default_rng((seed, split_id, index))`` alone,
so it is byte-identical on every call (and across machines with the same numpy and OpenCV
versions), and the train and test splits draw from disjoint seed streams. Each record's metadata carries the full :class:`FaceSpec` (pose,
expression, proportions, colours, hair, occluder, light, camera), from which the image is
re-rendered identically.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lafin_aug.data.base import DatasetError, FaceReader, OnError, Record, register_reader
from lafin_aug.data.render import (
    HAIR_STYLES,
    OCCLUDERS,
    Appearance,
    Camera,
    Expression,
    FaceSpec,
    Identity,
    Pose,
    face_geometry,
    render_face,
)

SPLIT_IDS = {"train": 0, "test": 1}

#: Skin tones from very light to very dark (RGB); a face's tone is interpolated between neighbours.
SKIN_TONES = np.array([(255, 224, 196), (241, 194, 164), (224, 172, 135), (198, 134, 99), (161, 102, 72),
                       (111, 70, 50), (72, 46, 35)], dtype=float)
#: Natural hair colours with their sampling weights; a small share of faces get a dyed colour instead.
HAIR_COLOURS = np.array([(25, 22, 22), (55, 38, 28), (100, 70, 45), (130, 62, 35), (195, 160, 105),
                         (225, 200, 150), (150, 148, 145), (220, 218, 212)], dtype=float)
HAIR_WEIGHTS = np.array([0.3, 0.24, 0.14, 0.06, 0.08, 0.04, 0.08, 0.06])
#: Iris colours: dark brown, brown, hazel, green, blue, grey.
IRIS_COLOURS = np.array([(50, 32, 22), (85, 55, 35), (120, 95, 50), (80, 110, 70), (80, 120, 165),
                         (110, 120, 125)], dtype=float)
IRIS_WEIGHTS = np.array([0.3, 0.3, 0.12, 0.08, 0.12, 0.08])
LIPSTICKS = np.array([(170, 20, 40), (200, 80, 110), (120, 30, 60), (180, 90, 80)], dtype=float)
HAIR_STYLE_WEIGHTS = (0.08, 0.12, 0.35, 0.15, 0.15, 0.15)  # in HAIR_STYLES order
OCCLUDER_WEIGHTS = (0.62, 0.12, 0.04, 0.08, 0.07, 0.03, 0.04)  # in OCCLUDERS order


def face_spec(seed: int, split: str, index: int, size: int = 256) -> FaceSpec:
    """The spec of face `index` in `split` of the synthetic dataset with this `seed`."""
    rng = np.random.default_rng((seed, SPLIT_IDS[split], index))
    return sample_spec(rng, size)


def sample_spec(rng: np.random.Generator, size: int = 256) -> FaceSpec:
    """A random face spec drawn from the dataset's distribution."""
    return FaceSpec(size=size, pose=sample_pose(rng), identity=sample_identity(rng),
                    expression=sample_expression(rng), appearance=sample_appearance(rng),
                    camera=sample_camera(rng), detail_seed=int(rng.integers(2 ** 31)))


def sample_pose(rng: np.random.Generator) -> Pose:
    """Yaw within ±35°, pitch ±15°, roll mostly small up to ±20°, landmark box 40-70% of the image."""
    return Pose(yaw=float(rng.uniform(-35, 35)), pitch=float(rng.uniform(-15, 15)),
                roll=float(np.clip(rng.normal(0, 8), -20, 20)), scale=float(rng.uniform(0.4, 0.7)),
                shift_x=float(rng.uniform(-1, 1)), shift_y=float(rng.uniform(-1, 1)))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Proportions within the range of adult faces."""
    u = rng.uniform
    return Identity(face_width=float(u(0.9, 1.1)), face_length=float(u(0.92, 1.08)), jaw_width=float(u(0.85, 1.1)),
                    eye_size=float(u(0.85, 1.2)), eye_spacing=float(u(-0.04, 0.04)),
                    nose_length=float(u(0.88, 1.12)), nose_width=float(u(0.85, 1.3)),
                    mouth_width=float(u(0.85, 1.15)), lip_thickness=float(u(0.7, 1.4)),
                    brow_height=float(u(-0.04, 0.06)))


def sample_expression(rng: np.random.Generator) -> Expression:
    """Mostly closed mouths and open eyes, with smiles, open mouths, blinks, winks and brow movement."""
    mouth_open = 0.0 if rng.random() < 0.55 else float(rng.uniform(0.05, 1.0) ** 1.3)
    kind = rng.random()
    base = float(rng.uniform(0, 0.2))
    if kind < 0.82:
        eyes = (base, float(np.clip(base + rng.normal(0, 0.04), 0, 1)))
    elif kind < 0.92:
        eyes = (float(rng.uniform(0.75, 1.0)),) * 2
    else:  # a wink
        eyes = (float(rng.uniform(0.6, 1.0)), base)
        if rng.random() < 0.5:
            eyes = eyes[::-1]
    gaze = np.clip(rng.normal(0, 0.35, 2), -1, 1)
    return Expression(mouth_open=mouth_open, smile=float(rng.uniform(-0.3, 1.0)),
                      brow_raise=float(rng.uniform(-0.8, 1.0)), eye_close_left=eyes[0], eye_close_right=eyes[1],
                      gaze_x=float(gaze[0]), gaze_y=float(gaze[1]))


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Skin, lips, eyes, hair, clothing and occluder."""
    skin = _skin_tone(rng)
    lips = _mix(skin, np.array([170.0, 60, 75]), rng.uniform(0.35, 0.6)) * rng.uniform(0.72, 0.9)
    if rng.random() < 0.12:
        lips = _mix(lips, LIPSTICKS[rng.integers(len(LIPSTICKS))], rng.uniform(0.5, 0.9))
    iris = IRIS_COLOURS[rng.choice(len(IRIS_COLOURS), p=IRIS_WEIGHTS)] * rng.uniform(0.85, 1.15, 3)
    style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=HAIR_STYLE_WEIGHTS)]
    fringe = style in ("bangs", "swept", "parted")
    return Appearance(
        skin=_rgb(skin), lips=_rgb(lips), iris=_rgb(iris), hair=_rgb(_hair_colour(rng)), hair_style=style,
        hair_long=bool(style not in ("bald", "buzz") and rng.random() < 0.4),
        hair_volume=float(rng.uniform(0.01, 0.03) if style == "buzz" else rng.uniform(0.04, 0.2)),
        hairline=float(rng.uniform(-0.62, -0.38) if fringe else rng.uniform(-1.25, -0.85)),
        brow_density=float(rng.uniform(0.3, 1.0)), brow_thickness=float(rng.uniform(0.7, 1.35)),
        shirt=_rgb(rng.uniform(10, 245, 3)),
        occluder=OCCLUDERS[rng.choice(len(OCCLUDERS), p=OCCLUDER_WEIGHTS)])


def sample_camera(rng: np.random.Generator) -> Camera:
    """Light mostly from above, exposure and colour cast, and mild blur, noise and JPEG loss."""
    return Camera(light_azimuth=float(270 + rng.normal(0, 60)), light_elevation=float(rng.uniform(25, 80)),
                  ambient=float(rng.uniform(0.3, 0.7)), shine=float(rng.uniform(0, 0.2)),
                  exposure=float(rng.uniform(0.85, 1.15)),
                  colour_gain=tuple(float(g) for g in np.clip(1 + rng.normal(0, 0.06, 3), 0.85, 1.15)),
                  blur=0.0 if rng.random() < 0.5 else float(rng.uniform(0.3, 1.2)),
                  noise=float(rng.uniform(0, 6)),
                  jpeg_quality=0 if rng.random() < 0.5 else int(rng.integers(35, 96)))


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    position = rng.uniform(0, len(SKIN_TONES) - 1)
    low = int(position)
    high = min(low + 1, len(SKIN_TONES) - 1)
    tone = _mix(SKIN_TONES[low], SKIN_TONES[high], position - low)
    return tone * rng.uniform(0.93, 1.05) * np.array([rng.uniform(0.97, 1.03), 1.0, rng.uniform(0.92, 1.06)])


def _hair_colour(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.06:
        return rng.uniform(20, 240, 3)
    return HAIR_COLOURS[rng.choice(len(HAIR_COLOURS), p=HAIR_WEIGHTS)] * rng.uniform(0.85, 1.15)


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * t


def _rgb(colour: np.ndarray) -> tuple[int, int, int]:
    r, g, b = np.clip(np.round(colour), 0, 255).astype(int)
    return int(r), int(g), int(b)


@register_reader
class SyntheticReader(FaceReader):
    """`count` drawn faces of `size`x`size` pixels with exact 68-point landmarks; `root` is ignored."""

    kind = "synthetic"
    splits = ("train", "test")
    schema_name = "ibug68"

    def __init__(self, root: str | Path | None = None, split: str = "train", on_error: OnError = "skip",
                 count: int = 512, seed: int = 0, size: int = 256):
        if count < 0:
            raise ValueError(f"synthetic: count must be >= 0, not {count}")
        if size < 32:
            raise ValueError(f"synthetic: size must be at least 32 pixels, not {size}")
        self.count, self.seed, self.size = count, seed, size
        super().__init__(root, split, on_error)

    def _scan(self) -> Iterator[Record | DatasetError]:
        source = f"synthetic:{self.split}:seed={self.seed}"
        for index in range(self.count):
            spec = face_spec(self.seed, self.split, index, self.size)
            meta = dict(spec.to_meta(), seed=self.seed, split=self.split, face=index)
            yield Record(None, face_geometry(spec).landmarks, meta, source=source, line=index)

    def _load_image(self, record: Record) -> np.ndarray:
        image, _ = render_face(FaceSpec.from_meta(record.meta))
        return image
