"""Geometric primitives of the synthetic world and their ray intersections.

A scene is a flat list of primitives held as a struct of arrays
(`PrimitiveBatch`). Each primitive has a kind, a centre, a rotation (parent from
local), half extents and, for cylinders, a taper (top radius / bottom radius, so
0 is a cone and 1 a cylinder). Intersections are computed in the primitive's
local frame, vectorised over rays; every ray of one call shares one origin,
because every sensor of the ego rig casts from one point.

Local frames:
- box: axis-aligned, ``|x| <= hx, |y| <= hy, |z| <= hz``;
- ellipsoid: ``(x/hx)^2 + (y/hy)^2 + (z/hz)^2 <= 1``;
- cylinder: axis along local z, ``|z| <= hz`` and
  ``(x/hx)^2 + (y/hy)^2 <= s(z)^2`` with ``s`` going linearly from 1 at the
  bottom (z = -hz) to ``taper`` at the top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

__all__ = [
    'BOX',
    'CYLINDER',
    'ELLIPSOID',
    'PrimitiveBatch',
    'aabb_half_extents',
    'intersect',
    'local_normals',
]

BOX = 0
ELLIPSOID = 1
CYLINDER = 2

# Hits closer than this (m along the ray parameter) are ignored: they would be
# the surface the ray starts on.
_T_EPS = 1e-4

# The 8 corner signs of a unit box, (8, 3).
_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


@dataclass
class PrimitiveBatch:
    """Primitives as a struct of arrays (P = number of primitives).

    Attributes:
        kind: (P,) int8, one of BOX, ELLIPSOID, CYLINDER.
        center: (P, 3) float64 centre in the parent frame, m.
        rotation: (P, 3, 3) float64 parent-from-local rotation.
        half: (P, 3) float64 half extents / semi-axes / (radius x, radius y, half height), m.
        taper: (P,) float64 cylinder top-to-bottom radius ratio (ignored for other kinds).
        color: (P, 3) float32 albedo in [0, 1].
        material: (P,) uint8 material id (see materials.py).
        label: (P,) uint8 semantic label id.
        instance: (P,) int32 instance id (0 = none).
    """

    kind: np.ndarray
    center: np.ndarray
    rotation: np.ndarray
    half: np.ndarray
    taper: np.ndarray
    color: np.ndarray
    material: np.ndarray
    label: np.ndarray
    instance: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def empty(cls) -> PrimitiveBatch:
        """A batch with no primitives."""
        return cls(
            kind=np.zeros(0, np.int8),
            center=np.zeros((0, 3)),
            rotation=np.zeros((0, 3, 3)),
            half=np.zeros((0, 3)),
            taper=np.zeros(0),
            color=np.zeros((0, 3), np.float32),
            material=np.zeros(0, np.uint8),
            label=np.zeros(0, np.uint8),
            instance=np.zeros(0, np.int32),
        )

    @classmethod
    def concat(cls, batches: Sequence[PrimitiveBatch]) -> PrimitiveBatch:
        """One batch holding the primitives of ``batches`` in order."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        return cls(**{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(cls)})

    def take(self, index: np.ndarray) -> PrimitiveBatch:
        """The primitives at ``index`` (int array or bool mask)."""
        return PrimitiveBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def with_instance(self, instance_id: int) -> PrimitiveBatch:
        """A copy whose primitives all carry ``instance_id``."""
        out = self.take(slice(None))
        out.instance = np.full(len(self), instance_id, np.int32)
        return out

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> PrimitiveBatch:
        """The batch moved by one rigid transform (new parent from old parent)."""
        r = np.asarray(rotation, dtype=np.float64)
        t = np.asarray(translation, dtype=np.float64)
        out = self.take(slice(None))
        out.center = self.center @ r.T + t
        out.rotation = np.einsum('ij,pjk->pik', r, self.rotation)
        return out

    def transformed_each(self, rotations: np.ndarray, translations: np.ndarray) -> PrimitiveBatch:
        """The batch with primitive ``p`` moved by ``rotations[p]``, ``translations[p]`` ((P, 3, 3), (P, 3))."""
        out = self.take(slice(None))
        out.center = np.einsum('pij,pj->pi', rotations, self.center) + translations
        out.rotation = np.einsum('pij,pjk->pik', rotations, self.rotation)
        return out

    def bound_half(self) -> np.ndarray:
        """(P, 3) half extents of each primitive's local bounding box (a cylinder widening upwards exceeds ``half``)."""
        grow = np.where(self.kind == CYLINDER, np.maximum(self.taper, 1.0), 1.0)
        return self.half * np.stack([grow, grow, np.ones_like(grow)], axis=1)

    def corners(self) -> np.ndarray:
        """(P, 8, 3) corners of each primitive's oriented bounding box in the parent frame."""
        local = _CORNER_SIGNS[None, :, :] * self.bound_half()[:, None, :]
        return np.einsum('pij,pkj->pki', self.rotation, local) + self.center[:, None, :]

    def bounding_radius(self) -> np.ndarray:
        """(P,) radius of a sphere about ``center`` that contains each primitive."""
        return np.linalg.norm(self.bound_half(), axis=1)


def aabb_half_extents(batch: PrimitiveBatch, frame_rotation: np.ndarray | None = None) -> np.ndarray:
    """Half extents (P, 3) of each primitive's axis-aligned box in a frame.

    Exact for boxes and ellipsoids, conservative for tapered cylinders.

    Args:
        batch: The primitives.
        frame_rotation: (3, 3) rotation from the batch's parent frame to the frame
            whose axes the box aligns with; identity when None.

    Returns:
        (P, 3) half extents about the primitives' centres (expressed in that frame).
    """
    rot = batch.rotation if frame_rotation is None else np.einsum('ij,pjk->pik', frame_rotation, batch.rotation)
    scaled = rot * batch.bound_half()[:, None, :]
    box = np.abs(scaled).sum(axis=2)
    ellipsoid = np.sqrt((scaled**2).sum(axis=2))
    # A cylinder's cross-section is an ellipse (at most the larger end's), its
    # axis a segment: exact for the straight cylinder, conservative for cones.
    cylinder = np.sqrt((scaled[:, :, :2] ** 2).sum(axis=2)) + np.abs(scaled[:, :, 2])
    kind = batch.kind[:, None]
    return np.where(kind == ELLIPSOID, ellipsoid, np.where(kind == CYLINDER, cylinder, box))


def intersect(
    kind: int,
    origin: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    dz: np.ndarray,
    half: np.ndarray,
    taper: float = 1.0,
) -> np.ndarray:
    """Ray parameters of the first hit with one primitive, in its local frame.

    Args:
        kind: BOX, ELLIPSOID or CYLINDER.
        origin: (3,) ray origin in the local frame (shared by all rays).
        dx, dy, dz: Ray direction components in the local frame (same shape each);
            they need not be unit vectors, the parameter scales with them.
        half: (3,) half extents.
        taper: Cylinder top-to-bottom radius ratio.

    Returns:
        Array shaped like ``dx``: the smallest parameter ``t > 0`` of a hit, inf
        where the ray misses or starts inside the primitive.

    Raises:
        ValueError: For an unknown kind.
    """
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        if kind == BOX:
            return _intersect_box(origin, dx, dy, dz, half)
        if kind == ELLIPSOID:
            return _intersect_ellipsoid(origin, dx, dy, dz, half)
        if kind == CYLINDER:
            return _intersect_cylinder(origin, dx, dy, dz, half, taper)
    msg = f'intersect: unknown primitive kind {kind}; expected BOX (0), ELLIPSOID (1) or CYLINDER (2)'
    raise ValueError(msg)


def _intersect_box(o: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, h: np.ndarray) -> np.ndarray:
    t_near = None
    t_far = None
    for axis, d in enumerate((dx, dy, dz)):
        inv = 1.0 / d
        t1 = (-h[axis] - o[axis]) * inv
        t2 = (h[axis] - o[axis]) * inv
        lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
        t_near = lo if t_near is None else np.maximum(t_near, lo)
        t_far = hi if t_far is None else np.minimum(t_far, hi)
    hit = (t_near <= t_far) & (t_near > _T_EPS)
    return np.where(hit, t_near, np.inf)


def _intersect_ellipsoid(o: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, h: np.ndarray) -> np.ndarray:
    # Scale to a unit sphere and solve about the closest approach, which keeps
    # the precision of small, distant spheres.
    ox, oy, oz = o / h
    sx, sy, sz = dx / h[0], dy / h[1], dz / h[2]
    a = sx * sx + sy * sy + sz * sz
    tc = -(ox * sx + oy * sy + oz * sz) / a
    qx, qy, qz = ox + tc * sx, oy + tc * sy, oz + tc * sz
    disc = 1.0 - (qx * qx + qy * qy + qz * qz)
    t = tc - np.sqrt(np.maximum(disc, 0.0) / a)
    return np.where((disc >= 0) & (t > _T_EPS), t, np.inf)


def _intersect_cylinder(
    o: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, h: np.ndarray, taper: float
) -> np.ndarray:
    ox, oy, oz = o / h
    c1 = (taper - 1.0) / 2.0
    c0 = (1.0 + taper) / 2.0
    e = c0 + c1 * oz
    if abs(oz) <= 1.0 and ox * ox + oy * oy <= e * e:
        # The origin is inside: no entry hit, as for the other kinds.
        return np.full(np.shape(dx), np.inf)
    sx, sy, sz = dx / h[0], dy / h[1], dz / h[2]
    f = c1 * sz
    a = sx * sx + sy * sy - f * f
    b = 2.0 * (ox * sx + oy * sy - e * f)
    c = ox * ox + oy * oy - e * e
    disc = b * b - 4.0 * a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    best = np.full(np.shape(dx), np.inf)
    for sign in (-1.0, 1.0):
        t = (-b + sign * root) / (2.0 * a)
        z = oz + t * sz
        ok = (disc >= 0) & (t > _T_EPS) & (np.abs(z) <= 1.0)
        best = np.where(ok & (t < best), t, best)
    for cap, radius in ((-1.0, 1.0), (1.0, taper)):
        t = (cap - oz) / sz
        x, y = ox + t * sx, oy + t * sy
        ok = (t > _T_EPS) & (x * x + y * y <= radius * radius)
        best = np.where(ok & (t < best), t, best)
    return best


def local_normals(kind: np.ndarray, p: np.ndarray, half: np.ndarray, taper: np.ndarray) -> np.ndarray:
    """Unit outward normals (N, 3) at surface points, in each primitive's local frame.

    Args:
        kind: (N,) primitive kind per point.
        p: (N, 3) local surface points.
        half: (N, 3) half extents of the primitive hit by each point.
        taper: (N,) cylinder tapers.

    Returns:
        (N, 3) float64 unit normals.
    """
    # Every formula is evaluated for every point and the right one selected:
    # cheaper than gathering per-kind subsets.
    h = np.maximum(half, 1e-9)
    ratio = np.abs(p) / h
    axis = np.argmax(ratio, axis=1)
    box = np.zeros_like(ratio)
    np.put_along_axis(box, axis[:, None], np.sign(np.take_along_axis(p, axis[:, None], axis=1)), axis=1)
    ellipsoid = p / (h * h)
    zr = p[:, 2] / h[:, 2]
    c1 = (taper - 1.0) / 2.0
    s = (1.0 + taper) / 2.0 + c1 * zr
    radial = (p[:, 0] / h[:, 0]) ** 2 + (p[:, 1] / h[:, 1]) ** 2
    on_cap = (np.abs(zr) > 1.0 - 1e-6) & (radial < (s * s) * (1.0 - 1e-4))
    cylinder = np.stack(
        [
            np.where(on_cap, 0.0, p[:, 0] / h[:, 0] ** 2),
            np.where(on_cap, 0.0, p[:, 1] / h[:, 1] ** 2),
            np.where(on_cap, np.sign(zr), -s * c1 / h[:, 2]),
        ],
        axis=1,
    )
    k = kind[:, None]
    n = np.where(k == BOX, box, np.where(k == ELLIPSOID, ellipsoid, cylinder))
    norm = np.sqrt(np.einsum('ij,ij->i', n, n))[:, None]
    return n / np.where(norm > 0, norm, 1.0)
