"""Casting a grid of rays that share one origin against the ground and a primitive batch.

The caller (a sensor) supplies, per primitive, the rectangles of its ray grid
that can possibly hit the primitive (screen-space or angular bounds); each
primitive is then intersected only with those rays, and a z-buffer keeps the
nearest hit. The ground is intersected analytically for all rays first.
`resolve` turns the nearest hits into per-ray surface attributes (point,
normal, label, instance, albedo, material, texture coordinates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anovox_training.data.synth import materials as M
from anovox_training.data.synth.ground import RoadLayout, intersect_ground
from anovox_training.data.synth.primitives import BOX, PrimitiveBatch, intersect, local_normals

__all__ = ['GROUND', 'SKY', 'Surface', 'cast', 'resolve']

GROUND = -1
SKY = -2


def cast(
    origin: np.ndarray,
    dirs: np.ndarray,
    prims: PrimitiveBatch,
    rects: np.ndarray,
    road: RoadLayout | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hits of a ray grid.

    Args:
        origin: (3,) world origin of every ray.
        dirs: (3, R, C) world ray directions (any length; ``t`` is in units of it).
        prims: World-frame primitives.
        rects: (K, 5) int rows ``[primitive, row0, row1, col0, col1]`` (half-open) of rays to test.
        road: The ground (None: primitives only, as for shadow rays).

    Returns:
        ``(t, pid, kerb_side)``: (R, C) ray parameters (inf: sky), hit primitive index
        (GROUND or SKY for none), and the ground's kerb flag (see ground.GroundHits).
    """
    dx, dy, dz = dirs
    if road is None:
        t = np.full(dx.shape, np.inf)
        kerb_side = np.zeros(dx.shape, np.int8)
    else:
        ground = intersect_ground(road, origin, dx, dy, dz)
        t, kerb_side = ground.t.copy(), ground.kerb_side
    pid = np.where(np.isfinite(t), GROUND, SKY).astype(np.int32)
    if len(prims) and len(rects):
        offsets = origin[None, :] - prims.center
        local_origin = np.einsum('pji,pj->pi', prims.rotation, offsets)
        for p, r0, r1, c0, c1 in rects.tolist():
            rot = prims.rotation[p]
            sx, sy, sz = dx[r0:r1, c0:c1], dy[r0:r1, c0:c1], dz[r0:r1, c0:c1]
            # Local direction = R^T d.
            lx = sx * rot[0, 0] + sy * rot[1, 0] + sz * rot[2, 0]
            ly = sx * rot[0, 1] + sy * rot[1, 1] + sz * rot[2, 1]
            lz = sx * rot[0, 2] + sy * rot[1, 2] + sz * rot[2, 2]
            tp = intersect(int(prims.kind[p]), local_origin[p], lx, ly, lz, prims.half[p], float(prims.taper[p]))
            view = t[r0:r1, c0:c1]
            nearer = tp < view
            if nearer.any():
                view[nearer] = tp[nearer]
                pid[r0:r1, c0:c1][nearer] = p
    return t, pid, kerb_side


@dataclass
class Surface:
    """Surface attributes of the rays of a cast that hit something (M hits, compact).

    Hits are ordered ground first, then objects; ``ray`` maps each back to its
    ray (flat index into the R x C grid).

    Attributes:
        shape: (R, C) of the ray grid.
        ray: (M,) int64 flat ray index.
        t: (M,) ray parameter.
        pid: (M,) primitive index, or GROUND.
        point: (M, 3) world hit point.
        normal: (M, 3) unit world normal facing the ray.
        label: (M,) uint8 semantic label.
        instance: (M,) int32 instance id (0 for the ground).
        albedo: (M, 3) float32 base colour.
        material: (M,) uint8 material id.
        tex_coord: (M, 3) coordinates the texture is a function of (local for objects, world for ground).
        tex_seed: (M,) uint32 per-surface texture seed.
    """

    shape: tuple[int, int]
    ray: np.ndarray
    t: np.ndarray
    pid: np.ndarray
    point: np.ndarray
    normal: np.ndarray
    label: np.ndarray
    instance: np.ndarray
    albedo: np.ndarray
    material: np.ndarray
    tex_coord: np.ndarray
    tex_seed: np.ndarray

    def grid(self, values: np.ndarray, fill: float | int, dtype: np.dtype | type) -> np.ndarray:
        """An (R, C) grid holding ``values`` (M,) at the hit rays and ``fill`` elsewhere."""
        out = np.full(self.shape[0] * self.shape[1], fill, dtype)
        np.put(out, self.ray, values)
        return out.reshape(self.shape)

    def sky_rays(self) -> np.ndarray:
        """Flat indices of the rays that hit nothing."""
        hit = np.zeros(self.shape[0] * self.shape[1], bool)
        hit[self.ray] = True
        return np.flatnonzero(~hit)


def resolve(
    origin: np.ndarray,
    dirs: np.ndarray,
    t: np.ndarray,
    pid: np.ndarray,
    kerb_side: np.ndarray,
    prims: PrimitiveBatch,
    road: RoadLayout,
) -> Surface:
    """Surface attributes of the nearest hits returned by `cast`.

    Args:
        origin: (3,) world origin of the rays.
        dirs: (3, R, C) world ray directions.
        t, pid, kerb_side: The outputs of `cast`.
        prims: The primitives that were cast against.
        road: The ground.

    Returns:
        The hits, compact.
    """
    shape = t.shape
    flat_t, flat_pid = t.reshape(-1), pid.reshape(-1)
    planes = dirs.reshape(3, -1)
    g = np.flatnonzero(flat_pid == GROUND)
    o = np.flatnonzero(flat_pid >= 0)

    # Ground: classified by position on the road.
    tg = flat_t.take(g)
    dg = planes.take(g, axis=1)
    gx, gy, gz = (origin[i] + tg * dg[i] for i in range(3))
    side = kerb_side.reshape(-1).take(g)
    kerb = side != 0
    g_label, surface = road.classify(gx, gy, kerb)
    g_albedo, g_material = road.surface_albedo(surface)
    g_point = np.stack([gx, gy, gz], axis=1)
    if road.is_flat:
        g_normal = np.zeros((len(g), 3))
        g_normal[:, 2] = 1.0
    else:
        g_normal = road.normal(gx, gy)
    g_normal[kerb] = 0.0
    g_normal[kerb, 1] = -side[kerb]
    g_seed = surface.astype(np.uint32) * np.uint32(7919)

    # Objects: normals and texture coordinates in each primitive's frame.
    idx = flat_pid.take(o)
    to = flat_t.take(o)
    do = planes.take(o, axis=1).T
    o_point = origin + to[:, None] * do
    rot = np.take(prims.rotation, idx, axis=0)
    local = np.einsum('mji,mj->mi', rot, o_point - np.take(prims.center, idx, axis=0))
    half = np.take(prims.half, idx, axis=0)
    kind = prims.kind.take(idx)
    n_local = local_normals(kind, local, half, prims.taper.take(idx))
    o_normal = np.einsum('mij,mj->mi', rot, n_local)
    o_albedo = np.take(prims.color, idx, axis=0)
    o_material = prims.material.take(idx)
    _facade_windows(local, n_local, half, kind, idx, o_albedo, o_material)
    # Normals face the incoming ray (thin parts can be seen from either side).
    flip = np.einsum('mi,mi->m', o_normal, do) > 0
    o_normal[flip] *= -1.0

    return Surface(
        shape=shape,
        ray=np.concatenate([g, o]),
        t=np.concatenate([tg, to]),
        pid=np.concatenate([np.full(len(g), GROUND, np.int32), idx]),
        point=np.concatenate([g_point, o_point]),
        normal=np.concatenate([g_normal, o_normal]),
        label=np.concatenate([g_label, prims.label.take(idx)]),
        instance=np.concatenate([np.zeros(len(g), np.int32), prims.instance.take(idx)]),
        albedo=np.concatenate([g_albedo, o_albedo]).astype(np.float32),
        material=np.concatenate([g_material, o_material]),
        tex_coord=np.concatenate([g_point, local]),
        tex_seed=np.concatenate([g_seed, idx.astype(np.uint32) * np.uint32(2654435761) + np.uint32(12345)]),
    )


def _facade_windows(
    local: np.ndarray,
    n_local: np.ndarray,
    half: np.ndarray,
    kind: np.ndarray,
    idx: np.ndarray,
    albedo: np.ndarray,
    material: np.ndarray,
) -> None:
    """Paint a window grid (glass) onto the vertical faces of facade boxes, in place."""
    facade = np.flatnonzero((material == M.FACADE) & (kind == BOX) & (np.abs(n_local[:, 2]) < 0.5))
    if not len(facade):
        return
    lp, hp, nl = np.take(local, facade, axis=0), np.take(half, facade, axis=0), np.take(n_local, facade, axis=0)
    along = np.where(np.abs(nl[:, 0]) > 0.5, lp[:, 1] + hp[:, 1], lp[:, 0] + hp[:, 0])
    height = lp[:, 2] + hp[:, 2]
    # Window spacing varies per building (hash of the primitive index).
    h = (idx.take(facade).astype(np.uint32) * np.uint32(2246822519)) >> np.uint32(16)
    spacing = 2.6 + (h % 7) * 0.25
    storey = 3.0 + (h % 5) * 0.15
    width = spacing * (0.4 + (h % 3) * 0.1)
    level = np.mod(height, storey)
    window = (np.mod(along, spacing) < width) & (level > 0.9) & (level < 2.3)
    window &= (height > 1.0) & (height < 2 * hp[:, 2] - 0.5)
    glass = facade[window]
    albedo[glass] = (0.12, 0.15, 0.19)
    material[glass] = M.GLASS
