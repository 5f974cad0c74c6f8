"""Shape families (kinds) of the six anomaly categories, one module per category.

Each module gives `base_parts(rng)` (the category's label, default material and
colour) and `KINDS`, a name-to-builder table whose builders add one kind's
primitives to those parts. No kind appears in two categories, and the kinds of
one category share no structure with another's (test_synth_anomaly_shapes.py
compares them), so a category held out of training is new in shape, not only in
colour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from anovox_training.data.synth.anomaly_shapes import airplane, animal, falling, home, nature, special
from anovox_training.data.synth.parts import Parts

__all__ = ['CATEGORY_SHAPES', 'CategoryShapes', 'ShapeBuilder']

ShapeBuilder = Callable[[np.random.Generator, Parts], None]


class CategoryShapes(NamedTuple):
    """How one category's anomalies are built.

    Attributes:
        base_parts: New parts with the category's label, default material and colour.
        kinds: Kind name -> builder that adds that kind's primitives to the parts.
    """

    base_parts: Callable[[np.random.Generator], Parts]
    kinds: dict[str, ShapeBuilder]


CATEGORY_SHAPES: dict[str, CategoryShapes] = {
    module.CATEGORY: CategoryShapes(module.base_parts, module.KINDS)
    for module in (home, animal, nature, special, airplane, falling)
}
