"""Targets: AnoVox voxels onto the detector grid, label lookup tables, size buckets."""

from __future__ import annotations

import numpy as np
import pytest

from anovox_perception.core.errors import DataError
from anovox_perception.core.geometry import GridSpec
from anovox_training.data.targets import (
    EMPTY,
    IGNORE_INDEX,
    anomaly_lut,
    class_lut,
    dense_labels,
    size_bucket,
    sparse_targets,
)
from anovox_training.model.config import NORMAL_CLASSES

GRID = GridSpec(x_min_m=-4.0, x_max_m=12.0, y_min_m=-8.0, y_max_m=8.0, z_min_m=-3.0, z_max_m=1.0)


def test_voxels_inside_the_grid_become_flat_cells_with_their_labels():
    # Detector cell (0, 0, 0) is AnoVox voxel (492, 484, 26).
    voxels = np.array(
        [
            [492, 484, 26, 1],  # cell (0, 0, 0)
            [500, 500, 30, 31],  # cell (8, 16, 4)
            [491, 484, 26, 1],  # outside in x
            [500, 500, 34, 14],  # outside in z (z max 1 m -> AnoVox iz 34 is cell 8)
        ],
        dtype=np.uint16,
    )
    targets = sparse_targets(voxels, GRID)
    expected = GRID.flat_index(np.array([[0, 0, 0], [8, 16, 4]]))
    np.testing.assert_array_equal(np.sort(targets.index), np.sort(expected))
    dense = dense_labels(targets, GRID)
    assert dense.shape == (32, 32, 8) and dense[0, 0, 0] == 1 and dense[8, 16, 4] == 31
    assert (dense == EMPTY).sum() == dense.size - 2


def test_a_cell_listed_twice_keeps_its_last_label():
    voxels = np.array([[500, 500, 30, 1], [500, 500, 30, 24]], dtype=np.uint16)
    targets = sparse_targets(voxels, GRID)
    assert targets.label.tolist() == [24]


def test_malformed_voxel_arrays_are_rejected_with_the_frame_named():
    with pytest.raises(DataError, match=r'Scenario_x frame 3: voxel grid must be \(M, 4\)'):
        sparse_targets(np.zeros((2, 3)), GRID, where='Scenario_x frame 3')
    with pytest.raises(DataError, match='labels must be in 0..254'):
        sparse_targets(np.array([[500, 500, 30, 255]]), GRID)


def test_label_tables_map_normal_anomaly_ignored_and_empty_labels():
    classes = tuple(NORMAL_CLASSES)
    cls, anom = class_lut(classes), anomaly_lut()
    assert cls[1] == cls[24] == classes.index('road') and cls[14] == classes.index('vehicle')
    for label in (29, 31, 100, 113, 214, EMPTY):
        assert cls[label] == IGNORE_INDEX, label
    assert anom[29] == anom[34] == anom[100] == 1 and anom[1] == anom[14] == 0
    assert anom[112] == anom[119] == anom[214] == anom[EMPTY] == IGNORE_INDEX
    with pytest.raises(DataError, match="unknown normal class 'sky'"):
        class_lut(('road', 'sky'))


def test_size_buckets_follow_the_largest_dimension():
    assert size_bucket(np.array([0.5, 0.9, 0.3])) == 'small'
    assert size_bucket(np.array([1.0, 0.2, 0.2])) == 'medium'
    assert size_bucket(np.array([3.0, 1.0, 1.0])) == 'large'
    assert size_bucket(np.array([np.nan, 1.0, 1.0])) == 'unknown'
