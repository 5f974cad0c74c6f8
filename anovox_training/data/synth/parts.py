"""A small builder that assembles an object from primitives in its own frame.

Object frames follow the LiDAR convention: x forward (the object's heading),
y left, z up, origin on the ground at the centre of the footprint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from anovox_perception.core.geometry import rotation_from_rpy
from anovox_training.data.synth.primitives import BOX, CYLINDER, ELLIPSOID, PrimitiveBatch

__all__ = ['Parts', 'yaw_rotation']

_AXIS_ROT = {
    'z': np.eye(3),
    # Local z of the cylinder along the parent's x / y.
    'x': rotation_from_rpy(0.0, math.pi / 2, 0.0),
    'y': rotation_from_rpy(math.pi / 2, 0.0, 0.0),
}


def yaw_rotation(yaw_rad: float) -> np.ndarray:
    """Rotation about z by ``yaw_rad``."""
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class Parts:
    """Collects primitives; ``build()`` returns them as one PrimitiveBatch.

    Args:
        label: Default semantic label of added parts.
        material: Default material id.
        color: Default albedo (3,).
    """

    def __init__(self, label: int, material: int, color: Sequence[float] | np.ndarray) -> None:
        self.label = int(label)
        self.material = int(material)
        self.color = np.asarray(color, np.float32)
        self._rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, int, int]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def _add(
        self,
        kind: int,
        center: Sequence[float],
        half: Sequence[float],
        rotation: np.ndarray,
        taper: float,
        color: Sequence[float] | np.ndarray | None,
        material: int | None,
        label: int | None,
    ) -> Parts:
        half_arr = np.maximum(np.asarray(half, np.float64), 1e-3)
        self._rows.append(
            (
                kind,
                np.asarray(center, np.float64),
                half_arr,
                np.asarray(rotation, np.float64),
                float(taper),
                self.color if color is None else np.asarray(color, np.float32),
                self.material if material is None else int(material),
                self.label if label is None else int(label),
            )
        )
        return self

    def box(
        self,
        center: Sequence[float],
        size: Sequence[float],
        rpy: Sequence[float] = (0.0, 0.0, 0.0),
        color: Sequence[float] | np.ndarray | None = None,
        material: int | None = None,
        label: int | None = None,
    ) -> Parts:
        """A box of full ``size`` (l, w, h) centred at ``center``, rotated by roll/pitch/yaw (rad)."""
        return self._add(BOX, center, np.asarray(size) / 2, rotation_from_rpy(*rpy), 1.0, color, material, label)

    def ellipsoid(
        self,
        center: Sequence[float],
        radii: Sequence[float],
        rpy: Sequence[float] = (0.0, 0.0, 0.0),
        color: Sequence[float] | np.ndarray | None = None,
        material: int | None = None,
        label: int | None = None,
    ) -> Parts:
        """An ellipsoid with semi-axes ``radii``."""
        return self._add(ELLIPSOID, center, radii, rotation_from_rpy(*rpy), 1.0, color, material, label)

    def cylinder(
        self,
        center: Sequence[float],
        radius: float | Sequence[float],
        length: float,
        axis: str = 'z',
        taper: float = 1.0,
        rpy: Sequence[float] = (0.0, 0.0, 0.0),
        color: Sequence[float] | np.ndarray | None = None,
        material: int | None = None,
        label: int | None = None,
    ) -> Parts:
        """A (tapered) cylinder of full ``length`` along ``axis`` ('x', 'y', 'z' of the part frame after ``rpy``).

        ``radius`` is one radius or (rx, ry) of an elliptic section; ``taper`` scales
        the radius at the +axis end (0 = cone).
        """
        r = (radius, radius) if np.isscalar(radius) else tuple(radius)
        rotation = rotation_from_rpy(*rpy) @ _AXIS_ROT[axis]
        return self._add(CYLINDER, center, (r[0], r[1], length / 2), rotation, taper, color, material, label)

    def segment(
        self,
        start: Sequence[float],
        end: Sequence[float],
        radius: float,
        taper: float = 1.0,
        color: Sequence[float] | np.ndarray | None = None,
        material: int | None = None,
        label: int | None = None,
    ) -> Parts:
        """A cylinder from ``start`` to ``end`` (legs, branches, arms)."""
        a, b = np.asarray(start, np.float64), np.asarray(end, np.float64)
        axis = b - a
        length = float(np.linalg.norm(axis))
        z = axis / max(length, 1e-9)
        helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        x = np.cross(helper, z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        rotation = np.stack([x, y, z], axis=1)
        return self._add(CYLINDER, (a + b) / 2, (radius, radius, length / 2), rotation, taper, color, material, label)

    def build(self, instance: int = 0) -> PrimitiveBatch:
        """The collected primitives, all with ``instance``."""
        if not self._rows:
            return PrimitiveBatch.empty()
        kind, center, half, rot, taper, color, material, label = zip(*self._rows, strict=True)
        return PrimitiveBatch(
            kind=np.array(kind, np.int8),
            center=np.stack(center),
            rotation=np.stack(rot),
            half=np.stack(half),
            taper=np.array(taper, np.float64),
            color=np.stack(color).astype(np.float32),
            material=np.array(material, np.uint8),
            label=np.array(label, np.uint8),
            instance=np.full(len(kind), instance, np.int32),
        )
