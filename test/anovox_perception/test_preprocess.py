"""Preprocessing: images, LiDAR BEV and camera geometry tensors."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from anovox_perception.core.errors import ConfigError, DecodeError, GeometryError
from anovox_perception.core.geometry import OPTICAL_FROM_BODY, CameraModel, GridSpec, make_transform, rotation_from_rpy
from anovox_perception.core.preprocess import (
    INPUT_NAMES,
    InputSpec,
    build_inputs,
    camera_geometry,
    input_shapes,
    normalise_image,
    points_to_bev,
    prepare_image,
)
from anovox_perception.tools.bench_pointcloud import bev_per_point, lidar_sweep

GRID = GridSpec(x_min_m=-4.0, x_max_m=12.0, y_min_m=-8.0, y_max_m=8.0, z_min_m=-3.0, z_max_m=1.0)
SPEC = InputSpec(grid=GRID, image_width=96, image_height=64, image_stride=8, bev_stride=4, lift_heights_m=(-1.5, 0.0))
CAMERA = CameraModel.from_fov(768, 512, 90.0)
T_FORWARD = make_transform(OPTICAL_FROM_BODY, np.zeros(3))


def test_bev_marks_the_height_slice_and_column_statistics_of_each_point():
    points = np.array(
        [
            [0.25, 0.25, -2.75, 0.5],  # cell (8, 16, 0)
            [0.30, 0.40, 0.70, 1.0],  # same column, slice 7
            [5.0, -3.0, -1.0, 0.2],  # cell (18, 10, 4)
        ],
        dtype=np.float32,
    )
    bev = points_to_bev(points, SPEC)
    nz = GRID.nz
    assert bev.shape == (nz + 4, 32, 32)
    assert bev[0, 8, 16] == 1 and bev[7, 8, 16] == 1 and bev[4, 18, 10] == 1
    assert bev[:nz].sum() == 3
    np.testing.assert_allclose(bev[nz, 8, 16], math.log1p(2) / math.log1p(64), rtol=1e-6)
    np.testing.assert_allclose(bev[nz + 1, 8, 16], 0.75, rtol=1e-6)
    np.testing.assert_allclose(bev[nz + 2, 8, 16], (0.70 + 3) / 4, rtol=1e-6)  # highest point
    np.testing.assert_allclose(bev[nz + 3, 8, 16], (-2.75 + 3) / 4, rtol=1e-6)  # lowest point
    np.testing.assert_allclose(bev[nz + 2, 18, 10], 0.5, rtol=1e-6)
    assert np.count_nonzero(bev[nz]) == 2


def test_bev_drops_points_outside_the_grid_and_non_finite_points():
    points = np.array([[100.0, 0, 0], [0, 0, 5.0], [np.nan, 0, 0], [np.inf, 1, 1], [0, -8.01, -1]])
    assert not points_to_bev(points, SPEC).any()


def test_bev_of_an_empty_cloud_is_all_zero_and_intensity_is_optional():
    assert not points_to_bev(np.zeros((0, 4), np.float32), SPEC).any()
    bev = points_to_bev(np.array([[1.0, 1.0, -1.0]]), SPEC)
    assert bev[GRID.nz + 1].sum() == 0 and bev[: GRID.nz].sum() == 1


def test_bev_ignoring_intensity_zeroes_only_the_intensity_channel():
    rng = np.random.default_rng(5)
    points = np.column_stack(
        [rng.uniform(-4, 12, 300), rng.uniform(-8, 8, 300), rng.uniform(-3, 1, 300), rng.random(300)]
    )
    used = points_to_bev(points, SPEC)
    ignored = points_to_bev(points, replace(SPEC, lidar_intensity='ignore'))
    channel = GRID.nz + 1
    assert used[channel].any() and not ignored[channel].any()
    np.testing.assert_array_equal(np.delete(ignored, channel, axis=0), np.delete(used, channel, axis=0))
    # The same tensor as a cloud without an intensity field.
    np.testing.assert_array_equal(ignored, points_to_bev(points[:, :3], SPEC))


# The default detector grid (AnoVox-aligned, 160 x 160 x 16), where the float32 fast path applies.
ANOVOX_SPEC = InputSpec(grid=GridSpec(), image_width=96, image_height=64, image_stride=8)
# Cell edges, values that float64 rounds differently from exact arithmetic (tiny negatives), non-finite and huge.
EDGE_VALUES = np.array(
    [-16.0, 64.0, -40.0, 40.0, -3.0, 5.0, 0.0, -0.0, 0.25, -0.25, -0.5000001, 1e30, -1e30, np.nan, np.inf, -np.inf]
    + [-1e-30, 1e-30, -(2.0**-46), -(2.0**-45), -(2.0**-44), -(2.0**-50), -(2.0**-49), -(2.0**-48), -(2.0**-21)],
    dtype=np.float32,
)


def _edge_cloud(seed: int, n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = rng.choice(EDGE_VALUES, size=(n, 4))
    points[:, 3] = rng.choice(np.array([0.5, -1.0, 2.0, np.nan, np.inf, -np.inf, 1e30], np.float32), n)
    jitter = rng.uniform([-16, -40, -3, 0], [64, 40, 5, 1], (n, 4)).astype(np.float32)
    return np.concatenate([points, jitter]).astype(np.float32)


@pytest.mark.parametrize(
    'spec',
    [ANOVOX_SPEC, replace(ANOVOX_SPEC, intensity_max=0.7), replace(ANOVOX_SPEC, lidar_intensity='ignore'), SPEC],
    ids=['anovox_grid', 'intensity_max', 'intensity_ignored', 'small_grid'],
)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_bev_equals_the_per_point_voxeliser_bit_for_bit_at_cell_edges_and_non_finite_values(spec, dtype):
    points = _edge_cloud(seed=3).astype(dtype)
    np.testing.assert_array_equal(points_to_bev(points, spec), bev_per_point(points, spec))


def test_bev_equals_the_per_point_voxeliser_on_a_64_beam_sweep_with_no_returns():
    fields = lidar_sweep(n_beams=64, n_azimuth=120, seed=4)
    points = np.stack([fields['x'], fields['y'], fields['z'], fields['intensity']], axis=1)
    assert np.isnan(points[:, 0]).any()  # upward beams over open sky
    bev = points_to_bev(points, ANOVOX_SPEC)
    assert bev[: ANOVOX_SPEC.grid.nz].sum() > 100
    np.testing.assert_array_equal(bev, bev_per_point(points, ANOVOX_SPEC))


def test_bev_occupies_exactly_the_cells_grid_cell_index_gives_tiny_negatives_included():
    points = _edge_cloud(seed=5)[:, :3]
    index, inside = ANOVOX_SPEC.grid.cell_index(points)
    expected = np.zeros(ANOVOX_SPEC.grid.shape, dtype=bool)
    expected[tuple(index[inside].T)] = True
    occupied = points_to_bev(points, ANOVOX_SPEC)[: ANOVOX_SPEC.grid.nz].transpose(1, 2, 0) > 0
    np.testing.assert_array_equal(occupied, expected)
    # -2**-46 m is in the cell below 0 by exact arithmetic, but float64 rounds x + 250 to 250 (cell 0 side).
    tiny = np.array([[-(2.0**-46), 0.25, 0.25]], dtype=np.float32)
    assert ANOVOX_SPEC.grid.cell_index(tiny)[0][0, 0] == 32
    assert points_to_bev(tiny, ANOVOX_SPEC)[6, 32, 80] == 1  # z 0.25 m: slice 6 of z in [-3, 5)


def test_normalised_image_equals_the_float_arithmetic_bit_for_bit():
    rgb = np.random.default_rng(6).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    x = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    x = (x - np.asarray(SPEC.image_mean, np.float32)) / np.asarray(SPEC.image_std, np.float32)
    out = normalise_image(rgb, SPEC)
    assert out.flags.c_contiguous and out.dtype == np.float32
    np.testing.assert_array_equal(out, x.transpose(2, 0, 1))


def test_bev_rejects_a_point_array_without_xyz_columns():
    with pytest.raises(DecodeError, match=r'\(N, >=3\)'):
        points_to_bev(np.zeros((4, 2)), SPEC)


def test_image_of_the_mean_colour_normalises_to_zero_at_the_model_size():
    mean = np.round(np.array(SPEC.image_mean) * 255).astype(np.uint8)
    rgb = np.broadcast_to(mean, (512, 768, 3)).copy()
    out = prepare_image(rgb, SPEC)
    assert out.shape == (3, 64, 96) and out.dtype == np.float32
    assert np.abs(out).max() < 0.01


def test_image_rejects_non_rgb_arrays():
    with pytest.raises(DecodeError, match=r'\(H, W, 3\) uint8'):
        prepare_image(np.zeros((64, 96), np.uint8), SPEC)


def _manual_uv(point: np.ndarray, cam: CameraModel) -> tuple[float, float]:
    """Forward-looking camera at the LiDAR origin: optical x = -y, y = -z, z = x."""
    x, y, z = point
    return cam.cx - cam.fx * y / x, cam.cy - cam.fy * z / x


def test_cell_projection_matches_a_hand_computed_pinhole_projection():
    geo = camera_geometry(SPEC, CAMERA, T_FORWARD)
    cam = CAMERA.scaled(96, 64)
    # Query cell (ix, iy) = (5, 3): centre x = -4 + 5.5 * 2 = 7, y = -8 + 3.5 * 2 = -1; lift height 0 (index 1).
    u, v = _manual_uv(np.array([7.0, -1.0, 0.0]), cam)
    np.testing.assert_allclose(geo['cell_uv'][0, 1, 5, 3], [u / 96 * 2 - 1, v / 64 * 2 - 1], atol=1e-6)
    assert geo['cell_valid'][0, 1, 5, 3] == 1
    # Cells behind the camera (x < 0) are never valid.
    assert not geo['cell_valid'][0, :, :2].any()


def test_cell_rays_are_unit_directions_with_log_distance():
    geo = camera_geometry(SPEC, CAMERA, T_FORWARD)
    rays = geo['cell_rays'][0].reshape(2, 4, 8, 8)
    np.testing.assert_allclose(np.linalg.norm(rays[:, :3], axis=1), 1.0, atol=1e-6)
    expected = np.array([7.0, -1.0, 0.0])
    np.testing.assert_allclose(rays[1, :3, 5, 3], expected / np.linalg.norm(expected), atol=1e-6)
    np.testing.assert_allclose(rays[1, 3, 5, 3], np.log(np.linalg.norm(expected)) / 4, atol=1e-6)


def test_token_rays_follow_the_camera_mount():
    forward = camera_geometry(SPEC, CAMERA, T_FORWARD)['token_rays'][0]
    assert forward.shape == (3, 8, 12)
    centre = forward[:, 3:5, 5:7].mean(axis=(1, 2))
    np.testing.assert_allclose(centre / np.linalg.norm(centre), [1, 0, 0], atol=1e-6)
    # A camera yawed 90 degrees to the left looks along +y of the LiDAR frame.
    body_from_cam = make_transform(rotation_from_rpy(0, 0, math.pi / 2), np.zeros(3))
    t_left = make_transform(OPTICAL_FROM_BODY, np.zeros(3)) @ np.linalg.inv(body_from_cam)
    left = camera_geometry(SPEC, CAMERA, t_left)['token_rays'][0]
    centre = left[:, 3:5, 5:7].mean(axis=(1, 2))
    np.testing.assert_allclose(centre / np.linalg.norm(centre), [0, 1, 0], atol=1e-6)


def test_build_inputs_returns_every_input_with_its_static_shape():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (512, 768, 3), dtype=np.uint8)
    points = rng.uniform(-5, 10, (500, 4)).astype(np.float32)
    inputs = build_inputs(SPEC, rgb, points, CAMERA, T_FORWARD)
    assert tuple(inputs) == INPUT_NAMES
    for name, shape in input_shapes(SPEC).items():
        assert inputs[name].shape == shape, name
        assert inputs[name].dtype == np.float32
        assert inputs[name].flags.writeable
    assert inputs['camera_valid'][0, 0] == 1


def test_build_inputs_without_an_image_marks_the_camera_invalid():
    points = np.array([[5.0, 0.0, -1.0, 0.3]], np.float32)
    inputs = build_inputs(SPEC, None, points, CAMERA, T_FORWARD)
    assert inputs['camera_valid'][0, 0] == 0 and not inputs['image'].any()
    assert inputs['cell_valid'].any()  # geometry is still there
    bare = build_inputs(SPEC, None, points, None, None)
    assert not bare['cell_valid'].any() and bare['bev'].any()


def test_build_inputs_rejects_an_image_that_does_not_match_the_camera():
    with pytest.raises(DecodeError, match='100x50 but the camera model is 768x512'):
        build_inputs(SPEC, np.zeros((50, 100, 3), np.uint8), np.zeros((1, 3)), CAMERA, T_FORWARD)


def test_build_inputs_rejects_a_non_rigid_extrinsic():
    bad = np.eye(4)
    bad[0, 0] = 2.0
    with pytest.raises(GeometryError, match='proper rotation'):
        build_inputs(SPEC, None, np.zeros((1, 3)), CAMERA, bad)


def test_input_spec_round_trips_through_a_dict_and_rejects_bad_values():
    assert InputSpec.from_dict(SPEC.to_dict()) == SPEC
    assert SPEC.to_dict()['bev_channels'] == GRID.nz + 4
    with pytest.raises(ConfigError, match='unknown keys'):
        InputSpec.from_dict({**SPEC.to_dict(), 'colour': 1})
    with pytest.raises(ConfigError, match='bev_channels=3 does not match'):
        InputSpec.from_dict({**SPEC.to_dict(), 'bev_channels': 3})
    with pytest.raises(ConfigError, match='not a multiple of image_stride'):
        InputSpec(grid=GRID, image_width=100, image_height=64)
    with pytest.raises(ConfigError, match='not divisible by bev_stride'):
        InputSpec(grid=GRID, image_width=96, image_height=64, bev_stride=5)


def test_input_spec_without_lidar_intensity_means_use_and_ignore_round_trips():
    assert 'lidar_intensity' not in SPEC.to_dict()  # specs written before the option read back unchanged
    assert InputSpec.from_dict(SPEC.to_dict()).lidar_intensity == 'use'
    ignoring = replace(SPEC, lidar_intensity='ignore')
    assert ignoring.to_dict()['lidar_intensity'] == 'ignore'
    assert InputSpec.from_dict(ignoring.to_dict()) == ignoring
    with pytest.raises(ConfigError, match=r"lidar_intensity must be one of \('use', 'ignore'\), got 'drop'"):
        replace(SPEC, lidar_intensity='drop')
