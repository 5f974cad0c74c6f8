"""Synthetic world: sensor culling never drops a hit, ground casting, ray layouts."""

from __future__ import annotations

import numpy as np

from anovox_perception.core.geometry import CameraModel
from anovox_training.data.synth.ground import RoadLayout
from anovox_training.data.synth.parts import Parts, yaw_rotation
from anovox_training.data.synth.raycast import GROUND, SKY, cast
from anovox_training.data.synth.sensors import CameraRig, LidarRig

ROAD = RoadLayout(lanes_per_direction=1, lane_width_m=3.5, sidewalk_width_m=3.0, kerb_height_m=0.15)
ORIGIN = np.array([3.0, -1.75, 1.8])


def _scene(seed: int):
    """Random primitives all around the sensor: near, far, behind, above, crossing the camera plane."""
    rng = np.random.default_rng(seed)
    parts = Parts(14, 0, (0.5, 0.5, 0.5))
    for _ in range(60):
        centre = ORIGIN + rng.uniform([-40, -25, -2], [60, 25, 6])
        size = rng.uniform(0.1, 6.0, 3)
        rpy = rng.uniform(-1.0, 1.0, 3)
        kind = rng.integers(3)
        if kind == 0:
            parts.box(centre, size, rpy=rpy)
        elif kind == 1:
            parts.ellipsoid(centre, size / 2, rpy=rpy)
        else:
            parts.cylinder(centre, size[0] / 2, size[2], taper=rng.uniform(0, 1.5), rpy=rpy)
    # A wall right beside the sensor and a box straddling the azimuth seam behind it.
    parts.box(ORIGIN + [0.0, 2.5, 0.0], (30.0, 0.3, 6.0))
    parts.box(ORIGIN + [-6.0, 0.0, 0.0], (1.0, 2.0, 1.0))
    return parts.build()


def _full_rects(prims, rows: int, cols: int) -> np.ndarray:
    n = len(prims)
    zeros = np.zeros(n, np.int64)
    return np.stack([np.arange(n), zeros, np.full(n, rows), zeros, np.full(n, cols)], axis=1)


def test_camera_culling_gives_the_same_image_as_testing_every_ray():
    rig = CameraRig(CameraModel.from_fov(96, 64, 90.0))
    pose = yaw_rotation(0.2)
    dirs = np.einsum('ij,jhw->ihw', pose, rig.body_dirs())
    for seed in range(3):
        prims = _scene(seed)
        culled = cast(ORIGIN, dirs, prims, rig.rects(prims, ORIGIN, pose), ROAD)
        brute = cast(ORIGIN, dirs, prims, _full_rects(prims, 64, 96), ROAD)
        np.testing.assert_array_equal(culled[1], brute[1])
        np.testing.assert_array_equal(culled[0], brute[0])


def test_lidar_culling_gives_the_same_scan_as_testing_every_ray():
    rig = LidarRig(channels=16, azimuth_steps=180)
    pose = yaw_rotation(-2.9)
    dirs = np.einsum('ij,jhw->ihw', pose, rig.body_dirs())
    for seed in range(3):
        prims = _scene(seed)
        culled = cast(ORIGIN, dirs, prims, rig.rects(prims, ORIGIN, pose), ROAD)
        brute = cast(ORIGIN, dirs, prims, _full_rects(prims, 16, 180), ROAD)
        hit = brute[0] <= rig.range_m
        np.testing.assert_array_equal(culled[1][hit], brute[1][hit])
        np.testing.assert_array_equal(culled[0][hit], brute[0][hit])


def test_camera_depth_parameter_is_planar_depth_on_the_road():
    rig = CameraRig(CameraModel.from_fov(96, 64, 90.0))
    centre_line = np.array([0.0, 0.0, 1.8])
    t, pid, _ = cast(centre_line, rig.body_dirs(), Parts(1, 0, (0, 0, 0)).build(), np.zeros((0, 5), np.int64), ROAD)
    rows = np.arange(64)
    v = (rows + 0.5 - 32) / rig.camera.fy
    below = v > 0
    # A ray through image row v meets the flat road at depth h / v (road pixels in the middle column).
    centre = t[below, 48]
    np.testing.assert_allclose(centre, 1.8 / v[below], rtol=1e-9)
    assert (pid[~below] == SKY).all() and (pid[below] == GROUND).all()


def test_lidar_beams_span_the_vertical_field_of_view():
    rig = LidarRig()
    el = np.degrees(rig.elevations_rad)
    np.testing.assert_allclose([el[0], el[-1]], [15.0, -25.0])
    assert len(el) == 64
    d = rig.body_dirs()
    assert d.shape == (3, 64, 1024)
    np.testing.assert_allclose(np.linalg.norm(d, axis=0), 1.0)


def test_kerb_faces_and_sidewalk_are_hit_at_kerb_height():
    rig = LidarRig(channels=64, azimuth_steps=360)
    t, pid, kerb = cast(ORIGIN, rig.body_dirs(), Parts(1, 0, (0, 0, 0)).build(), np.zeros((0, 5), np.int64), ROAD)
    points = ORIGIN + np.moveaxis(rig.body_dirs(), 0, -1) * np.where(np.isfinite(t), t, 0.0)[..., None]
    ground = pid == GROUND
    beyond = ground & (np.abs(points[..., 1]) > ROAD.half_width_m + 1e-6)
    np.testing.assert_allclose(points[beyond][:, 2], ROAD.kerb_height_m, atol=1e-9)
    on_kerb = kerb != 0
    assert on_kerb.any()
    np.testing.assert_allclose(np.abs(points[on_kerb][:, 1]), ROAD.half_width_m, atol=1e-9)
