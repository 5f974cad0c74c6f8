"""Semantic label ids, names and colours shared by the reader, generator, model and evaluation.

Ids follow CARLA's raw semantic tags (Cityscapes palette, CARLA >= 0.9.14) for
0..28, AnoVox's anomaly ids 29..34 (one per anomaly category) and 100 (generic or
dynamic anomaly), the "agent mode" actors 112..119 that AnoVox evaluation ignores,
and 214 for the ego vehicle.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    'ANOMALY_CATEGORIES',
    'ANOMALY_COLOR',
    'ANOMALY_LABELS',
    'CATEGORY_TO_LABEL',
    'EGO_LABEL',
    'GENERIC_ANOMALY_LABEL',
    'IGNORED_LABELS',
    'LABEL_COLORS',
    'LABEL_IDS',
    'LABEL_NAMES',
    'LABEL_TO_CATEGORY',
    'ROAD_LINE_LABEL',
    'UNLABELED',
    'is_anomaly',
    'is_ignored',
    'label_colors',
]

# CARLA raw semantic tags (0.9.14+): id -> (name, Cityscapes colour).
_CARLA: dict[int, tuple[str, tuple[int, int, int]]] = {
    0: ('unlabeled', (0, 0, 0)),
    1: ('road', (128, 64, 128)),
    2: ('sidewalk', (244, 35, 232)),
    3: ('building', (70, 70, 70)),
    4: ('wall', (102, 102, 156)),
    5: ('fence', (190, 153, 153)),
    6: ('pole', (153, 153, 153)),
    7: ('traffic_light', (250, 170, 30)),
    8: ('traffic_sign', (220, 220, 0)),
    9: ('vegetation', (107, 142, 35)),
    10: ('terrain', (152, 251, 152)),
    11: ('sky', (70, 130, 180)),
    12: ('pedestrian', (220, 20, 60)),
    13: ('rider', (255, 0, 0)),
    14: ('car', (0, 0, 142)),
    15: ('truck', (0, 0, 70)),
    16: ('bus', (0, 60, 100)),
    17: ('train', (0, 80, 100)),
    18: ('motorcycle', (0, 0, 230)),
    19: ('bicycle', (119, 11, 32)),
    20: ('static', (110, 190, 160)),
    21: ('dynamic', (170, 120, 50)),
    22: ('other', (55, 90, 80)),
    23: ('water', (45, 60, 150)),
    24: ('road_line', (157, 234, 50)),
    25: ('ground', (81, 0, 81)),
    26: ('bridge', (150, 100, 100)),
    27: ('rail_track', (230, 150, 140)),
    28: ('guard_rail', (180, 165, 180)),
}

UNLABELED = 0
ROAD_LINE_LABEL = 24
GENERIC_ANOMALY_LABEL = 100
EGO_LABEL = 214

# AnoVox anomaly categories, in label order.
ANOMALY_CATEGORIES: tuple[str, ...] = ('home', 'animal', 'nature', 'special', 'airplane', 'falling')
CATEGORY_TO_LABEL: dict[str, int] = {name: 29 + i for i, name in enumerate(ANOMALY_CATEGORIES)}
LABEL_TO_CATEGORY: dict[int, str] = {label: name for name, label in CATEGORY_TO_LABEL.items()}

ANOMALY_LABELS: frozenset[int] = frozenset([*CATEGORY_TO_LABEL.values(), GENERIC_ANOMALY_LABEL])
# Agent-mode actors: present in the data, excluded from evaluation.
IGNORED_LABELS: frozenset[int] = frozenset(range(112, 120))

# The colour AnoVox's colour-coded semantic images (Layout A) use for every anomaly.
ANOMALY_COLOR: tuple[int, int, int] = (245, 0, 0)

LABEL_NAMES: dict[int, str] = {
    **{i: name for i, (name, _) in _CARLA.items()},
    **{label: f'anomaly_{name}' for name, label in CATEGORY_TO_LABEL.items()},
    GENERIC_ANOMALY_LABEL: 'anomaly',
    **{i: f'agent_{i - 112}' for i in sorted(IGNORED_LABELS)},
    EGO_LABEL: 'ego',
}

# Name -> id, for code that builds scenes by class name (``LABEL_IDS['car'] == 14``).
LABEL_IDS: dict[str, int] = {name: i for i, name in LABEL_NAMES.items()}

LABEL_COLORS: dict[int, tuple[int, int, int]] = {
    **{i: colour for i, (_, colour) in _CARLA.items()},
    **{label: ANOMALY_COLOR for label in ANOMALY_LABELS},
    **{i: (255, 255, 255) for i in IGNORED_LABELS},
    EGO_LABEL: (255, 255, 255),
}

# Lookup tables indexed by label id (ids fit in a byte; unknown ids map to black / False).
_COLOR_LUT = np.zeros((256, 3), dtype=np.uint8)
for _label, _colour in LABEL_COLORS.items():
    _COLOR_LUT[_label] = _colour
_ANOMALY_LUT = np.zeros(256, dtype=bool)
_ANOMALY_LUT[sorted(ANOMALY_LABELS)] = True
_IGNORED_LUT = np.zeros(256, dtype=bool)
_IGNORED_LUT[sorted(IGNORED_LABELS)] = True


def _as_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer ids and a mask of the ids that fit the 0..255 lookup tables."""
    ids = np.asarray(labels)
    if ids.dtype.kind == 'f':
        # Semantic LiDAR stores tags as float32; tags are whole numbers.
        ids = np.rint(np.nan_to_num(ids, nan=-1.0))
    ids = ids.astype(np.int64)
    valid = (ids >= 0) & (ids < 256)
    return np.where(valid, ids, 0), valid


def is_anomaly(labels: np.ndarray) -> np.ndarray:
    """Boolean mask of anomaly labels (29..34 and 100).

    Args:
        labels: Array of label ids, any shape, integer or float (whole numbers).

    Returns:
        Bool array of the same shape.
    """
    ids, valid = _as_ids(labels)
    return _ANOMALY_LUT[ids] & valid


def is_ignored(labels: np.ndarray) -> np.ndarray:
    """Boolean mask of labels that evaluation ignores (agent-mode actors 112..119)."""
    ids, valid = _as_ids(labels)
    return _IGNORED_LUT[ids] & valid


def label_colors(labels: np.ndarray) -> np.ndarray:
    """RGB colours (..., 3) uint8 of label ids; unknown ids are black."""
    ids, valid = _as_ids(labels)
    return np.where(valid[..., None], _COLOR_LUT[ids], 0).astype(np.uint8)
