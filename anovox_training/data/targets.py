"""Ground truth on the detector grid: AnoVox voxels -> per-voxel labels and training targets.

Ground truth is kept sparse (flat cell index + label id per voxel) for storage and
evaluation, and made dense, ``(nx, ny, nz)`` uint8 label ids with
:data:`EMPTY` for free cells, for training. Lookup tables turn label ids into
the three training targets (occupancy, normal class, anomaly) without loops.

Agent-mode actors (112..119) and the ego vehicle (214) are occupied space but
carry no class: they count for occupancy and are ignored by the semantic and
anomaly terms and by evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anovox_perception.core.errors import DataError
from anovox_perception.core.geometry import GridSpec
from anovox_training.data.labels import ANOMALY_LABELS, EGO_LABEL, IGNORED_LABELS, LABEL_TO_CATEGORY
from anovox_training.model.config import NORMAL_CLASSES

__all__ = [
    'EMPTY',
    'EVAL_IGNORED_LABELS',
    'IGNORE_INDEX',
    'SIZE_BUCKETS',
    'SparseTargets',
    'anomaly_lut',
    'category_of_label',
    'class_lut',
    'dense_labels',
    'size_bucket',
    'sparse_targets',
]

EMPTY = 255  # label value of free cells in dense grids (no AnoVox label uses it)
IGNORE_INDEX = 255  # target value the losses skip
EVAL_IGNORED_LABELS: frozenset[int] = frozenset(IGNORED_LABELS | {EGO_LABEL})
# Anomaly size buckets by the object's largest dimension (m): upper bounds, exclusive.
SIZE_BUCKETS: dict[str, float] = {'small': 1.0, 'medium': 2.5, 'large': float('inf')}


@dataclass(frozen=True)
class SparseTargets:
    """Ground-truth voxels of one frame inside the detector grid.

    Attributes:
        index: (M,) int64 row-major flat cell indices into (nx, ny, nz), unique.
        label: (M,) uint8 label ids.
    """

    index: np.ndarray
    label: np.ndarray


def sparse_targets(voxels: np.ndarray, grid: GridSpec, where: str = 'frame') -> SparseTargets:
    """AnoVox voxels (M, 4) [ix, iy, iz, label] -> the ones inside ``grid``, as flat indices.

    When a cell appears twice, the later entry wins (AnoVox writes one label per voxel).

    Args:
        voxels: (M, 4) integer array of AnoVox indices and label ids.
        grid: Detector grid (must be aligned with AnoVox voxels).
        where: Scenario / frame name used in error messages.

    Raises:
        DataError: When ``voxels`` is not (M, 4) or holds labels above 255.
    """
    arr = np.asarray(voxels)
    if arr.ndim != 2 or arr.shape[1] != 4:
        msg = f'{where}: voxel grid must be (M, 4) [ix, iy, iz, label], got shape {arr.shape}'
        raise DataError(msg)
    labels = arr[:, 3].astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() > 254):
        msg = f'{where}: voxel labels must be in 0..254, got {labels.min()}..{labels.max()}'
        raise DataError(msg)
    idx, inside = grid.from_anovox(arr[:, :3].astype(np.int64))
    flat = grid.flat_index(idx[inside])
    labels = labels[inside]
    # Keep the last occurrence of each cell: unique over the reversed order.
    _, first_rev = np.unique(flat[::-1], return_index=True)
    keep = len(flat) - 1 - first_rev
    return SparseTargets(index=flat[keep].astype(np.int64), label=labels[keep].astype(np.uint8))


def dense_labels(targets: SparseTargets, grid: GridSpec) -> np.ndarray:
    """(nx, ny, nz) uint8 label ids, :data:`EMPTY` for free cells."""
    out = np.full(grid.nx * grid.ny * grid.nz, EMPTY, dtype=np.uint8)
    out[targets.index] = targets.label
    return out.reshape(grid.shape)


def class_lut(classes: tuple[str, ...]) -> np.ndarray:
    """(256,) int64: label id -> normal class index, :data:`IGNORE_INDEX` for anomalies, ignored and empty.

    Raises:
        DataError: When a class name is not one of the known normal classes.
    """
    lut = np.full(256, IGNORE_INDEX, dtype=np.int64)
    for k, name in enumerate(classes):
        if name not in NORMAL_CLASSES:
            msg = f'unknown normal class {name!r}; known: {list(NORMAL_CLASSES)}'
            raise DataError(msg)
        lut[list(NORMAL_CLASSES[name])] = k
    return lut


def anomaly_lut() -> np.ndarray:
    """(256,) int64: label id -> 1 anomaly, 0 normal, :data:`IGNORE_INDEX` for ignored labels and empty."""
    lut = np.zeros(256, dtype=np.int64)
    lut[sorted(ANOMALY_LABELS)] = 1
    lut[sorted(EVAL_IGNORED_LABELS)] = IGNORE_INDEX
    lut[EMPTY] = IGNORE_INDEX
    return lut


def category_of_label(label: int) -> str:
    """AnoVox category name of an anomaly label id ('generic' for 100)."""
    return LABEL_TO_CATEGORY.get(int(label), 'generic')


def size_bucket(size_m: np.ndarray) -> str:
    """Size bucket of an anomaly from its (l, w, h) in metres ('unknown' when not finite)."""
    size = np.asarray(size_m, dtype=np.float64)
    if size.shape != (3,) or not np.all(np.isfinite(size)):
        return 'unknown'
    largest = float(size.max())
    for name, upper in SIZE_BUCKETS.items():
        if largest < upper:
            return name
    return 'large'
