"""AnoVox voxel rule: nearest point to the voxel centre labels it, road line wins."""

from __future__ import annotations

import numpy as np
import pytest

from anovox_perception.core.errors import DataError
from anovox_perception.core.geometry import anovox_voxel_center, anovox_voxel_index
from anovox_training.data.voxelize import voxelize_labels


def test_point_nearest_the_voxel_centre_gives_the_label():
    centre = anovox_voxel_center(np.array([[510, 500, 30]]))[0]
    points = np.array([centre + [0.2, 0.2, 0.2], centre + [0.01, -0.02, 0.0], centre + [-0.2, 0.0, 0.1]])
    voxels = voxelize_labels(points, np.array([7, 14, 9]))
    np.testing.assert_array_equal(voxels, [[510, 500, 30, 14]])


def test_road_line_wins_even_when_farther_from_the_centre():
    centre = anovox_voxel_center(np.array([[520, 498, 28]]))[0]
    points = np.array([centre, centre + [0.24, 0.24, -0.24]])
    voxels = voxelize_labels(points, np.array([1, 24]))
    np.testing.assert_array_equal(voxels, [[520, 498, 28, 24]])


def test_each_voxel_is_labelled_independently_and_rows_are_sorted():
    # Points 0 and 2 share a voxel (centre (10.25, 0.25, -1.75)); point 0 is nearer its centre.
    points = np.array([[10.1, 0.1, -1.7], [0.3, 0.2, 0.1], [10.45, 0.45, -1.55], [-5.0, 3.0, 2.0]])
    voxels = voxelize_labels(points, np.array([29, 14, 1, 3]))
    assert voxels.dtype == np.uint16
    keys = [tuple(v[:3]) for v in voxels]
    assert keys == sorted(keys)
    by_voxel = {tuple(v[:3]): int(v[3]) for v in voxels}
    assert by_voxel[tuple(anovox_voxel_index(points[:1])[0])] == 29
    assert by_voxel[tuple(anovox_voxel_index(points[1:2])[0])] == 14
    assert by_voxel[tuple(anovox_voxel_index(points[3:])[0])] == 3


def test_indices_follow_the_geometry_rule_exactly_on_random_points():
    rng = np.random.default_rng(3)
    # Points on and near voxel boundaries exercise the rounding.
    points = np.round(rng.uniform(-60, 60, (5000, 3)) * 2) / 2 + rng.choice([0.0, 1e-9, -1e-9], (5000, 3))
    points[:, 2] = np.clip(points[:, 2], -15.9, 15.9)
    labels = np.arange(5000) % 29
    voxels = voxelize_labels(points, labels)
    expected = np.unique(anovox_voxel_index(points), axis=0)
    np.testing.assert_array_equal(voxels[:, :3], expected)


def test_points_outside_the_grid_or_not_finite_are_dropped():
    points = np.array([[0.0, 0.0, 20.0], [300.0, 0.0, 0.0], [np.nan, 0.0, 0.0], [1.0, 1.0, 0.0]])
    voxels = voxelize_labels(points, np.array([1.0, 2.0, 3.0, 4.0], np.float32))
    np.testing.assert_array_equal(voxels[:, 3], [4])


def test_no_points_give_an_empty_uint16_array():
    voxels = voxelize_labels(np.zeros((0, 3)), np.zeros(0))
    assert voxels.shape == (0, 4)
    assert voxels.dtype == np.uint16


def test_mismatched_labels_are_rejected():
    with pytest.raises(DataError, match=r'labels must be \(2,\)'):
        voxelize_labels(np.zeros((2, 3)), np.zeros(3))


def test_points_without_three_columns_are_rejected():
    with pytest.raises(DataError, match=r'points must be \(N, >=3\)'):
        voxelize_labels(np.zeros((4, 2)), np.zeros(4))


def test_negative_labels_are_rejected():
    with pytest.raises(DataError, match='labels must lie in 0..65535'):
        voxelize_labels(np.zeros((1, 3)), np.array([-1]))
