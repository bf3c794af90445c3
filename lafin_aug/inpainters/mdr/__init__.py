"""MDRNets (Coordinated Face Inpainting with Memory-Disentangled Refinement Networks) as a family.

Its semantic map is drawn from the ground-truth landmarks (`uses_parsing`), which is where LaFIn's
landmark guidance meets MDRNets' semantic memory.
"""
from lafin_aug.inpainters.family import InpainterFamily, register_family
from lafin_aug.inpainters.mdr.config import MDRConfig, MDRTrainConfig
from lafin_aug.inpainters.mdr.generator import MDRGenerator

FAMILY = register_family(InpainterFamily(
    name="mdr", model_config=MDRConfig, model=MDRGenerator, train_config=MDRTrainConfig,
    trainer="lafin_aug.inpainters.mdr.trainer:train_mdr", uses_parsing=True))

__all__ = ["FAMILY", "MDRConfig", "MDRGenerator", "MDRTrainConfig"]
