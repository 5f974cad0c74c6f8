"""Procedural scenario generation: from (split, index, seed) to a `Scenario`.

The world is a straight urban road along +x. In order: road layout and light;
anomalies spaced along the ego's route so that one to three lie 5-60 m ahead
in most frames; normal clutter on the road (roadside.py); roadside scenery; the
ego's path, which swerves around whatever blocks its lane and stops before what
it cannot pass (motion.py); then moving traffic, cyclists and pedestrians that
keep clear of the ego and of every obstacle (traffic.py). Everything is drawn
from one generator seeded by (seed, split, index), so each scenario is
reproducible on its own.
"""

from __future__ import annotations

import math
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anovox_training.data.labels import CATEGORY_TO_LABEL
from anovox_training.data.synth.anomalies import SPLIT_CATEGORIES, build_anomaly
from anovox_training.data.synth.builder import WorldBuilder
from anovox_training.data.synth.motion import (
    EgoPath,
    Obstacle,
    falling_track,
    pacing_track,
    plan_ego,
    speed_profile,
    static_track,
)
from anovox_training.data.synth.primitives import PrimitiveBatch, aabb_half_extents
from anovox_training.data.synth.roadside import place_road_clutter, place_roadside
from anovox_training.data.synth.scene import Lighting, PlacedAnomaly, Scenario
from anovox_training.data.synth.traffic import place_traffic

__all__ = ['WorldSettings', 'build_scenario', 'place_anomalies', 'scenario_uuid']

_NAMESPACE = uuid.UUID('5b0c9f5e-7a43-4c1e-9a77-3d6f0a1e2b10')


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


@dataclass(frozen=True)
class _PendingFall:
    """A falling anomaly whose track waits for the ego's path (it drops as the ego approaches)."""

    actor: int
    x_m: float
    y_m: float
    parts: PrimitiveBatch


def place_anomalies(b: WorldBuilder, categories: Sequence[str], x_end: float, lane_y: float) -> list[_PendingFall]:
    """Anomalies every 18-50 m from 10-45 m ahead of the start to 60 m past the ego's nominal end point.

    Most stand in the ego's lane or another lane, some at the road edge or on the
    sidewalk; falling ones hover above the lanes. Animals sometimes pace back and
    forth; airplanes may lie tilted.

    Args:
        b: The world being built.
        categories: Categories to draw from.
        x_end: The ego's nominal final x.
        lane_y: Centre of the ego's lane.

    Returns:
        The falling anomalies, whose tracks `finish_falling` sets once the ego's path is known.
    """
    rng = b.rng
    pending: list[_PendingFall] = []
    x = rng.uniform(10.0, 45.0)
    while x < x_end + 60.0:
        category = str(rng.choice(list(categories)))
        model = build_anomaly(category, rng)
        falling = category == 'falling'
        zones = ['ego_lane', 'road'] if falling else ['ego_lane', 'road', 'edge', 'sidewalk']
        probs = [0.6, 0.4] if falling else [0.45, 0.25, 0.15, 0.15]
        r = float(np.hypot(*model.size_m[:2]) / 2)
        for _attempt in range(6):
            y = b.lateral(str(rng.choice(zones, p=probs)), lane_y)
            if not b.overlaps_obstacle(np.array([x - r, x + r, y - r, y + r]), margin=1.0):
                break
        else:
            x += rng.uniform(10.0, 30.0)
            continue
        yaw = rng.uniform(0.0, 2 * math.pi)
        if falling:
            # Centre the parts so the object tumbles about its middle.
            parts = model.parts.transformed(np.eye(3), np.array([0.0, 0.0, -model.size_m[2] / 2]))
            index = b.add_actor(model.name, parts, static_track(b.num_frames, np.zeros(3), 0.0))
            reach = float(np.linalg.norm(model.size_m)) / 2
            b.obstacles.append(Obstacle(x - reach, x + reach, y - reach, y + reach))
            pending.append(_PendingFall(index, x, y, parts))
        else:
            if category == 'animal' and rng.random() < 0.35:
                centre = np.array([x, y, b.ground_z(y)])
                period = rng.uniform(6.0, 16.0)
                track = pacing_track(b.num_frames, centre, yaw, rng.uniform(0.5, 3.0), period, rng.uniform(0, 6.3))
            else:
                tilt = rng.uniform(-0.25, 0.25, 3) * (0.0, 1.0, 1.0) if category == 'airplane' else None
                track = static_track(b.num_frames, np.array([x, y, 0.0]), yaw, tilt)
                # Rest the (possibly tilted) object on the ground.
                world = model.parts.transformed(track.rotation[0], np.zeros(3))
                bottom = float((world.center[:, 2] - aabb_half_extents(world)[:, 2]).min())
                track.position[:, 2] = b.ground_z(y) - bottom
            index = b.add_actor(model.name, model.parts, track)
            b.obstacles.append(Obstacle.of_track(model.parts, track))
        b.anomalies.append(PlacedAnomaly(len(b.anomalies), category, CATEGORY_TO_LABEL[category], model.name, index))
        x += rng.uniform(18.0, 50.0)
    return pending


def finish_falling(b: WorldBuilder, pending: list[_PendingFall], ego: EgoPath) -> None:
    """Give falling anomalies their tracks: they drop when the ego gets within 15-50 m (a quarter never drop)."""
    for fall in pending:
        trigger_dist = b.rng.uniform(15.0, 50.0)
        close = np.flatnonzero(fall.x_m - ego.position[:, 0] < trigger_dist)
        trigger = int(close[0]) if len(close) else b.num_frames
        if b.rng.random() < 0.25:
            trigger = b.num_frames
        b.actors[fall.actor].track = falling_track(
            b.rng,
            b.num_frames,
            fall.parts,
            np.array([fall.x_m, fall.y_m]),
            b.ground_z(fall.y_m),
            b.rng.uniform(1.0, 6.0),
            trigger,
        )


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
    builder = WorldBuilder(rng, f)
    lighting = Lighting.sample(rng)
    x_nominal = speed_profile(rng, f)
    x_lo, x_hi = -110.0, float(x_nominal[-1]) + 260.0
    builder.add_crosswalks(float(x_nominal[-1]) + 120.0)
    road = builder.road
    ego_lane = road.lanes_per_direction - 1 if rng.random() < 0.7 else int(rng.integers(road.lanes_per_direction))
    lane_y = road.lane_center_y(ego_lane)
    normal = rng.random() < settings.normal_share
    pending = [] if normal else place_anomalies(builder, categories, float(x_nominal[-1]), lane_y)
    place_road_clutter(builder, 15.0, float(x_nominal[-1]) + 120.0, lane_y)
    place_roadside(builder, x_lo, x_hi)
    ego = plan_ego(rng, x_nominal, lane_y, road.half_width_m, builder.obstacles)
    finish_falling(builder, pending, ego)
    place_traffic(builder, x_lo, x_hi, ego, ego_lane)
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
