"""Sun shadows: how much direct sunlight reaches surface points, from a shadow map.

The sun is a directional light, so every shadow ray of a frame is parallel. A
pinhole camera placed far out along the sun direction, with a field of view
just covering the points to be lit, sees the scene almost orthographically:
its depth map (the existing culled ray cast, primitives only) holds the first
surface each sun ray meets. A point is in shadow where that surface lies
clearly in front of it; four neighbouring texels are compared and blended
(percentage-closer filtering) for soft edges. The map's texel size grows when
the lit area is large, so the cost stays bounded by ``max_texels`` rays.
"""

from __future__ import annotations

import math

import numpy as np

from anovox_perception.core.geometry import OPTICAL_FROM_BODY, CameraModel
from anovox_training.data.synth.primitives import PrimitiveBatch
from anovox_training.data.synth.raycast import cast
from anovox_training.data.synth.sensors import CameraRig

__all__ = ['sun_visibility']

# How far the shadow camera stands from the lit points: far enough for near-parallel rays.
_SUN_DISTANCE_M = 3000.0
_BIAS_M = 0.05


def _sun_frame(sun_dir: np.ndarray) -> np.ndarray:
    """World-from-body rotation of a camera looking from the sun (body x along ``-sun_dir``)."""
    forward = -sun_dir / np.linalg.norm(sun_dir)
    up = np.array([0.0, 0.0, 1.0]) if abs(forward[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
    left = np.cross(up, forward)
    left /= np.linalg.norm(left)
    return np.stack([forward, left, np.cross(forward, left)], axis=1)


def sun_visibility(
    points: np.ndarray,
    normals: np.ndarray,
    prims: PrimitiveBatch,
    sun_dir: np.ndarray,
    texel_m: float = 0.1,
    max_texels: int = 60000,
) -> np.ndarray:
    """Share of direct sunlight (0: full shadow, 1: lit) reaching each point.

    Args:
        points: (N, 3) world surface points.
        normals: (N, 3) their unit normals (they set the depth bias of slanted surfaces).
        prims: The occluders.
        sun_dir: (3,) unit vector towards the sun.
        texel_m: Finest shadow-map texel, m.
        max_texels: Most shadow rays cast; the texel grows beyond it.

    Returns:
        (N,) float32 in [0, 1].
    """
    n = len(points)
    if n == 0 or not len(prims):
        return np.ones(n, np.float32)
    rot = _sun_frame(np.asarray(sun_dir, np.float64))
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    origin = centre - rot[:, 0] * _SUN_DISTANCE_M
    optical = (points - origin) @ (OPTICAL_FROM_BODY @ rot.T).T
    depth = optical[:, 2]
    # Lateral offsets at the shadow camera's distance, in metres.
    lateral = optical[:, :2] * (_SUN_DISTANCE_M / depth[:, None])
    lo, hi = lateral.min(axis=0), lateral.max(axis=0)
    extent = np.maximum(hi - lo, texel_m)
    texel = max(texel_m, math.sqrt(extent[0] * extent[1] / max_texels))
    width, height = (int(math.ceil(e / texel)) + 2 for e in extent)
    focal = _SUN_DISTANCE_M / texel
    camera = CameraModel(width, height, focal, focal, 1.0 - lo[0] / texel, 1.0 - lo[1] / texel)
    rig = CameraRig(camera, far_m=2 * _SUN_DISTANCE_M)
    dirs = np.einsum('ij,jhw->ihw', rot, rig.body_dirs())
    depth_map, _, _ = cast(origin, dirs, prims, rig.rects(prims, origin, rot), None)

    # Bilinear taps around each point's texel (pixel c's ray passes through u = c + 0.5).
    u = camera.fx * optical[:, 0] / depth + camera.cx - 0.5
    v = camera.fy * optical[:, 1] / depth + camera.cy - 0.5
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = u - u0, v - v0
    cos_sun = np.clip(np.abs(normals @ np.asarray(sun_dir, np.float64)), 0.2, 1.0)
    bias = _BIAS_M + 1.5 * texel * np.sqrt(1.0 - cos_sun**2) / cos_sun
    visible = np.zeros(n)
    for du, dv, weight in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)), (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
        col = np.clip(u0 + du, 0, width - 1)
        row = np.clip(v0 + dv, 0, height - 1)
        lit = depth_map[row, col] >= depth - bias
        visible += weight * lit
    return visible.astype(np.float32)
