"""Synthetic world: per-scenario rigs (ranges, layouts, determinism), LiDAR returns, shaped ground and draping."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from anovox_training.data.labels import LABEL_IDS
from anovox_training.data.synth import GenerateConfig, WorldSettings, build_scenario
from anovox_training.data.synth.drape import drape, footprint_relief
from anovox_training.data.synth.ground import RoadLayout
from anovox_training.data.synth.lidar_returns import LidarResponse, lidar_returns
from anovox_training.data.synth.materials import ASPHALT
from anovox_training.data.synth.parts import Parts
from anovox_training.data.synth.primitives import PrimitiveBatch, aabb_half_extents
from anovox_training.data.synth.raycast import GROUND, cast
from anovox_training.data.synth.sensors import LidarRig
from anovox_training.data.synth.variation import BEAM_LAYOUTS, RigVariation, beam_elevations_deg

SHAPED = RoadLayout(
    lanes_per_direction=1,
    lane_width_m=3.5,
    kerb_height_m=0.2,
    grade=0.05,
    vertical_curvature_per_m=-2e-4,
    camber=0.02,
    crown_m=0.1,
    verge_slope=0.05,
)


def _config(**kw) -> GenerateConfig:
    args = {'out': Path('unused'), 'split': 'train', 'scenarios': 1, 'frames': 1, 'seed': 3}
    return GenerateConfig(**(args | kw))


def test_each_scenario_draws_its_own_rig_and_the_same_one_every_time():
    cfg = _config()
    rigs = [cfg.rig(i) for i in range(12)]
    assert [cfg.rig(i) for i in range(12)] == rigs
    assert len({(r.lidar_mount, r.camera.camera) for r in rigs}) == 12
    assert _config(variation=RigVariation.fixed()).rig(5) == cfg.base_rig()


def test_drawn_rigs_stay_within_the_documented_ranges_and_keep_the_ray_budget():
    cfg, v = _config(width=384, height=256), RigVariation()
    layouts, shapes, modes = set(), set(), set()
    for i in range(150):
        rig = cfg.rig(i)
        lidar, cam = rig.lidar, rig.camera.camera
        x, y, z = rig.lidar_mount.location
        roll, pitch, yaw = rig.lidar_mount.rotation
        assert (x, y, yaw) == (0.0, 0.0, 0.0) and v.lidar_height_m[0] <= z <= v.lidar_height_m[1]
        assert abs(pitch) <= 2.0 and abs(roll) <= 1.0
        layouts.add(next(name for name, el in BEAM_LAYOUTS.items() if el == lidar.beam_elevations_deg))
        rays = lidar.channels * lidar.azimuth_steps
        assert 0.7 * 64 * 1024 <= rays <= 1.3 * 64 * 1024
        assert 0.01 <= lidar.noise_stddev_m <= 0.1 and 0.0 <= lidar.response.dropout_rate <= 0.1
        modes.add(lidar.response.intensity_mode)
        shapes.add(round(cam.width / cam.height, 1))
        assert 0.85 * 384 * 256 <= cam.width * cam.height <= 1.15 * 384 * 256
        cx, cy, cz = rig.camera_mount.location
        assert -0.1 <= cx <= 0.5 and abs(cy) <= 0.3 and z - 0.3 - 1e-9 <= cz <= z + 0.15 + 1e-9
        assert rig.camera.shadows and 0.7 <= rig.camera.exposure <= 1.35
    assert layouts == set(BEAM_LAYOUTS)
    assert shapes == {1.5, 3.3, 1.8, 1.3}
    assert modes == {'reflectance', 'constant', 'random'}


def test_hdl64e_layout_has_two_blocks_with_different_spacing():
    el = np.array(beam_elevations_deg('hdl64e'))
    assert len(el) == 64 and el[0] == 2.0 and el[-1] == -24.8
    gaps = -np.diff(el)
    np.testing.assert_allclose(gaps[:31], 1 / 3, atol=1e-3)
    np.testing.assert_allclose(gaps[32:], 15.97 / 31, atol=1e-3)
    rig = LidarRig.from_elevations(tuple(el))
    np.testing.assert_allclose(np.degrees(rig.elevations_rad), el)
    assert rig.body_dirs().shape == (3, 64, rig.azimuth_steps)


def test_beam_layouts_must_match_the_channel_count_and_field_of_view():
    with pytest.raises(ValueError, match='strictly decreasing elevations'):
        LidarRig(channels=3, upper_fov_deg=2.0, lower_fov_deg=-2.0, beam_elevations_deg=(2.0, 0.0))
    with pytest.raises(KeyError, match='beam layout .* unknown'):
        beam_elevations_deg('hdl128')
    with pytest.raises(ValueError, match="unknown camera shape 'fisheye'"):
        RigVariation(camera_shape_weights=(('fisheye', 1.0),))


def _hits(n: int, range_m: float, material: int = ASPHALT, grey: float = 0.4, cos: float = 1.0):
    return np.full(n, range_m), np.full(n, material, np.uint8), np.full((n, 3), grey), np.full(n, cos)


def test_random_dropout_loses_its_share_of_rays():
    rng = np.random.default_rng(0)
    keep, _ = lidar_returns(LidarResponse(dropout_rate=0.2), rng, *_hits(20000, 10.0))
    assert abs((1 - keep.mean()) - 0.2) < 0.015


def test_dark_far_and_grazing_surfaces_return_less():
    response = LidarResponse(detection_range_m=60.0, albedo_weight=0.8)

    def share(**kw) -> float:
        keep, _ = lidar_returns(response, np.random.default_rng(1), *_hits(20000, **kw))
        return float(keep.mean())

    near, far = share(range_m=20.0), share(range_m=60.0)
    assert near > 0.95 and far < 0.8
    assert share(range_m=40.0, grey=0.05) < share(range_m=40.0, grey=0.6) - 0.1
    assert share(range_m=40.0, cos=0.05) < share(range_m=40.0, cos=1.0) - 0.1
    # CARLA's response (the default) returns every hit and draws no random numbers.
    rng = np.random.default_rng(2)
    keep, _ = lidar_returns(LidarResponse(), rng, *_hits(100, 99.0))
    assert keep.all() and rng.random() == np.random.default_rng(2).random()


def test_uninformative_intensity_modes_ignore_the_surface():
    dark, bright = _hits(500, 10.0, grey=0.05), _hits(500, 10.0, grey=0.9)
    constant = LidarResponse(intensity_mode='constant', intensity_constant=0.3)
    for hits in (dark, bright):
        _, intensity = lidar_returns(constant, np.random.default_rng(0), *hits)
        np.testing.assert_array_equal(intensity, np.float32(0.3))
    _, noise = lidar_returns(LidarResponse(intensity_mode='random'), np.random.default_rng(0), *dark)
    assert 0.4 < noise.mean() < 0.6 and noise.std() > 0.25
    with pytest.raises(ValueError, match="intensity_mode 'loud'"):
        LidarResponse(intensity_mode='loud')


def test_ray_cast_ground_points_lie_on_the_ground_height_function():
    rig = LidarRig(channels=64, azimuth_steps=720)
    for origin in (np.array([0.0, -1.75, 1.9]), np.array([150.0, 1.0, 10.0])):
        origin = origin + [0.0, 0.0, float(SHAPED.height(origin[0], origin[1]))]
        dirs = rig.body_dirs()
        t, pid, kerb = cast(origin, dirs, PrimitiveBatch.empty(), np.zeros((0, 5), np.int64), SHAPED)
        points = origin + np.moveaxis(dirs, 0, -1) * np.where(np.isfinite(t), t, 0.0)[..., None]
        ground = (pid == GROUND) & (kerb == 0)
        assert ground.sum() > 0.3 * t.size
        p = points[ground]
        np.testing.assert_allclose(p[:, 2], SHAPED.height(p[:, 0], p[:, 1]), atol=1e-7)
        on_kerb = points[kerb != 0]
        assert len(on_kerb)
        np.testing.assert_allclose(np.abs(on_kerb[:, 1]), SHAPED.half_width_m, atol=1e-9)
        edge = SHAPED.height(on_kerb[:, 0], np.sign(on_kerb[:, 1]) * (SHAPED.half_width_m - 1e-9))
        assert np.all((on_kerb[:, 2] >= edge - 1e-9) & (on_kerb[:, 2] <= edge + SHAPED.kerb_height_m + 1e-9))


def test_ground_normals_are_the_height_gradients():
    x, y = np.array([-50.0, 0.0, 80.0, 10.0]), np.array([-1.0, 2.0, 6.0, -9.0])
    eps = 1e-5
    gx = (SHAPED.height(x + eps, y) - SHAPED.height(x - eps, y)) / (2 * eps)
    gy = (SHAPED.height(x, y + eps) - SHAPED.height(x, y - eps)) / (2 * eps)
    n = SHAPED.normal(x, y)
    np.testing.assert_allclose(n, np.stack([-gx, -gy, np.ones(4)], 1) / np.sqrt(gx**2 + gy**2 + 1)[:, None], atol=1e-8)


def _one_object_scenario(label: int, x: float, y: float):
    world = build_scenario('train', 0, 1, WorldSettings(2, None, 0.0))
    flat = world.road
    parts = Parts(label, 0, (0.5, 0.5, 0.5))
    parts.box((0.0, 0.0, 0.8), (4.0, 1.8, 1.6))
    batch = parts.build().transformed(np.eye(3), [x, y, float(flat.flat_height(y))]).with_instance(999)
    return dataclasses.replace(world, static=batch, actors=[], anomalies=[])


def test_draped_objects_rest_on_the_shaped_ground():
    flat_road = build_scenario('train', 0, 1, WorldSettings(2, None, 0.0)).road
    shaped = dataclasses.replace(flat_road, grade=0.08, camber=0.03, kerb_height_m=0.25)
    # A bin on the sidewalk stays upright, its lowest corner on the ground; a car tilts with the road.
    y_side = flat_road.half_width_m + 2.0
    upright = drape(_one_object_scenario(LABEL_IDS['static'], 30.0, y_side), shaped).static
    bottom = float((upright.center[:, 2] - aabb_half_extents(upright)[:, 2]).min())
    relief = footprint_relief(flat_road, shaped, np.array([[30.0, y_side]]), np.array([[2.0, 0.9]]), np.zeros(1))
    assert bottom == pytest.approx(float(flat_road.kerb_height_m + relief[0]))
    np.testing.assert_allclose(upright.rotation[0], np.eye(3))
    car = drape(_one_object_scenario(LABEL_IDS['car'], 30.0, -1.75), shaped).static
    up = car.rotation[0][:, 2]
    np.testing.assert_allclose(up, shaped.normal(30.0, -1.75), atol=1e-12)
    # The centre of the car's underside touches the road.
    underside = car.center[0] - up * 0.8
    assert underside[2] == pytest.approx(float(shaped.height(underside[0], underside[1])), abs=1e-3)


def test_the_ego_rides_on_the_shaped_road_with_the_lidar_at_its_mount_height():
    cfg = _config(frames=3)
    world = cfg.vary_scenario(build_scenario('train', 0, cfg.seed, WorldSettings(3, None, 0.0)))
    rig = cfg.rig(0)
    for k in range(3):
        ego = world.world_from_ego(k)
        x, y, z = ego[:3, 3]
        assert z == pytest.approx(float(world.road.height(x, y)), abs=1e-9)
        np.testing.assert_allclose(ego[:3, 2], world.road.normal(x, y), atol=1e-12)
        lidar = world.world_from_lidar(k, rig.lidar_mount.ego_from_sensor())
        height = rig.lidar_mount.location[2]
        assert np.dot(lidar[:3, 3] - ego[:3, 3], ego[:3, 2]) == pytest.approx(height, abs=1e-9)


def test_some_scenarios_deliver_only_the_cameras_view_like_kittis_reduced_clouds():
    cfg, views = _config(width=384, height=256), []
    for i in range(120):
        rig = cfg.rig(i)
        if rig.lidar.azimuth_fov_deg < 360.0:
            cam = rig.camera.camera
            hfov = np.degrees(2 * np.arctan(cam.width / (2 * cam.fx)))
            assert hfov - 1e-6 <= rig.lidar.azimuth_fov_deg <= hfov + 20.0 + 0.01
            views.append(rig.lidar.azimuth_fov_deg)
    assert 5 <= len(views) <= 35  # about 15 % of 120
    lidar = LidarRig(azimuth_fov_deg=90.0)
    dirs = np.array([[1.0, 0.0, 0.0], [1.0, 0.99, 0.0], [1.0, 1.01, 0.0], [-1.0, 0.0, 0.0]])
    assert lidar.in_view(dirs).tolist() == [True, True, False, False]
    assert LidarRig().in_view(dirs).all()
    with pytest.raises(ValueError, match='azimuth_fov_deg'):
        LidarRig(azimuth_fov_deg=0.0)


def test_a_camera_view_cloud_holds_no_point_outside_its_view(tmp_path):
    from anovox_training.data.synth.generate import generate

    cfg = _config(out=tmp_path, width=96, height=64, frames=1, lidar_azimuth_steps=256)
    index = next(i for i in range(200) if cfg.rig(i).lidar.azimuth_fov_deg < 360.0)
    rig = cfg.rig(index)
    generate(dataclasses.replace(cfg, start_index=index))
    cloud = np.load(next(tmp_path.glob('Scenario_*/LIDAR*/*.npy')))
    azimuth = np.degrees(np.abs(np.arctan2(-cloud[:, 1], cloud[:, 0])))
    assert len(cloud) > 0 and azimuth.max() <= rig.lidar.azimuth_fov_deg / 2 + 1.0
