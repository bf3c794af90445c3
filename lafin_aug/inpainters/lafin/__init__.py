"""LaFIn (Generative Landmark Guided Face Inpainting): G_P and its adversarial trainer, as a family."""
from lafin_aug.inpainters.family import InpainterFamily, register_family
from lafin_aug.inpainters.lafin.config import LafinConfig, LafinTrainConfig
from lafin_aug.inpainters.lafin.generator import LafinGenerator

FAMILY = register_family(InpainterFamily(
    name="lafin", model_config=LafinConfig, model=LafinGenerator, train_config=LafinTrainConfig,
    trainer="lafin_aug.inpainters.lafin.trainer:train_lafin"))

__all__ = ["FAMILY", "LafinConfig", "LafinGenerator", "LafinTrainConfig"]
