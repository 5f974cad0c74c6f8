"""Motion of the ego and the actors: poses over the frames of a scenario (10 Hz).

Everything here works on whole time series at once: a `Track` holds one
object's pose at every frame, and the ego's path is planned once per scenario
(cruise with a varying speed, swerve around obstacles in its lane, stop before
one it cannot pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anovox_perception.core.geometry import rotation_from_rpy
from anovox_training.data.synth.primitives import PrimitiveBatch, aabb_half_extents

__all__ = [
    'FRAME_DT_S',
    'EgoPath',
    'Obstacle',
    'Track',
    'falling_track',
    'linear_track',
    'pacing_track',
    'plan_ego',
    'speed_profile',
    'static_track',
]

FRAME_DT_S = 0.1
_GRAVITY_MPS2 = 9.81


@dataclass
class Track:
    """One rigid object's pose at every frame.

    Attributes:
        rotation: (F, 3, 3) world-from-object rotations.
        position: (F, 3) world position of the object-frame origin, m.
        present: (F,) whether the object exists at that frame.
    """

    rotation: np.ndarray
    position: np.ndarray
    present: np.ndarray

    @property
    def yaw(self) -> np.ndarray:
        """(F,) heading of the object's x axis in the world xy-plane, rad."""
        return np.arctan2(self.rotation[:, 1, 0], self.rotation[:, 0, 0])


@dataclass(frozen=True)
class Obstacle:
    """A world-axis-aligned footprint that road users must not drive through.

    Attributes:
        x_min_m, x_max_m, y_min_m, y_max_m: Footprint bounds.
        height_m: Top of the obstacle above the road (things high in the air do not block).
    """

    x_min_m: float
    x_max_m: float
    y_min_m: float
    y_max_m: float
    height_m: float = 10.0

    @classmethod
    def of_track(cls, parts: PrimitiveBatch, track: Track) -> Obstacle:
        """The footprint swept by ``parts`` moving along ``track`` (all frames where present)."""
        frames = np.flatnonzero(track.present)
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for f in frames[:: max(1, len(frames) // 20)].tolist() + [int(frames[-1])]:
            world = parts.transformed(track.rotation[f], track.position[f])
            half = aabb_half_extents(world)
            lo = np.minimum(lo, (world.center - half).min(axis=0))
            hi = np.maximum(hi, (world.center + half).max(axis=0))
        return cls(float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]), float(hi[2]))


def _yaw_matrices(yaw: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros((len(yaw), 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    return rot


def static_track(num_frames: int, position: np.ndarray, yaw_rad: float, rpy_extra: np.ndarray | None = None) -> Track:
    """An object standing still."""
    rot = rotation_from_rpy(0.0, 0.0, yaw_rad)
    if rpy_extra is not None:
        rot = rot @ rotation_from_rpy(*rpy_extra)
    return Track(
        rotation=np.repeat(rot[None], num_frames, axis=0),
        position=np.repeat(np.asarray(position, np.float64)[None], num_frames, axis=0),
        present=np.ones(num_frames, bool),
    )


def linear_track(num_frames: int, start: np.ndarray, velocity: np.ndarray) -> Track:
    """Constant velocity in the xy-plane, heading along the velocity."""
    t = np.arange(num_frames) * FRAME_DT_S
    pos = np.asarray(start, np.float64)[None] + t[:, None] * np.asarray(velocity, np.float64)[None]
    yaw = np.full(num_frames, math.atan2(velocity[1], velocity[0]))
    return Track(_yaw_matrices(yaw), pos, np.ones(num_frames, bool))


def pacing_track(
    num_frames: int, centre: np.ndarray, heading_rad: float, amplitude_m: float, period_s: float, phase: float
) -> Track:
    """Walking back and forth along a heading (an animal on the road), facing where it goes."""
    t = np.arange(num_frames) * FRAME_DT_S
    w = 2 * math.pi / period_s
    s = amplitude_m * np.sin(w * t + phase)
    direction = np.array([math.cos(heading_rad), math.sin(heading_rad), 0.0])
    pos = np.asarray(centre, np.float64)[None] + s[:, None] * direction[None]
    forward = np.cos(w * t + phase) >= 0
    yaw = np.where(forward, heading_rad, heading_rad + math.pi)
    return Track(_yaw_matrices(yaw), pos, np.ones(num_frames, bool))


def _axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 3, 3) about one unit axis by N angles (Rodrigues)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3)[None] + s * k[None] + (1 - c) * (k @ k)[None]


def falling_track(
    rng: np.random.Generator,
    num_frames: int,
    parts: PrimitiveBatch,
    xy: np.ndarray,
    ground_z_m: float,
    start_height_m: float,
    trigger_frame: int,
) -> Track:
    """An object hovering and tumbling in the air, then falling, bouncing and coming to rest.

    ``parts`` must be centred on the object-frame origin. Before ``trigger_frame``
    the object bobs at ``start_height_m`` (its lowest point above the ground) and
    spins slowly; afterwards it falls under gravity while tumbling, bounces with
    a restitution of about 0.3 and then lies still.
    """
    t = np.arange(num_frames) * FRAME_DT_S
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    spin_hover = rng.uniform(0.3, 1.2) * rng.choice([-1.0, 1.0])
    spin_fall = rng.uniform(2.0, 6.0)
    restitution = rng.uniform(0.2, 0.4)
    t0 = trigger_frame * FRAME_DT_S
    # Height of the lowest point above the ground, and the tumbling angle, per frame.
    height = np.empty(num_frames)
    angle = np.empty(num_frames)
    resting = np.zeros(num_frames, bool)
    hover = t < t0
    height[hover] = start_height_m + 0.15 * np.sin(2.0 * t[hover])
    angle[hover] = spin_hover * t[hover]
    h, v, a = start_height_m, 0.0, spin_hover * t0
    for f in np.flatnonzero(~hover):
        if f > 0 and not hover[f - 1]:
            v -= _GRAVITY_MPS2 * FRAME_DT_S
            h += v * FRAME_DT_S
            if not resting[f - 1]:
                a += spin_fall * FRAME_DT_S
            if h <= 0.0:
                h = 0.0
                v = -v * restitution
                if abs(v) < 1.0:
                    v = 0.0
                    resting[f] = True
            resting[f] = resting[f] or (f > 0 and resting[f - 1])
        height[f], angle[f] = h, a
    rot0 = rotation_from_rpy(*rng.uniform(0, 2 * math.pi, 3))
    rot = np.einsum('fij,jk->fik', _axis_angle(axis, angle), rot0)
    # Lift each pose so that the object's lowest point sits at the wanted height.
    pos = np.zeros((num_frames, 3))
    pos[:, :2] = xy
    for f in range(num_frames):
        world = parts.transformed(rot[f], np.zeros(3))
        bottom = (world.center[:, 2] - aabb_half_extents(world)[:, 2]).min()
        pos[f, 2] = ground_z_m + height[f] - bottom
    return Track(rot, pos, np.ones(num_frames, bool))


def _plateau(x: np.ndarray, lo: float, hi: float, ramp: float) -> np.ndarray:
    """1 on [lo, hi], smooth ramps of length ``ramp`` either side, 0 beyond."""
    up = np.clip((x - (lo - ramp)) / ramp, 0.0, 1.0)
    down = np.clip(((hi + ramp) - x) / ramp, 0.0, 1.0)
    s = np.minimum(up, down)
    return s * s * (3 - 2 * s)


@dataclass
class EgoPath:
    """The ego's motion: ground position (F, 3), yaw (F,), velocity (F, 3), and where it stops (None: it never does)."""

    position: np.ndarray
    yaw: np.ndarray
    velocity: np.ndarray
    stop_x_m: float | None


def speed_profile(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """Nominal ego travel (F,) along +x, m: a cruise speed of 3-11 m/s that drifts by +-25 %."""
    t = np.arange(num_frames) * FRAME_DT_S
    v0 = rng.uniform(3.0, 11.0)
    speed = v0 * (1.0 + 0.25 * np.sin(2 * math.pi * t / rng.uniform(8, 20) + rng.uniform(0, 2 * math.pi)))
    return np.concatenate([[0.0], np.cumsum(speed[:-1] * FRAME_DT_S)])


def plan_ego(
    rng: np.random.Generator,
    x_nominal: np.ndarray,
    lane_y_m: float,
    road_half_width_m: float,
    obstacles: list[Obstacle],
    clearance_m: float = 1.4,
) -> EgoPath:
    """Drive along +x in a lane, swerving around obstacles in the way and stopping before impassable ones.

    Args:
        rng: Random generator (stopping gap).
        x_nominal: (F,) travel without obstacles (speed_profile).
        lane_y_m: Lane centre.
        road_half_width_m: The ego's centre keeps ``clearance_m`` inside ``[-w, w]``.
        obstacles: Footprints to avoid.
        clearance_m: Lateral distance kept between the ego's centre line and an obstacle.

    Returns:
        The path.
    """
    num_frames = len(x_nominal)
    limit = road_half_width_m - clearance_m + 0.3
    swerves: list[tuple[float, float, float, float]] = []
    stop_x: float | None = None
    # Lane-change lengths, preferred first: a 3.5 m offset over 30 m turns the
    # heading by at most ~10 deg, over 15 m (when obstacles crowd) by ~20 deg.
    ramps = (30.0, 15.0)

    def lateral(x: np.ndarray) -> np.ndarray:
        offset = np.zeros_like(x)
        for lo, hi, d, ramp in swerves:
            s = d * _plateau(x, lo, hi, ramp)
            offset = np.where(np.abs(s) > np.abs(offset), s, offset)
        return lane_y_m + offset

    def blocked(ob: Obstacle) -> bool:
        y_path = lateral(np.linspace(ob.x_min_m, ob.x_max_m, 8))
        return bool(np.any((y_path + clearance_m > ob.y_min_m) & (y_path - clearance_m < ob.y_max_m)))

    relevant = [o for o in obstacles if o.x_max_m >= 0.0 and o.x_min_m <= x_nominal[-1] + 5.0]
    for ob in sorted(relevant, key=lambda o: o.x_min_m):
        if not blocked(ob):
            continue
        # Pass on either side with a little extra room, nearest side first; a
        # swerve must not run into anything that was clear before it.
        options = [ob.y_max_m + clearance_m + 0.05, ob.y_min_m - clearance_m - 0.05]
        options = sorted((y for y in options if abs(y) <= limit), key=lambda y: abs(y - lane_y_m))
        # Obstacles right in front at the start cannot be swerved around any more.
        if ob.x_min_m <= 4.0:
            options = []
        lo, hi = ob.x_min_m - 2.0 - ramps[0], ob.x_max_m + 2.0 + ramps[0]
        nearby = [o for o in relevant if o is not ob and o.x_max_m > lo and o.x_min_m < hi]
        clear_before = [o for o in nearby if not blocked(o)]
        for target, ramp in ((y, r) for r in ramps for y in options):
            swerves.append((ob.x_min_m - 2.0, ob.x_max_m + 2.0, target - lane_y_m, ramp))
            if not blocked(ob) and not any(blocked(o) for o in clear_before):
                break
            swerves.pop()
        else:
            stop_x = ob.x_min_m - rng.uniform(5.0, 12.0)
            break

    x = x_nominal
    if stop_x is not None:
        # Smooth approach to the stopping point (softplus), exact far from it.
        soft = 4.0
        x = np.maximum.accumulate(stop_x - soft * np.logaddexp(0.0, (stop_x - x_nominal) / soft))
    y = lateral(x)
    # Heading along the path: lateral change over one metre of travel.
    yaw = np.arctan2(lateral(x + 0.5) - lateral(x - 0.5), 1.0)
    position = np.stack([x, y, np.zeros_like(x)], axis=1)
    velocity = np.gradient(position, FRAME_DT_S, axis=0) if num_frames > 1 else np.zeros((1, 3))
    return EgoPath(position=position, yaw=yaw, velocity=velocity, stop_x_m=stop_x)
