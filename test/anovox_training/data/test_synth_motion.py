"""Synthetic world: the ego's path, object tracks and scenario reproducibility."""

from __future__ import annotations

import numpy as np

from anovox_training.data.synth import WorldSettings, build_anomaly, build_scenario
from anovox_training.data.synth.motion import FRAME_DT_S, Obstacle, falling_track, plan_ego
from anovox_training.data.synth.primitives import aabb_half_extents

LANE_Y = -1.75
HALF_WIDTH = 3.5


def _cruise(num_frames: int = 150, speed: float = 8.0) -> np.ndarray:
    return np.arange(num_frames) * FRAME_DT_S * speed


def _gap_to(path_y: np.ndarray, ob: Obstacle) -> np.ndarray:
    return np.maximum(ob.y_min_m - path_y, path_y - ob.y_max_m)


def test_ego_swerves_around_an_obstacle_in_its_lane_and_returns_to_it():
    ob = Obstacle(40.0, 42.0, -2.2, -1.2)
    path = plan_ego(np.random.default_rng(0), _cruise(), LANE_Y, HALF_WIDTH, [ob])
    assert path.stop_x_m is None
    x, y = path.position[:, 0], path.position[:, 1]
    beside = (x >= ob.x_min_m) & (x <= ob.x_max_m)
    assert beside.any() and (_gap_to(y[beside], ob) >= 1.4).all()
    np.testing.assert_allclose(y[x > ob.x_max_m + 40.0], LANE_Y)
    np.testing.assert_allclose(y[x < ob.x_min_m - 40.0], LANE_Y)
    # The heading follows the path and stays gentle.
    assert np.abs(np.degrees(path.yaw)).max() < 25.0


def test_ego_avoids_the_side_where_a_parked_car_stands():
    ob = Obstacle(40.0, 42.0, -2.2, -1.0)
    parked = Obstacle(30.0, 45.0, -3.5, -2.4)
    path = plan_ego(np.random.default_rng(0), _cruise(), LANE_Y, HALF_WIDTH, [ob, parked])
    x, y = path.position[:, 0], path.position[:, 1]
    for o in (ob, parked):
        beside = (x >= o.x_min_m) & (x <= o.x_max_m)
        assert (_gap_to(y[beside], o) >= 1.4).all()
    assert y[(x >= 40.0) & (x <= 42.0)].min() > ob.y_max_m


def test_ego_stops_before_an_obstacle_that_blocks_the_road():
    wall = Obstacle(50.0, 53.0, -HALF_WIDTH, HALF_WIDTH)
    path = plan_ego(np.random.default_rng(1), _cruise(200), LANE_Y, HALF_WIDTH, [wall])
    x = path.position[:, 0]
    assert path.stop_x_m is not None and 38.0 <= path.stop_x_m <= 45.0
    assert x.max() <= path.stop_x_m + 1e-9
    assert (np.diff(x) >= 0).all()
    np.testing.assert_allclose(path.velocity[-20:], 0.0, atol=0.05)


def test_falling_object_hovers_then_falls_and_comes_to_rest_on_the_ground():
    model = build_anomaly('falling', np.random.default_rng(2))
    parts = model.parts.transformed(np.eye(3), np.array([0.0, 0.0, -model.size_m[2] / 2]))
    track = falling_track(np.random.default_rng(3), 120, parts, np.array([30.0, -1.0]), 0.0, 4.0, trigger_frame=20)

    def bottom(f: int) -> float:
        world = parts.transformed(track.rotation[f], track.position[f])
        return float((world.center[:, 2] - aabb_half_extents(world)[:, 2]).min())

    assert all(3.8 <= bottom(f) <= 4.2 for f in range(20))
    assert abs(bottom(119)) < 1e-6
    np.testing.assert_allclose(track.position[100:], np.repeat(track.position[119:], 20, axis=0))
    assert np.abs(np.diff(track.rotation[:20], axis=0)).max() > 0  # it tumbles in the air


def test_building_a_scenario_twice_gives_identical_scenes():
    a = build_scenario('val', 4, 9, WorldSettings(30))
    b = build_scenario('val', 4, 9, WorldSettings(30))
    assert a.scenario_id == b.scenario_id and a.first_frame_id == b.first_frame_id
    for k in (0, 29):
        pa, pb = a.primitives_at(k), b.primitives_at(k)
        np.testing.assert_array_equal(pa.center, pb.center)
        np.testing.assert_array_equal(pa.color, pb.color)
        np.testing.assert_array_equal(pa.instance, pb.instance)
    np.testing.assert_array_equal(a.ego.position, b.ego.position)
