"""Procedural scenario generation: from (split, index, seed) to a `Scenario`.

The world is a straight urban road along +x. In order: road layout and light;
anomalies spaced along the ego's route so that one to three lie 5-60 m ahead
in most frames; normal clutter on the road (cones, barriers, bins, stopped
cars); roadside scenery (buildings, walls, fences, trees, lamps, signs,
traffic lights, street furniture, parked cars); the ego's path, which swerves
around whatever blocks its lane and stops before what it cannot pass; then
moving traffic, cyclists and pedestrians that keep clear of the ego and of
every obstacle. Everything is drawn from one generator seeded by
(seed, split, index), so a scenario is reproducible on its own.
"""

from __future__ import annotations

import math
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from anovox_training.data.labels import CATEGORY_TO_LABEL
from anovox_training.data.synth import objects as O
from anovox_training.data.synth.anomalies import SPLIT_CATEGORIES, build_anomaly
from anovox_training.data.synth.ground import RoadLayout
from anovox_training.data.synth.motion import (
    FRAME_DT_S,
    EgoPath,
    Obstacle,
    Track,
    falling_track,
    linear_track,
    pacing_track,
    plan_ego,
    speed_profile,
    static_track,
)
from anovox_training.data.synth.objects import Model
from anovox_training.data.synth.parts import yaw_rotation
from anovox_training.data.synth.primitives import PrimitiveBatch, aabb_half_extents
from anovox_training.data.synth.scene import Actor, Lighting, PlacedAnomaly, Scenario

__all__ = ['WorldSettings', 'build_scenario', 'scenario_uuid']

_NAMESPACE = uuid.UUID('5b0c9f5e-7a43-4c1e-9a77-3d6f0a1e2b10')
_EGO_HALF = np.array([2.4, 1.0])


def scenario_uuid(seed: int, split: str, index: int) -> str:
    """Deterministic scenario id (a UUID string) of scenario ``index`` of a split and seed."""
    return str(uuid.uuid5(_NAMESPACE, f'{split}/{seed}/{index}'))


@dataclass(frozen=True)
class WorldSettings:
    """What a scenario may contain.

    Attributes:
        num_frames: Frames at 10 Hz.
        categories: Anomaly categories to draw from (default: the split's set).
        normal_share: Probability that a scenario has no anomaly at all.
    """

    num_frames: int
    categories: tuple[str, ...] | None = None
    normal_share: float = 0.15


def _footprint(batch: PrimitiveBatch) -> np.ndarray:
    """World AABB [x_min, x_max, y_min, y_max, z_max] of a world-frame batch."""
    half = aabb_half_extents(batch)
    lo, hi = (batch.center - half).min(axis=0), (batch.center + half).max(axis=0)
    return np.array([lo[0], hi[0], lo[1], hi[1], hi[2]])


class _WorldBuilder:
    """Accumulates the static scenery, actors and obstacles of one scenario."""

    def __init__(self, rng: np.random.Generator, num_frames: int) -> None:
        self.rng = rng
        self.num_frames = num_frames
        self.static: list[PrimitiveBatch] = []
        self.actors: list[Actor] = []
        self.obstacles: list[Obstacle] = []
        self.anomalies: list[PlacedAnomaly] = []
        # Per-frame footprints (F, 4) of moving road users, for conflict checks.
        self.mover_boxes: list[np.ndarray] = []
        self._next_instance = 1
        self.road = self._sample_road()

    # -- helpers ------------------------------------------------------------------------------------------------

    def new_instance(self) -> int:
        iid = self._next_instance
        self._next_instance += 1
        return iid

    def ground_z(self, y: float) -> float:
        return 0.0 if abs(y) < self.road.half_width_m else self.road.kerb_height_m

    def overlaps_obstacle(self, box: np.ndarray, margin: float = 0.3) -> bool:
        return any(
            box[0] - margin < o.x_max_m
            and box[1] + margin > o.x_min_m
            and box[2] - margin < o.y_max_m
            and box[3] + margin > o.y_min_m
            for o in self.obstacles
        )

    def add_static(
        self, model: Model, x: float, y: float, yaw: float, obstacle: bool = False, z: float | None = None
    ) -> np.ndarray:
        """Place a model for good; returns its footprint. ``obstacle`` registers it for path planning."""
        z = self.ground_z(y) if z is None else z
        world = model.parts.transformed(yaw_rotation(yaw), np.array([x, y, z])).with_instance(self.new_instance())
        self.static.append(world)
        box = _footprint(world)
        if obstacle:
            self.obstacles.append(Obstacle(*box))
        return box

    def add_actor(self, name: str, parts: PrimitiveBatch, track: Track) -> int:
        iid = self.new_instance()
        self.actors.append(Actor(name, iid, parts.with_instance(iid), track))
        return len(self.actors) - 1

    # -- road and light -----------------------------------------------------------------------------------------

    def _sample_road(self) -> RoadLayout:
        rng = self.rng
        lanes = int(rng.choice([1, 2], p=[0.6, 0.4]))
        return RoadLayout(
            lane_width_m=float(rng.uniform(3.0, 3.8)),
            lanes_per_direction=lanes,
            parking_width_m=float(rng.uniform(2.2, 2.6)) if rng.random() < 0.5 else 0.0,
            sidewalk_width_m=float(rng.uniform(2.0, 5.0)),
            verge_width_m=float(rng.choice([0.0, rng.uniform(1.0, 4.0)])),
            kerb_height_m=float(rng.uniform(0.1, 0.2)),
            double_centre_line=bool(rng.random() < 0.5),
            dash_length_m=float(rng.uniform(2.0, 4.0)),
            dash_period_m=float(rng.uniform(7.0, 12.0)),
            asphalt_shade=float(rng.uniform(0.22, 0.42)),
            sidewalk_shade=float(rng.uniform(0.5, 0.75)),
            terrain_rgb=tuple(float(v) for v in np.array([0.3, 0.42, 0.18]) * rng.uniform(0.7, 1.2, 3)),
        )

    def add_crosswalks(self, x_hi: float) -> None:
        xs = tuple(float(x) for x in np.sort(self.rng.uniform(20.0, x_hi, int(self.rng.integers(0, 3)))))
        self.road = RoadLayout(**{**self.road.__dict__, 'crosswalks_x_m': xs, 'lines': ()})

    # -- anomalies ----------------------------------------------------------------------------------------------

    def _lateral(self, zone: str, lane_y: float) -> float:
        rng, road = self.rng, self.road
        side = float(rng.choice([-1.0, 1.0]))
        if zone == 'ego_lane':
            return lane_y + rng.normal(0.0, 0.5)
        if zone == 'road':
            return rng.uniform(-road.lanes_half_width_m + 0.5, road.lanes_half_width_m - 0.5)
        if zone == 'edge':
            return side * (road.half_width_m - rng.uniform(0.4, 1.5))
        return side * (road.half_width_m + rng.uniform(0.4, max(0.5, road.sidewalk_width_m - 0.3)))

    def place_anomalies(self, categories: Sequence[str], x_end: float, lane_y: float) -> list[tuple[int, dict]]:
        """Anomalies every 18-50 m from 10-45 m ahead to 60 m past the ego's nominal end point.

        Returns the falling anomalies still waiting for a track: (anomaly index, parameters).
        """
        rng = self.rng
        pending: list[tuple[int, dict]] = []
        x = rng.uniform(10.0, 45.0)
        while x < x_end + 60.0:
            category = str(rng.choice(list(categories)))
            model = build_anomaly(category, rng)
            for _attempt in range(6):
                zones = ['ego_lane', 'road'] if category == 'falling' else ['ego_lane', 'road', 'edge', 'sidewalk']
                probs = [0.6, 0.4] if category == 'falling' else [0.45, 0.25, 0.15, 0.15]
                y = self._lateral(str(rng.choice(zones, p=probs)), lane_y)
                r = float(np.hypot(*model.size_m[:2]) / 2)
                if not self.overlaps_obstacle(np.array([x - r, x + r, y - r, y + r]), margin=1.0):
                    break
            else:
                x += rng.uniform(10.0, 30.0)
                continue
            yaw = rng.uniform(0.0, 2 * math.pi)
            label = CATEGORY_TO_LABEL[category]
            aid = len(self.anomalies)
            if category == 'falling':
                # Centre the parts so the object tumbles about its middle.
                centre = np.array([0.0, 0.0, model.size_m[2] / 2])
                parts = model.parts.transformed(np.eye(3), -centre)
                index = self.add_actor(model.name, parts, static_track(self.num_frames, np.zeros(3), 0.0))
                r = float(np.linalg.norm(model.size_m)) / 2
                self.obstacles.append(Obstacle(x - r, x + r, y - r, y + r))
                pending.append((index, {'x': x, 'y': y, 'parts': parts}))
            elif category == 'animal' and rng.random() < 0.35:
                track = pacing_track(
                    self.num_frames,
                    np.array([x, y, self.ground_z(y)]),
                    yaw,
                    rng.uniform(0.5, 3.0),
                    rng.uniform(6.0, 16.0),
                    rng.uniform(0, 2 * math.pi),
                )
                index = self.add_actor(model.name, model.parts, track)
                self.obstacles.append(Obstacle.of_track(model.parts, track))
            else:
                tilt = rng.uniform(-0.25, 0.25, 3) * (0.0, 1.0, 1.0) if category == 'airplane' else None
                track = static_track(self.num_frames, np.array([x, y, 0.0]), yaw, tilt)
                world = model.parts.transformed(track.rotation[0], np.zeros(3))
                bottom = float((world.center[:, 2] - aabb_half_extents(world)[:, 2]).min())
                track.position[:, 2] = self.ground_z(y) - min(bottom, 0.0) if tilt is not None else self.ground_z(y)
                index = self.add_actor(model.name, model.parts, track)
                self.obstacles.append(Obstacle.of_track(model.parts, track))
            self.anomalies.append(PlacedAnomaly(aid, category, label, model.name, index))
            x += rng.uniform(18.0, 50.0)
        return pending

    def finish_falling(self, pending: list[tuple[int, dict]], ego: EgoPath) -> None:
        """Give falling anomalies their tracks: they drop when the ego gets within 15-50 m."""
        for index, p in pending:
            trigger_dist = self.rng.uniform(15.0, 50.0)
            dist = p['x'] - ego.position[:, 0]
            close = np.flatnonzero(dist < trigger_dist)
            trigger = int(close[0]) if len(close) else self.num_frames
            if self.rng.random() < 0.25:
                trigger = self.num_frames  # some stay in the air for the whole scenario
            track = falling_track(
                self.rng,
                self.num_frames,
                p['parts'],
                np.array([p['x'], p['y']]),
                self.ground_z(p['y']),
                self.rng.uniform(1.0, 6.0),
                trigger,
            )
            self.actors[index].track = track

    # -- normal things on the road ------------------------------------------------------------------------------

    def place_road_clutter(self, x_lo: float, x_hi: float, lane_y: float) -> None:
        """Cones, barriers, bins and stopped cars on the road: normal objects where anomalies also stand."""
        rng, road = self.rng, self.road
        count = rng.poisson((x_hi - x_lo) / 60.0)
        for x in np.sort(rng.uniform(x_lo, x_hi, count)):
            kind = str(
                rng.choice(['cones', 'barrier', 'bin', 'stopped_car', 'bollards'], p=[0.35, 0.2, 0.15, 0.2, 0.1])
            )
            zone = str(rng.choice(['ego_lane', 'road', 'edge'], p=[0.3, 0.3, 0.4]))
            y = self._lateral(zone, lane_y)
            if self.overlaps_obstacle(np.array([x - 4, x + 4, y - 2, y + 2]), margin=1.0):
                continue
            if kind == 'cones':
                n = int(rng.integers(3, 9))
                dy = rng.uniform(-0.6, 0.6)
                step = rng.uniform(1.5, 4.0)
                for i in range(n):
                    self.add_static(O.cone(rng), x + i * step, y + i * dy * 0.3, rng.uniform(0, 6.3), obstacle=True)
            elif kind == 'barrier':
                for i in range(int(rng.integers(1, 4))):
                    yaw = rng.choice([0.0, math.pi / 2]) + rng.normal(0, 0.1)
                    self.add_static(
                        O.barrier(rng), x + i * 2.5 * math.cos(yaw), y + i * 2.5 * math.sin(yaw), yaw, obstacle=True
                    )
            elif kind == 'bin':
                self.add_static(O.bin_(rng), x, y, rng.uniform(0, 6.3), obstacle=True)
            elif kind == 'stopped_car':
                model = O.car(rng) if rng.random() < 0.8 else O.truck(rng)
                yside = math.copysign(road.lanes_half_width_m - model.size_m[1] / 2 - 0.2, y)
                self.add_static(model, x, yside, (0.0 if yside < 0 else math.pi) + rng.normal(0, 0.05), obstacle=True)
            else:
                for i in range(int(rng.integers(2, 5))):
                    self.add_static(O.bollard(rng), x + i * 1.5, y, 0.0, obstacle=True)

    # -- roadside ------------------------------------------------------------------------------------------------

    def place_roadside(self, x_lo: float, x_hi: float) -> None:
        rng, road = self.rng, self.road
        for side in (-1.0, 1.0):
            facing_road = 0.0 if side > 0 else math.pi  # building facades face -y in the model frame
            urban = rng.random() < 0.75
            x = x_lo
            while x < x_hi:
                length = rng.uniform(8.0, 35.0)
                gap = rng.uniform(0.0, 10.0) if rng.random() < 0.6 else 0.0
                setback = rng.uniform(0.0, 5.0)
                y_face = road.verge_outer_m + setback
                if urban:
                    depth = rng.uniform(8.0, 20.0)
                    self.add_static(
                        O.building(rng, length, depth), x + length / 2, side * (y_face + depth / 2), facing_road, z=0.0
                    )
                else:
                    for tx in np.arange(x, x + length, rng.uniform(5.0, 10.0)):
                        builder = O.tree if rng.random() < 0.6 else O.bush
                        self.add_static(builder(rng), tx, side * (y_face + rng.uniform(1.0, 12.0)), rng.uniform(0, 6.3))
                if gap > 1.0:
                    filler = rng.choice(['none', 'wall', 'fence', 'hedge'])
                    cx, cy = x + length + gap / 2, side * (y_face + 0.3)
                    if filler == 'wall':
                        self.add_static(O.wall(rng, gap), cx, cy, 0.0)
                    elif filler == 'fence':
                        self.add_static(O.fence(rng, gap), cx, cy, 0.0)
                    elif filler == 'hedge':
                        self.add_static(O.bush(rng), cx, cy, 0.0)
                x += length + gap
            if road.verge_width_m > 0 and rng.random() < 0.25:
                self._row(
                    x_lo, x_hi, lambda: O.guard_rail(self.rng, 10.0), 10.0, side * (road.sidewalk_outer_m + 0.3), 0.0
                )
            kerb_y = side * (road.half_width_m + 0.45)
            self._row(
                x_lo,
                x_hi,
                lambda: O.street_lamp(self.rng),
                rng.uniform(20.0, 35.0),
                kerb_y,
                math.pi if side > 0 else 0.0,
            )
            if rng.random() < 0.6:
                tree_y = side * (
                    road.sidewalk_outer_m + road.verge_width_m / 2
                    if road.verge_width_m > 1.2
                    else road.sidewalk_outer_m - 0.8
                )
                self._row(x_lo, x_hi, lambda: O.tree(self.rng), rng.uniform(8.0, 15.0), tree_y, None)
            sign_yaw = 0.0 if side < 0 else math.pi
            for sx in rng.uniform(x_lo, x_hi, rng.poisson((x_hi - x_lo) / 50.0)):
                self.add_static(O.traffic_sign(rng), sx, side * (road.half_width_m + 0.4), sign_yaw)
            for xc in road.crosswalks_x_m:
                self.add_static(O.traffic_light(rng), xc - side * 3.0, kerb_y, math.pi if side > 0 else 0.0)
            furniture: list[Callable[[np.random.Generator], Model]] = [O.bench, O.bin_, O.hydrant, O.bollard]
            for fx in rng.uniform(x_lo, x_hi, rng.poisson((x_hi - x_lo) / 25.0)):
                builder = furniture[int(rng.integers(len(furniture)))]
                fy = side * (road.half_width_m + rng.uniform(0.4, max(0.5, road.sidewalk_width_m - 0.4)))
                self.add_static(builder(rng), fx, fy, facing_road + rng.normal(0, 0.1))
            if road.parking_width_m > 0:
                self._parked(x_lo, x_hi, side)

    def _row(
        self, x_lo: float, x_hi: float, make: Callable[[], Model], spacing: float, y: float, yaw: float | None
    ) -> None:
        for x in np.arange(x_lo + self.rng.uniform(0, spacing), x_hi, spacing):
            self.add_static(make(), float(x), y, self.rng.uniform(0, 6.3) if yaw is None else yaw)

    def _parked(self, x_lo: float, x_hi: float, side: float) -> None:
        rng, road = self.rng, self.road
        fill = rng.uniform(0.3, 0.9)
        y = side * (road.lanes_half_width_m + road.parking_width_m / 2)
        x = x_lo + rng.uniform(0, 5)
        while x < x_hi:
            model = O.car(rng) if rng.random() < 0.92 else O.truck(rng)
            length = model.size_m[0]
            if rng.random() < fill:
                box = np.array([x, x + length, y - 1, y + 1])
                if not self.overlaps_obstacle(box, margin=0.5):
                    yaw = (0.0 if side < 0 else math.pi) + rng.normal(0, 0.03)
                    self.add_static(model, x + length / 2, y + rng.normal(0, 0.1), yaw, obstacle=True)
            x += length + rng.uniform(0.8, 2.5)

    # -- movers --------------------------------------------------------------------------------------------------

    def _boxes(self, track: Track, half_xy: np.ndarray) -> np.ndarray:
        c, s = np.abs(np.cos(track.yaw)), np.abs(np.sin(track.yaw))
        hx = c * half_xy[0] + s * half_xy[1]
        hy = s * half_xy[0] + c * half_xy[1]
        p = track.position
        return np.stack([p[:, 0] - hx, p[:, 0] + hx, p[:, 1] - hy, p[:, 1] + hy], axis=1)

    def mover_is_clear(self, track: Track, half_xy: np.ndarray, ego_box: np.ndarray, margin: float = 0.5) -> bool:
        """True when a mover keeps ``margin`` from the ego, every obstacle and every accepted mover at every frame."""
        box = self._boxes(track, half_xy)

        def hits(other: np.ndarray) -> bool:
            return bool(
                np.any(
                    (box[..., 0] - margin < other[..., 1])
                    & (box[..., 1] + margin > other[..., 0])
                    & (box[..., 2] - margin < other[..., 3])
                    & (box[..., 3] + margin > other[..., 2])
                )
            )

        if hits(ego_box) or any(hits(m) for m in self.mover_boxes):
            return False
        if self.obstacles:
            obs = np.array([[o.x_min_m, o.x_max_m, o.y_min_m, o.y_max_m] for o in self.obstacles])
            b = box[:, None, :]
            if np.any(
                (b[..., 0] - margin < obs[:, 1])
                & (b[..., 1] + margin > obs[:, 0])
                & (b[..., 2] - margin < obs[:, 3])
                & (b[..., 3] + margin > obs[:, 2])
            ):
                return False
        return True

    def place_traffic(self, x_lo: float, x_hi: float, ego: EgoPath, ego_lane: int) -> None:
        rng, road, f = self.rng, self.road, self.num_frames
        ego_track = Track(np.repeat(np.eye(3)[None], f, 0), ego.position, np.ones(f, bool))
        ego_track.rotation = np.stack([yaw_rotation(float(a)) for a in ego.yaw])
        ego_box = self._boxes(ego_track, _EGO_HALF)
        ego_speed = float(np.abs(ego.velocity[:, 0]).max()) if f > 1 else 0.0
        lanes = [k for k in range(road.lanes_per_direction)] + [-k - 1 for k in range(road.lanes_per_direction)]
        for lane in lanes:
            direction = 1.0 if lane >= 0 else -1.0
            speed = rng.uniform(5.0, 13.0)
            if lane == ego_lane:
                speed = max(speed, ego_speed + 2.0)
            for _ in range(int(rng.poisson(3.0))):
                kind = rng.choice(['car', 'truck', 'bus', 'motorcycle'], p=[0.75, 0.1, 0.07, 0.08])
                model = {'car': O.car, 'truck': O.truck, 'bus': O.bus, 'motorcycle': O.motorcycle}[str(kind)](rng)
                # Start anywhere from which the vehicle is inside the scenery for part of the scenario.
                x0 = rng.uniform(x_lo, x_hi)
                if lane == ego_lane and x0 < 15.0:
                    continue
                y = road.lane_center_y(lane) + rng.normal(0, 0.15)
                track = linear_track(f, np.array([x0, y, 0.0]), np.array([direction * speed, 0.0, 0.0]))
                half = model.size_m[:2] / 2
                if self.mover_is_clear(track, half, ego_box, margin=1.0):
                    self.add_actor(model.name, model.parts, track)
                    self.mover_boxes.append(self._boxes(track, half))
        for _ in range(int(rng.poisson(1.5))):
            model = O.bicycle(rng)
            direction = float(rng.choice([-1.0, 1.0]))
            y = -direction * (road.lanes_half_width_m - 0.7)
            track = linear_track(
                f, np.array([rng.uniform(x_lo, x_hi), y, 0.0]), np.array([direction * rng.uniform(3.0, 6.0), 0.0, 0.0])
            )
            if self.mover_is_clear(track, model.size_m[:2] / 2, ego_box, margin=0.8):
                self.add_actor(model.name, model.parts, track)
                self.mover_boxes.append(self._boxes(track, model.size_m[:2] / 2))
        self._pedestrians(x_lo, x_hi, ego_box)

    def _pedestrians(self, x_lo: float, x_hi: float, ego_box: np.ndarray) -> None:
        rng, road, f = self.rng, self.road, self.num_frames
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
                if self.mover_is_clear(track, np.array([0.3, 0.3]), ego_box, margin=0.2):
                    self.add_actor(model.name, model.parts, track)
        for xc in self.road.crosswalks_x_m:
            for _ in range(int(rng.integers(0, 3))):
                model = O.pedestrian(rng)
                direction = float(rng.choice([-1.0, 1.0]))
                speed = rng.uniform(1.0, 1.6)
                y0 = -direction * (road.half_width_m + 0.8)
                t0 = rng.uniform(0.0, f * FRAME_DT_S)
                t = np.arange(f) * FRAME_DT_S
                y = y0 + direction * np.clip((t - t0) * speed, 0.0, 2 * (road.half_width_m + 0.8))
                pos = np.stack([np.full(f, xc + rng.normal(0, 0.8)), y, np.zeros(f)], axis=1)
                pos[:, 2] = np.where(np.abs(y) < road.half_width_m, 0.0, road.kerb_height_m)
                yaw = np.full(f, direction * math.pi / 2)
                c, s = np.cos(yaw), np.sin(yaw)
                rot = np.zeros((f, 3, 3))
                rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
                track = Track(rot, pos, np.ones(f, bool))
                if self.mover_is_clear(track, np.array([0.3, 0.3]), ego_box, margin=1.5):
                    self.add_actor(model.name, model.parts, track)
                    self.mover_boxes.append(self._boxes(track, np.array([0.3, 0.3])))


def build_scenario(split: str, index: int, seed: int, settings: WorldSettings) -> Scenario:
    """Generate scenario ``index`` of ``split`` for ``seed``.

    Args:
        split: 'train', 'val' or 'test' (selects the anomaly categories unless settings give them).
        index: Scenario index within the split.
        seed: Dataset seed.
        settings: Frame count, categories and normality share.

    Returns:
        The scenario; the same arguments always give the same scenario.

    Raises:
        KeyError: For an unknown split when no categories are given.
    """
    if settings.categories is None and split not in SPLIT_CATEGORIES:
        msg = f'build_scenario: unknown split {split!r}; use one of {sorted(SPLIT_CATEGORIES)} or give categories'
        raise KeyError(msg)
    categories = settings.categories or SPLIT_CATEGORIES[split]
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(split.encode()), index]))
    f = settings.num_frames
    builder = _WorldBuilder(rng, f)
    lighting = Lighting.sample(rng)
    x_nominal = speed_profile(rng, f)
    x_lo, x_hi = -110.0, float(x_nominal[-1]) + 260.0
    builder.add_crosswalks(float(x_nominal[-1]) + 120.0)
    road = builder.road
    ego_lane = road.lanes_per_direction - 1 if rng.random() < 0.7 else int(rng.integers(road.lanes_per_direction))
    lane_y = road.lane_center_y(ego_lane)
    normal = rng.random() < settings.normal_share
    pending = [] if normal else builder.place_anomalies(categories, float(x_nominal[-1]), lane_y)
    builder.place_road_clutter(8.0, float(x_nominal[-1]) + 120.0, lane_y)
    builder.place_roadside(x_lo, x_hi)
    ego = plan_ego(rng, x_nominal, lane_y, road.half_width_m, builder.obstacles)
    builder.finish_falling(pending, ego)
    builder.place_traffic(x_lo, x_hi, ego, ego_lane)
    return Scenario(
        scenario_id=scenario_uuid(seed, split, index),
        split=split,
        index=index,
        seed=seed,
        num_frames=f,
        first_frame_id=int(rng.integers(1000, 90000)),
        road=road,
        lighting=lighting,
        ego=ego,
        static=PrimitiveBatch.concat(builder.static),
        actors=builder.actors,
        anomalies=builder.anomalies,
        start_time_s=round(float(rng.uniform(5.0, 500.0)), 1),
    )
