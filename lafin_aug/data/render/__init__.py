"""Deterministic synthetic faces: a posable 3D model of the 68 iBUG points, drawn with exact landmarks.

The landmarks returned with an image are the projected model points, and every drawn feature
(the jaw silhouette, eyelids, lips, brows, nostrils) passes through them: the labels are exact.
Modules, each depending only on those listed before it:

- ``spec``: the model's mean shape and point groups, the hair styles and occluders, and the
  :class:`FaceSpec` dataclasses (pose, identity, expression, appearance, camera).
- ``geometry``: deformation, pose, silhouette and projection of the model (:func:`face_geometry`).
- ``paint``: the :class:`Painter`, the face's colour :class:`Palette` and colour and outline helpers.
- ``shading``: the light map and the camera's finish of the output image.
- ``occluders``: glasses, hands, hats, microphones and objects drawn over the face.
- ``face``: the background and the person, back to front, and :func:`render_face`.
"""
from lafin_aug.data.render.face import head_outline, render_face
from lafin_aug.data.render.geometry import face_geometry
from lafin_aug.data.render.paint import Painter, ellipse_points
from lafin_aug.data.render.spec import (
                                        EYES,
                                        HAIR_STYLES,
                                        OCCLUDERS,
                                        Appearance,
                                        Camera,
                                        Expression,
                                        FaceSpec,
                                        Identity,
                                        Pose,
)

__all__ = ["EYES", "HAIR_STYLES", "OCCLUDERS", "Appearance", "Camera", "Expression", "FaceSpec", "Identity",
           "Painter", "Pose", "ellipse_points", "face_geometry", "head_outline", "render_face"]
