"""Moving a scenario built on the flat road onto a shaped ground (grade, vertical curve, camber, crown, kerbs).

The placement code (world.py, roadside.py, traffic.py) works in flat-road heights:
the road at z = 0 and everything beyond the kerbs at the kerb height
(`WorldBuilder.ground_z`). `drape` then lifts every object by the relief, the
difference between the shaped ground (`RoadLayout.height`) and that flat
reference, so nothing placed on the ground floats or sinks, whatever the shape:

- vehicles (and their riders) tilt with the ground under their centre, as a car
  does on its wheels;
- everything else stays upright and rests on the lowest ground under its
  footprint (on a slope a building's uphill side goes into the ground);
- the ego rides on the road: its height follows the ground, and
  `Scenario.world_from_ego` tilts it with the ground normal.

Each object is moved as a whole (static scenery by instance id, actors per frame
of their track), so shapes and instance masks are unchanged.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from anovox_training.data.labels import LABEL_IDS
from anovox_training.data.synth.ground import RoadLayout
from anovox_training.data.synth.motion import Track
from anovox_training.data.synth.primitives import PrimitiveBatch, aabb_half_extents
from anovox_training.data.synth.scene import Actor, Scenario, tilt_rotation

__all__ = ['VEHICLE_LABELS', 'drape', 'footprint_relief']

VEHICLE_LABELS = tuple(LABEL_IDS[name] for name in ('car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle'))
# Footprint sample points: corners, edge midpoints and centre of a unit square [-1, 1]^2.
_SAMPLES = np.array([(sx, sy) for sx in (-1.0, 0.0, 1.0) for sy in (-1.0, 0.0, 1.0)])


def _relief(flat: RoadLayout, shaped: RoadLayout, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return shaped.height(x, y) - flat.flat_height(y)


def footprint_relief(
    flat: RoadLayout, shaped: RoadLayout, centre_xy: np.ndarray, half_xy: np.ndarray, yaw: np.ndarray
) -> np.ndarray:
    """Lowest relief under (N,) rectangular footprints (centre (N, 2), half sizes (N, 2), heading (N,))."""
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    lx, ly = _SAMPLES[None, :, 0] * half_xy[:, :1], _SAMPLES[None, :, 1] * half_xy[:, 1:]
    x = centre_xy[:, :1] + c * lx - s * ly
    y = centre_xy[:, 1:] + s * lx + c * ly
    return _relief(flat, shaped, x, y).min(axis=1)


def _drape_static(static: PrimitiveBatch, flat: RoadLayout, shaped: RoadLayout) -> PrimitiveBatch:
    if not len(static):
        return static
    # One group per instance (primitives without one move alone).
    key = np.where(static.instance > 0, static.instance.astype(np.int64), -1 - np.arange(len(static)))
    _, group = np.unique(key, return_inverse=True)
    count = int(group.max()) + 1
    half = aabb_half_extents(static)
    lo, hi = static.center - half, static.center + half
    g_lo = np.full((count, 3), np.inf)
    g_hi = np.full((count, 3), -np.inf)
    np.minimum.at(g_lo, group, lo)
    np.maximum.at(g_hi, group, hi)
    centre = (g_lo[:, :2] + g_hi[:, :2]) / 2
    vehicle = np.zeros(count, bool)
    vehicle[group[np.isin(static.label, VEHICLE_LABELS)]] = True
    lift = footprint_relief(flat, shaped, centre, (g_hi[:, :2] - g_lo[:, :2]) / 2, np.zeros(count))
    lift[vehicle] = _relief(flat, shaped, centre[vehicle, 0], centre[vehicle, 1])
    rotations = np.repeat(np.eye(3)[None], count, axis=0)
    for g in np.flatnonzero(vehicle):
        rotations[g] = tilt_rotation(shaped.normal(centre[g, 0], centre[g, 1]))
    # Tilt about the bottom centre of each object, then lift it.
    pivot = np.column_stack([centre, g_lo[:, 2]])
    rot = rotations[group]
    out = static.take(slice(None))
    out.center = np.einsum('pij,pj->pi', rot, static.center - pivot[group]) + pivot[group]
    out.center[:, 2] += lift[group]
    out.rotation = np.einsum('pij,pjk->pik', rot, static.rotation)
    return out


def _drape_track(actor: Actor, flat: RoadLayout, shaped: RoadLayout) -> Track:
    track = actor.track
    parts = actor.parts
    half = aabb_half_extents(parts)
    lo, hi = (parts.center - half).min(axis=0), (parts.center + half).max(axis=0)
    frames = len(track.position)
    yaw = track.yaw
    # The footprint centre in the object frame, carried along the track.
    mid = (lo[:2] + hi[:2]) / 2
    c, s = np.cos(yaw), np.sin(yaw)
    centre = track.position[:, :2] + np.stack([c * mid[0] - s * mid[1], s * mid[0] + c * mid[1]], axis=1)
    position = track.position.copy()
    rotation = track.rotation.copy()
    if np.isin(parts.label, VEHICLE_LABELS).any():
        position[:, 2] += _relief(flat, shaped, centre[:, 0], centre[:, 1])
        normals = shaped.normal(centre[:, 0], centre[:, 1])
        rotation = np.einsum('fij,fjk->fik', np.stack([tilt_rotation(n) for n in normals]), rotation)
    else:
        half_xy = np.repeat(((hi[:2] - lo[:2]) / 2)[None], frames, axis=0)
        position[:, 2] += footprint_relief(flat, shaped, centre, half_xy, yaw)
    return Track(rotation, position, track.present)


def drape(scenario: Scenario, shaped: RoadLayout) -> Scenario:
    """The scenario on the shaped road ``shaped`` (same cross-section widths as ``scenario.road``).

    Args:
        scenario: A scenario built on its flat road.
        shaped: The road to move it onto (kerb height, shoulder and shape may differ).

    Returns:
        A new scenario; ``scenario`` is not modified.

    Raises:
        ValueError: When ``shaped`` changes the road's width, which would move objects off their lanes.
    """
    flat = scenario.road
    if shaped.half_width_m != flat.half_width_m or shaped.sidewalk_outer_m != flat.sidewalk_outer_m:
        msg = (
            f'drape: the shaped road must keep the cross-section widths (half width {flat.half_width_m} m, '
            f'sidewalk edge {flat.sidewalk_outer_m} m), got {shaped.half_width_m} m and {shaped.sidewalk_outer_m} m'
        )
        raise ValueError(msg)
    ego = scenario.ego
    ego_position = ego.position.copy()
    ego_position[:, 2] += _relief(flat, shaped, ego_position[:, 0], ego_position[:, 1])
    velocity = ego.velocity.copy()
    # Vertical speed from the ground slope along the motion.
    gx, gy = shaped.gradient(ego_position[:, 0], ego_position[:, 1])
    velocity[:, 2] = gx * velocity[:, 0] + gy * velocity[:, 1]
    actors = [dataclasses.replace(a, track=_drape_track(a, flat, shaped)) for a in scenario.actors]
    return dataclasses.replace(
        scenario,
        road=shaped,
        ego=dataclasses.replace(ego, position=ego_position, velocity=velocity),
        static=_drape_static(scenario.static, flat, shaped),
        actors=actors,
        _dynamic=None,
        _owner=None,
    )
