"""Anomalies of the six AnoVox categories: which split draws which category, and which shapes each has.

Categories and their labels (labels.CATEGORY_TO_LABEL): home 29 (furniture),
animal 30 (body, legs, neck, head), nature 31 (rocks, logs, branches), special 32
(odd props), airplane 33 (fuselage, wings, tail), falling 34 (loose cargo that
tumbles through the air; its motion is set by the scene). Sizes span ankle
height to several metres, and colours come from the same palettes as normal
objects (materials.py), so neither height nor colour alone reveals an anomaly.

Splits hold categories out three ways: `SPLIT_CATEGORIES` gives train, val and
test disjoint categories, so nothing chosen on validation (checkpoints,
thresholds, score rules) has seen a test category. Each category has its own
shape families (`SHAPE_KINDS`, built in anomaly_shapes/), so a held-out
category differs from the training ones in shape, not only in colour. A
model's name is ``'<category>/<kind>'``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from anovox_training.data.synth.anomaly_shapes import CATEGORY_SHAPES
from anovox_training.data.synth.model import Model, model_of_batch
from anovox_training.data.synth.primitives import aabb_half_extents

__all__ = ['BUILDERS', 'SHAPE_KINDS', 'SPLIT_CATEGORIES', 'build_anomaly']

# No category is in two splits.
SPLIT_CATEGORIES: dict[str, tuple[str, ...]] = {
    'train': ('home', 'special'),
    'val': ('nature',),
    'test': ('animal', 'airplane', 'falling'),
}

# The shape families each category draws from; no kind is in two categories.
SHAPE_KINDS: dict[str, tuple[str, ...]] = {
    'home': (
        'table', 'desk', 'chair', 'office_chair', 'stool', 'sofa', 'armchair', 'bed', 'cabinet', 'dresser',
        'appliance', 'tv', 'lamp', 'shelf', 'toilet', 'bathtub', 'piano',
    ),
    'special': (
        'tyres', 'cart', 'suitcase', 'statue', 'ball', 'pallets', 'drums', 'balloon', 'rocket', 'porta_potty',
        'umbrella', 'tent', 'trampoline', 'vending_machine', 'sculpture',
    ),
    'nature': ('rocks', 'boulder', 'log', 'branches', 'fallen_tree', 'stump', 'hay_bale', 'pile'),
    'animal': ('dog', 'deer', 'cow', 'horse', 'pig', 'sheep', 'bird', 'lying'),
    'airplane': ('light', 'jet', 'glider', 'toy', 'drone'),
    'falling': ('ladder', 'plank_bundle', 'sack', 'tarp', 'pipe_bundle', 'carpet_roll', 'coil'),
}  # fmt: skip

# Relative draw weights where they are not uniform (a missing kind weighs 1).
_KIND_WEIGHTS: dict[str, dict[str, float]] = {
    # Random sculptures (any stack of primitives) are the broadest family of their category.
    'special': {'sculpture': 4.0},
    'airplane': {'light': 2.3, 'jet': 1.0, 'glider': 1.0, 'toy': 1.3, 'drone': 1.0},
}


def _draw_kind(category: str, rng: np.random.Generator) -> str:
    kinds = SHAPE_KINDS[category]
    weights = np.array([_KIND_WEIGHTS.get(category, {}).get(k, 1.0) for k in kinds], np.float64)
    return str(rng.choice(kinds, p=weights / weights.sum()))


def build_anomaly(category: str, rng: np.random.Generator, kind: str | None = None) -> Model:
    """One anomaly of ``category``, in its object frame, labelled with the category's id.

    The object's lowest point lies on the ground plane (z = 0) of its frame and
    its footprint is centred on the origin.

    Args:
        category: One of the six AnoVox categories.
        rng: Random generator.
        kind: Shape family (one of ``SHAPE_KINDS[category]``); drawn when None.

    Returns:
        The model, named ``'<category>/<kind>'``.

    Raises:
        KeyError: For an unknown category, or a kind that is not the category's.
    """
    if category not in SHAPE_KINDS:
        msg = f'build_anomaly: unknown category {category!r}; expected one of {sorted(SHAPE_KINDS)}'
        raise KeyError(msg)
    if kind is not None and kind not in SHAPE_KINDS[category]:
        msg = f'build_anomaly: {kind!r} is no shape of {category!r}; expected one of {SHAPE_KINDS[category]}'
        raise KeyError(msg)
    kind = _draw_kind(category, rng) if kind is None else kind
    shapes = CATEGORY_SHAPES[category]
    parts = shapes.base_parts(rng)
    shapes.kinds[kind](rng, parts)
    batch = parts.build()
    # Rest the lowest point on the ground (tilted rocks neither float nor sink), footprint centred.
    half = aabb_half_extents(batch)
    lo, hi = (batch.center - half).min(axis=0), (batch.center + half).max(axis=0)
    offset = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    return model_of_batch(f'{category}/{kind}', batch.transformed(np.eye(3), offset))


# Category -> builder of one anomaly of a random kind (``BUILDERS['home'](rng)``).
BUILDERS: dict[str, Callable[[np.random.Generator], Model]] = {
    category: functools.partial(build_anomaly, category) for category in SHAPE_KINDS
}
