"""A built object (`Model`): named primitives in their object frame, with a footprint size.

Object frames follow parts.py: x forward (the object's heading), y left, z up,
origin on the ground under the footprint centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anovox_training.data.synth.parts import Parts
from anovox_training.data.synth.primitives import PrimitiveBatch

__all__ = ['GLASS_RGB', 'TYRE_RGB', 'Model', 'make_model', 'model_of_batch']

TYRE_RGB = (0.06, 0.06, 0.06)
GLASS_RGB = (0.10, 0.13, 0.16)


@dataclass
class Model:
    """A built object.

    Attributes:
        name: Template name ('car/sedan', 'pedestrian', 'home/sofa', ...).
        parts: Primitives in the object frame.
        size_m: (3,) footprint length (x), width (y) and height (z).
    """

    name: str
    parts: PrimitiveBatch
    size_m: np.ndarray


def make_model(name: str, parts: Parts) -> Model:
    """The Model of built ``parts``; its size is taken from the parts' bounding boxes."""
    return model_of_batch(name, parts.build())


def model_of_batch(name: str, batch: PrimitiveBatch) -> Model:
    """The Model of primitives in an object frame: footprint extent about the origin, height above the ground."""
    corners = batch.corners().reshape(-1, 3)
    size = np.array(
        [
            2 * np.abs(corners[:, 0]).max(),
            2 * np.abs(corners[:, 1]).max(),
            max(corners[:, 2].max(), 0.0),
        ]
    )
    return Model(name, batch, size)
