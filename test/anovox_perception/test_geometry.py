"""Geometry: grid/voxel mappings and camera round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anovox_perception.core.errors import GeometryError
from anovox_perception.core.geometry import (
    CameraModel,
    GridSpec,
    anovox_voxel_center,
    anovox_voxel_index,
    camera_from_lidar,
    invert_transform,
    transform_points,
)
from anovox_training.data.carla_mount import carla_mount_to_body

GRID = GridSpec()
finite = st.floats(min_value=-200, max_value=200, allow_nan=False, allow_infinity=False)


def test_default_grid_has_the_designed_shape_and_anovox_offset():
    assert GRID.shape == (160, 160, 16)
    # x_min=-16 -> (250-16)/0.5 = 468; y_min=-40 -> 420; z_min=-3 -> 26
    assert GRID.anovox_offset == (468, 420, 26)


def test_sensor_origin_is_anovox_voxel_500_500_32():
    np.testing.assert_array_equal(anovox_voxel_index(np.zeros((1, 3))), [[500, 500, 32]])


@settings(max_examples=200, deadline=None)
@given(x=finite, y=finite, z=st.floats(min_value=-15.9, max_value=15.9))
def test_point_lands_in_the_same_voxel_through_detector_cell_and_anovox_index(x, y, z):
    p = np.array([[x, y, z]])
    idx, inside = GRID.cell_index(p)
    direct = anovox_voxel_index(p)
    if inside[0]:
        np.testing.assert_array_equal(GRID.to_anovox(idx), direct)
        back, ok = GRID.from_anovox(direct)
        assert ok[0]
        np.testing.assert_array_equal(back, idx)
    else:
        _, ok = GRID.from_anovox(direct)
        assert not ok[0]


@settings(max_examples=100, deadline=None)
@given(ix=st.integers(0, 999), iy=st.integers(0, 999), iz=st.integers(0, 63))
def test_anovox_voxel_centre_maps_back_to_its_index(ix, iy, iz):
    idx = np.array([[ix, iy, iz]])
    np.testing.assert_array_equal(anovox_voxel_index(anovox_voxel_center(idx)), idx)


def test_cell_centres_round_trip_and_flat_index_matches_numpy_ravel():
    rng = np.random.default_rng(0)
    idx = np.stack([rng.integers(0, n, 50) for n in GRID.shape], axis=1)
    back, inside = GRID.cell_index(GRID.cell_center(idx))
    assert inside.all()
    np.testing.assert_array_equal(back, idx)
    np.testing.assert_array_equal(GRID.flat_index(idx), np.ravel_multi_index(idx.T, GRID.shape))


def test_non_finite_points_are_outside_the_grid():
    _, inside = GRID.cell_index(np.array([[np.nan, 0, 0], [np.inf, 0, 0], [1.0, 1.0, 0.0]]))
    np.testing.assert_array_equal(inside, [False, False, True])


def test_grid_off_the_anovox_lattice_is_rejected():
    with pytest.raises(GeometryError, match='lattice'):
        GridSpec(x_min_m=-16.25, x_max_m=63.75)
    with pytest.raises(GeometryError, match='whole number'):
        GridSpec(x_max_m=64.3)


def test_grid_from_dict_rejects_unknown_keys():
    with pytest.raises(GeometryError, match='unknown keys'):
        GridSpec.from_dict({'x_min': -16.0})
    assert GridSpec.from_dict(GRID.to_dict()) == GRID


def test_anovox_mono_camera_intrinsics():
    cam = CameraModel.from_fov(768, 512, 90.0)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == pytest.approx((384.0, 384.0, 384.0, 256.0))


@settings(max_examples=100, deadline=None)
@given(u=st.floats(0.01, 767.9), v=st.floats(0.01, 511.9), d=st.floats(0.5, 150.0))
def test_unproject_then_project_returns_the_pixel(u, v, d):
    cam = CameraModel.from_fov(768, 512, 90.0)
    p = cam.unproject(np.array([[u, v]]), np.array([d]))
    uv, visible = cam.project(p)
    assert visible[0]
    np.testing.assert_allclose(uv[0], [u, v], atol=1e-6)


def test_points_behind_the_camera_are_not_visible():
    cam = CameraModel.from_fov(768, 512, 90.0)
    _, visible = cam.project(np.array([[0.0, 0.0, -5.0], [0.0, 0.0, 5.0]]))
    np.testing.assert_array_equal(visible, [False, True])


def test_mono_rig_camera_sees_a_point_ahead_of_the_lidar_at_the_image_centre_and_left_is_left():
    body_cam = carla_mount_to_body((0, 0, 1.8), (0, 0, 0))
    body_lidar = carla_mount_to_body((0, 0, 1.8), (0, 0, 0))
    t = camera_from_lidar(body_cam, body_lidar)
    cam = CameraModel.from_fov(768, 512, 90.0)
    uv, vis = cam.project(transform_points(t, np.array([[10.0, 0.0, 0.0], [10.0, 2.0, 1.0]])))
    assert vis.all()
    np.testing.assert_allclose(uv[0], [384.0, 256.0])
    assert uv[1, 0] < 384.0  # +y (left) lands left of centre
    assert uv[1, 1] < 256.0  # +z (up) lands above centre


def test_carla_yaw_right_turns_the_sensor_towards_negative_y():
    t = carla_mount_to_body((1.0, 0.5, 2.0), (0.0, 90.0, 0.0))
    np.testing.assert_allclose(t[:3, 3], [1.0, -0.5, 2.0])
    forward = t[:3, :3] @ np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(forward, [0.0, -1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(invert_transform(t) @ t, np.eye(4), atol=1e-12)
