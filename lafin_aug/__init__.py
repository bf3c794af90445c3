"""lafin-aug: landmark-guided face inpainting as training-data augmentation for landmark detectors.

The streaming API for other training loops: `AugmentedShards` (records of `lafin-aug generate`
shards) and `OnTheFlyAugment` (fresh pairs in memory).
"""
__version__ = "0.1.0"

from lafin_aug.augment import OnTheFlyAugment  # noqa: E402
from lafin_aug.shards import AugmentedShards  # noqa: E402

__all__ = ["AugmentedShards", "OnTheFlyAugment", "__version__"]
