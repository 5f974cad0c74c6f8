"""Moving road users: vehicles in every lane, cyclists and scooter riders, pedestrians on sidewalks and crossings.

Every candidate is checked over all frames against the ego, the registered
obstacles (anomalies, clutter, parked cars) and the movers accepted before it,
and dropped if it would come too close: nothing drives through anything.
"""

from __future__ import annotations

import math

import numpy as np

from anovox_training.data.synth import objects as O
from anovox_training.data.synth.builder import WorldBuilder
from anovox_training.data.synth.motion import FRAME_DT_S, EgoPath, Track, linear_track, static_track
from anovox_training.data.synth.parts import yaw_rotation

__all__ = ['mover_boxes', 'place_traffic']

_EGO_HALF = np.array([2.4, 1.0])
_PERSON_HALF = np.array([0.3, 0.3])
_VEHICLES = {'car': O.car, 'truck': O.truck, 'bus': O.bus, 'motorcycle': O.motorcycle, 'scooter': O.scooter}


def mover_boxes(track: Track, half_xy: np.ndarray) -> np.ndarray:
    """(F, 4) world footprints ``[x_min, x_max, y_min, y_max]`` of a box of half size ``half_xy`` along a track."""
    c, s = np.abs(np.cos(track.yaw)), np.abs(np.sin(track.yaw))
    hx = c * half_xy[0] + s * half_xy[1]
    hy = s * half_xy[0] + c * half_xy[1]
    p = track.position
    return np.stack([p[:, 0] - hx, p[:, 0] + hx, p[:, 1] - hy, p[:, 1] + hy], axis=1)


def _overlap(box: np.ndarray, other: np.ndarray, margin: float) -> bool:
    return bool(
        np.any(
            (box[..., 0] - margin < other[..., 1])
            & (box[..., 1] + margin > other[..., 0])
            & (box[..., 2] - margin < other[..., 3])
            & (box[..., 3] + margin > other[..., 2])
        )
    )


def _is_clear(b: WorldBuilder, box: np.ndarray, ego_box: np.ndarray, margin: float) -> bool:
    """True when footprints ``box`` (F, 4) keep ``margin`` from the ego, obstacles and accepted movers."""
    if _overlap(box, ego_box, margin) or any(_overlap(box, m, margin) for m in b.mover_boxes):
        return False
    if b.obstacles:
        obstacles = np.array([[o.x_min_m, o.x_max_m, o.y_min_m, o.y_max_m] for o in b.obstacles])
        return not _overlap(box[:, None, :], obstacles[None], margin)
    return True


def _accept(b: WorldBuilder, name: str, model: O.Model, track: Track, ego_box: np.ndarray, margin: float) -> None:
    box = mover_boxes(track, model.size_m[:2] / 2)
    if _is_clear(b, box, ego_box, margin):
        b.add_actor(name, model.parts, track)
        b.mover_boxes.append(box)


def place_traffic(b: WorldBuilder, x_lo: float, x_hi: float, ego: EgoPath, ego_lane: int) -> None:
    """Vehicles, cyclists and pedestrians between ``x_lo`` and ``x_hi`` that keep clear of the ego's path."""
    rng, road, f = b.rng, b.road, b.num_frames
    ego_track = Track(np.stack([yaw_rotation(float(a)) for a in ego.yaw]), ego.position, np.ones(f, bool))
    ego_box = mover_boxes(ego_track, _EGO_HALF)
    ego_speed = float(np.abs(ego.velocity[:, 0]).max()) if f > 1 else 0.0
    lanes = list(range(road.lanes_per_direction)) + [-k - 1 for k in range(road.lanes_per_direction)]
    for lane in lanes:
        direction = 1.0 if lane >= 0 else -1.0
        # One speed per lane, so vehicles in a lane never catch up with each other.
        speed = rng.uniform(5.0, 13.0)
        if lane == ego_lane:
            speed = max(speed, ego_speed + 2.0)
        for _ in range(int(rng.poisson(3.0))):
            kind = str(rng.choice(list(_VEHICLES), p=[0.72, 0.1, 0.07, 0.07, 0.04]))
            model = _VEHICLES[kind](rng)
            x0 = rng.uniform(x_lo, x_hi)
            if lane == ego_lane and x0 < 15.0:
                continue
            y = road.lane_center_y(lane) + rng.normal(0, 0.15)
            track = linear_track(f, np.array([x0, y, 0.0]), np.array([direction * speed, 0.0, 0.0]))
            _accept(b, model.name, model, track, ego_box, margin=1.0)
    for _ in range(int(rng.poisson(2.0))):
        model = O.bicycle(rng) if rng.random() < 0.75 else O.scooter(rng)
        direction = float(rng.choice([-1.0, 1.0]))
        y = -direction * (road.lanes_half_width_m - 0.7)
        start = np.array([rng.uniform(x_lo, x_hi), y, 0.0])
        track = linear_track(f, start, np.array([direction * rng.uniform(3.0, 6.0), 0.0, 0.0]))
        _accept(b, model.name, model, track, ego_box, margin=0.8)
    _sidewalk_pedestrians(b, x_lo, x_hi, ego_box)
    _crossing_pedestrians(b, ego_box)


def _sidewalk_pedestrians(b: WorldBuilder, x_lo: float, x_hi: float, ego_box: np.ndarray) -> None:
    """People standing or walking along both sidewalks (about one per 15 m and side)."""
    rng, road, f = b.rng, b.road, b.num_frames
    for side in (-1.0, 1.0):
        for _ in range(int(rng.poisson((x_hi - x_lo) / 15.0))):
            model = O.pedestrian(rng, child=rng.random() < 0.1)
            y = side * (road.half_width_m + rng.uniform(0.4, max(0.5, road.sidewalk_width_m - 0.4)))
            speed = 0.0 if rng.random() < 0.2 else rng.uniform(0.8, 1.6) * rng.choice([-1.0, 1.0])
            start = np.array([rng.uniform(x_lo, x_hi), y, road.kerb_height_m])
            if speed == 0.0:
                track = static_track(f, start, rng.uniform(0, 6.3))
            else:
                track = linear_track(f, start, np.array([speed, 0.0, 0.0]))
            # Sidewalk walkers only avoid obstacles; they are not added to the mover list.
            if _is_clear(b, mover_boxes(track, _PERSON_HALF), ego_box, margin=0.2):
                b.add_actor(model.name, model.parts, track)


def _crossing_pedestrians(b: WorldBuilder, ego_box: np.ndarray) -> None:
    """Up to two people per zebra crossing, walking across at some moment of the scenario."""
    rng, road, f = b.rng, b.road, b.num_frames
    t = np.arange(f) * FRAME_DT_S
    for xc in road.crosswalks_x_m:
        for _ in range(int(rng.integers(0, 3))):
            model = O.pedestrian(rng)
            direction = float(rng.choice([-1.0, 1.0]))
            speed = rng.uniform(1.0, 1.6)
            y0 = -direction * (road.half_width_m + 0.8)
            t0 = rng.uniform(0.0, f * FRAME_DT_S)
            y = y0 + direction * np.clip((t - t0) * speed, 0.0, 2 * (road.half_width_m + 0.8))
            pos = np.stack([np.full(f, xc + rng.normal(0, 0.8)), y, np.zeros(f)], axis=1)
            pos[:, 2] = np.where(np.abs(y) < road.half_width_m, 0.0, road.kerb_height_m)
            rot = np.repeat(yaw_rotation(direction * math.pi / 2)[None], f, axis=0)
            _accept(b, model.name, model, Track(rot, pos, np.ones(f, bool)), ego_box, margin=1.5)
