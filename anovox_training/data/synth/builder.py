"""Shared state while a scenario is generated: scenery, actors, obstacles, instance ids.

The placement modules (roadside.py, traffic.py, world.py) add to one
`WorldBuilder`; obstacles registered here steer the ego's path and keep moving
road users from driving through anything.
"""

from __future__ import annotations

import numpy as np

from anovox_training.data.synth.ground import RoadLayout
from anovox_training.data.synth.motion import Obstacle, Track
from anovox_training.data.synth.objects import Model
from anovox_training.data.synth.parts import yaw_rotation
from anovox_training.data.synth.primitives import PrimitiveBatch, aabb_half_extents
from anovox_training.data.synth.scene import Actor, PlacedAnomaly

__all__ = ['WorldBuilder', 'footprint']


def footprint(batch: PrimitiveBatch) -> np.ndarray:
    """World AABB [x_min, x_max, y_min, y_max, z_max] of a world-frame batch."""
    half = aabb_half_extents(batch)
    lo, hi = (batch.center - half).min(axis=0), (batch.center + half).max(axis=0)
    return np.array([lo[0], hi[0], lo[1], hi[1], hi[2]])


class WorldBuilder:
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
        """A fresh instance id (1, 2, ...)."""
        iid = self._next_instance
        self._next_instance += 1
        return iid

    def ground_z(self, y: float, x: float = 0.0) -> float:
        """Ground height at ``(x, y)`` while the world is built: the flat road, or the kerb height beyond it.

        Scenarios are built on the flat road; the generator then drapes everything
        onto the scenario's shaped road (drape.py), so objects placed at this
        height stand on the shaped ground as well. ``x`` is accepted for callers
        that know it; on the flat road the height does not depend on it.
        """
        return float(self.road.flat_height(y))

    def overlaps_obstacle(self, box: np.ndarray, margin: float = 0.3) -> bool:
        """Whether ``[x_min, x_max, y_min, y_max]`` comes within ``margin`` of a registered obstacle."""
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
        box = footprint(world)
        if obstacle:
            self.obstacles.append(Obstacle(*box))
        return box

    def add_actor(self, name: str, parts: PrimitiveBatch, track: Track) -> int:
        """Add a moving object; returns its index in ``actors``."""
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
        """Up to two zebra crossings between 20 m and ``x_hi``."""
        xs = tuple(float(x) for x in np.sort(self.rng.uniform(20.0, x_hi, int(self.rng.integers(0, 3)))))
        self.road = RoadLayout(**{**self.road.__dict__, 'crosswalks_x_m': xs, 'lines': ()})

    # -- anomalies ----------------------------------------------------------------------------------------------

    def lateral(self, zone: str, lane_y: float) -> float:
        """A lateral position in a zone: 'ego_lane', 'road' (any lane), 'edge' (near a kerb) or 'sidewalk'."""
        rng, road = self.rng, self.road
        side = float(rng.choice([-1.0, 1.0]))
        if zone == 'ego_lane':
            return lane_y + rng.normal(0.0, 0.5)
        if zone == 'road':
            return rng.uniform(-road.lanes_half_width_m + 0.5, road.lanes_half_width_m - 0.5)
        if zone == 'edge':
            return side * (road.half_width_m - rng.uniform(0.4, 1.5))
        return side * (road.half_width_m + rng.uniform(0.4, max(0.5, road.sidewalk_width_m - 0.3)))
