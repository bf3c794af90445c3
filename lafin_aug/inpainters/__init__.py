"""Inpainter families behind one interface (see `family.py`), and their checkpoint files.

Built-in families: "lafin" (LaFIn's G_P, `lafin_aug.inpainters.lafin`) and "mdr" (MDRNets,
`lafin_aug.inpainters.mdr`). A family registers itself
with `register_family(InpainterFamily(...))` in its own package; this module imports the built-in
ones so that they are registered once `lafin_aug.inpainters` is imported.
"""
from lafin_aug.inpainters import lafin, mdr  # noqa: F401,E402 - register the built-in families
from lafin_aug.inpainters.family import (
                                         FAMILIES,
                                         Conditions,
                                         InpainterFamily,
                                         InpainterTrainConfig,
                                         build_inpainter,
                                         composite,
                                         register_family,
)
from lafin_aug.inpainters.files import export_inpainter, load_inpainter

__all__ = ["FAMILIES", "Conditions", "InpainterFamily", "InpainterTrainConfig", "build_inpainter", "composite",
           "export_inpainter", "load_inpainter", "register_family"]
