"""The scene description every sensor is cast from: road, lighting, objects and their motion.

A `Scenario` is built once from a seed (world.py) and then asked for the
primitives of one frame in world coordinates. Static objects are merged into
one world-frame batch up front; actors (vehicles, people, anomalies) keep their
parts in their own frame and are moved by their `Track` each frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from anovox_perception.core.geometry import make_transform
from anovox_training.data.labels import CATEGORY_TO_LABEL
from anovox_training.data.synth.ground import RoadLayout
from anovox_training.data.synth.motion import FRAME_DT_S, EgoPath, Track
from anovox_training.data.synth.parts import yaw_rotation
from anovox_training.data.synth.primitives import PrimitiveBatch, aabb_half_extents

__all__ = ['SENSOR_HEIGHT_M', 'Actor', 'AnomalyBox', 'Lighting', 'PlacedAnomaly', 'Scenario', 'tilt_rotation']

# Camera and LiDAR share one mount on the ego, as in AnoVox's MONO rig.
SENSOR_HEIGHT_M = 1.8


def tilt_rotation(normal: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking world up onto the unit ``normal`` (an object standing on a slope)."""
    n = np.asarray(normal, np.float64)
    axis = np.array([-n[1], n[0], 0.0])  # z x n
    s, c = float(np.linalg.norm(axis)), float(n[2])
    if s < 1e-12:
        return np.eye(3)
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]]) / s
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


@dataclass(frozen=True)
class Lighting:
    """Sun, sky and atmosphere of one scenario.

    Attributes:
        sun_dir: (3,) unit vector towards the sun (world frame).
        sun_rgb: (3,) direct light colour and strength.
        ambient_rgb: (3,) sky light colour and strength.
        sky_zenith_rgb, sky_horizon_rgb: (3,) sky gradient.
        fog_distance_m: Distance at which 63 % of a surface's colour is replaced by haze.
        exposure: Overall brightness factor of the camera.
    """

    sun_dir: np.ndarray
    sun_rgb: np.ndarray
    ambient_rgb: np.ndarray
    sky_zenith_rgb: np.ndarray
    sky_horizon_rgb: np.ndarray
    fog_distance_m: float
    exposure: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Lighting:
        """Daylight from low sun to overcast (variation.draw_lighting widens the sun and haze ranges)."""
        elevation = math.radians(rng.uniform(12.0, 70.0))
        azimuth = rng.uniform(0.0, 2 * math.pi)
        sun_dir = np.array(
            [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
        )
        overcast = rng.uniform(0.0, 1.0) ** 2
        warm = np.array([1.0, 0.93, 0.8]) if elevation < math.radians(25) else np.array([1.0, 0.98, 0.94])
        sun = warm * (1.0 - 0.75 * overcast) * rng.uniform(0.85, 1.1)
        clear_sky = np.array([0.28, 0.48, 0.82]) * rng.uniform(0.85, 1.1)
        grey_sky = np.array([0.62, 0.64, 0.68]) * rng.uniform(0.8, 1.1)
        zenith = clear_sky * (1 - overcast) + grey_sky * overcast
        horizon = np.clip(zenith * 0.5 + np.array([0.85, 0.87, 0.9]) * 0.5, 0, 1)
        ambient = (0.35 + 0.3 * overcast) * (0.6 * np.ones(3) + 0.4 * zenith / zenith.max())
        return cls(
            sun_dir=sun_dir,
            sun_rgb=sun.astype(np.float32),
            ambient_rgb=ambient.astype(np.float32),
            sky_zenith_rgb=zenith.astype(np.float32),
            sky_horizon_rgb=horizon.astype(np.float32),
            fog_distance_m=float(rng.uniform(250.0, 900.0)),
            exposure=float(rng.uniform(0.9, 1.15)),
        )


@dataclass
class Actor:
    """An object that moves (or may move): parts in its own frame and a pose per frame."""

    name: str
    instance_id: int
    parts: PrimitiveBatch
    track: Track


@dataclass(frozen=True)
class PlacedAnomaly:
    """One anomaly of a scenario.

    Attributes:
        anomaly_id: Index of the anomaly within its scenario.
        category: AnoVox category ('home', 'animal', ...).
        label: Its label id (29..34).
        name: Template name, e.g. 'animal/deer'.
        actor: Index of its actor in `Scenario.actors`.
    """

    anomaly_id: int
    category: str
    label: int
    name: str
    actor: int


@dataclass(frozen=True)
class AnomalyBox:
    """An anomaly's bounding box at one frame, in the LiDAR frame.

    Attributes:
        anomaly: Which anomaly.
        instance_id: Its instance id.
        center_m: (3,) box centre.
        size_m: (3,) length, width, height along the box axes.
        yaw_deg: Box heading relative to the LiDAR's x axis.
    """

    anomaly: PlacedAnomaly
    instance_id: int
    center_m: np.ndarray
    size_m: np.ndarray
    yaw_deg: float


@dataclass
class Scenario:
    """Everything needed to render every frame of one scenario."""

    scenario_id: str
    split: str
    index: int
    seed: int
    num_frames: int
    first_frame_id: int
    road: RoadLayout
    lighting: Lighting
    ego: EgoPath
    static: PrimitiveBatch
    actors: list[Actor]
    anomalies: list[PlacedAnomaly]
    start_time_s: float = 0.0
    _dynamic: PrimitiveBatch | None = field(default=None, repr=False)
    _owner: np.ndarray | None = field(default=None, repr=False)

    def add_actor(self, actor: Actor, category: str | None = None) -> int:
        """Add an actor (an anomaly of ``category`` when given); returns its index in ``actors``."""
        self.actors.append(actor)
        index = len(self.actors) - 1
        if category is not None:
            label = CATEGORY_TO_LABEL[category]
            self.anomalies.append(PlacedAnomaly(len(self.anomalies), category, label, actor.name, index))
        self._dynamic = None
        return index

    def frame_id(self, k: int) -> int:
        """The CARLA-style frame id of frame index ``k``."""
        return self.first_frame_id + k

    def timestamp_s(self, k: int) -> float:
        """Simulation time of frame index ``k``."""
        return self.start_time_s + k * FRAME_DT_S

    def world_from_ego(self, k: int) -> np.ndarray:
        """4x4 world-from-ego transform at frame index ``k``: on the ground, heading along its yaw.

        On a shaped road the ego pitches and rolls with the ground under it.
        """
        rot = yaw_rotation(float(self.ego.yaw[k]))
        if not self.road.is_flat:
            x, y = self.ego.position[k, :2]
            rot = tilt_rotation(self.road.normal(x, y)) @ rot
        return make_transform(rot, self.ego.position[k])

    def world_from_lidar(self, k: int, ego_from_lidar: np.ndarray | None = None) -> np.ndarray:
        """4x4 world-from-LiDAR transform (REP-103 frames) at frame index ``k``.

        Args:
            k: Frame index.
            ego_from_lidar: The LiDAR's mount (None: AnoVox's MONO mount, SENSOR_HEIGHT_M up).
        """
        if ego_from_lidar is None:
            ego_from_lidar = make_transform(np.eye(3), [0.0, 0.0, SENSOR_HEIGHT_M])
        return self.world_from_ego(k) @ ego_from_lidar

    def primitives_at(self, k: int) -> PrimitiveBatch:
        """World-frame primitives of frame index ``k``: static scenery plus every present actor."""
        if self._dynamic is None:
            self._dynamic = PrimitiveBatch.concat([a.parts for a in self.actors])
            self._owner = np.concatenate(
                [np.full(len(a.parts), i, np.int64) for i, a in enumerate(self.actors)] or [np.zeros(0, np.int64)]
            )
        if not len(self._dynamic):
            return self.static
        rot = np.stack([a.track.rotation[k] for a in self.actors])
        pos = np.stack([a.track.position[k] for a in self.actors])
        present = np.array([a.track.present[k] for a in self.actors])
        owner = self._owner
        moved = self._dynamic.transformed_each(rot[owner], pos[owner])
        return PrimitiveBatch.concat([self.static, moved.take(present[owner])])

    def anomaly_boxes(
        self, k: int, max_range_m: float = 100.0, ego_from_lidar: np.ndarray | None = None
    ) -> list[AnomalyBox]:
        """Bounding boxes (LiDAR frame) of the anomalies present within ``max_range_m`` at frame index ``k``.

        Each box is aligned with the anomaly's heading and encloses all its
        primitives exactly (boxes, ellipsoids) or conservatively (cylinders).
        ``ego_from_lidar`` is the LiDAR mount (see `world_from_lidar`).
        """
        lidar_from_world = np.linalg.inv(self.world_from_lidar(k, ego_from_lidar))
        boxes = []
        for anomaly in self.anomalies:
            actor = self.actors[anomaly.actor]
            if not actor.track.present[k]:
                continue
            yaw = float(actor.track.yaw[k])
            world = actor.parts.transformed(actor.track.rotation[k], actor.track.position[k])
            to_box = yaw_rotation(yaw).T
            centres = world.center @ to_box.T
            half = aabb_half_extents(world, to_box)
            lo, hi = (centres - half).min(axis=0), (centres + half).max(axis=0)
            centre_world = yaw_rotation(yaw) @ ((lo + hi) / 2)
            centre = lidar_from_world[:3, :3] @ centre_world + lidar_from_world[:3, 3]
            if np.linalg.norm(centre[:2]) > max_range_m:
                continue
            rel_yaw = math.degrees(math.remainder(yaw - float(self.ego.yaw[k]), 2 * math.pi))
            boxes.append(AnomalyBox(anomaly, actor.instance_id, centre, hi - lo, rel_yaw))
        return boxes
