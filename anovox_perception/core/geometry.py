"""Grids, camera model and transforms: the one source of truth for coordinates.

Frames (REP-103 unless stated):
- LiDAR / body frame: x forward, y left, z up, metres.
- Camera optical frame: z forward, x right, y down.
- CARLA / Unreal mount frame (AnoVox's sensor_setup.json): a dataset convention,
  converted by ``anovox_training.data.carla_mount``; the runtime never sees it.

AnoVox voxel grid: 0.5 m voxels, 1000 x 1000 x 64, sensor at voxel
(500, 500, 32): ``index = floor((p + [250, 250, 16]) / 0.5)`` with ``p`` in the
LiDAR frame. The detector grid is a window of that lattice, so every detector
cell is exactly one AnoVox voxel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from anovox_perception.core.errors import GeometryError

__all__ = [
    'ANOVOX_GRID_SHAPE',
    'ANOVOX_ORIGIN_OFFSET_M',
    'ANOVOX_VOXEL_M',
    'CameraModel',
    'GridSpec',
    'OPTICAL_FROM_BODY',
    'anovox_voxel_index',
    'anovox_voxel_center',
    'invert_transform',
    'make_transform',
    'rotation_from_rpy',
    'transform_points',
]

ANOVOX_VOXEL_M = 0.5
ANOVOX_GRID_SHAPE = (1000, 1000, 64)
# Added to a LiDAR-frame point before dividing by the voxel size.
ANOVOX_ORIGIN_OFFSET_M = np.array([250.0, 250.0, 16.0])

# Rotation taking body-frame vectors (x fwd, y left, z up) to the optical frame
# (x right, y down, z fwd).
OPTICAL_FROM_BODY = np.array(
    [
        [0.0, -1.0, 0.0],
        [0.0, 0.0, -1.0],
        [1.0, 0.0, 0.0],
    ]
)


def anovox_voxel_index(points_m: np.ndarray) -> np.ndarray:
    """AnoVox voxel indices (N, 3) int64 of LiDAR-frame points (N, >=3)."""
    pts = np.asarray(points_m, dtype=np.float64)[:, :3]
    return np.floor((pts + ANOVOX_ORIGIN_OFFSET_M) / ANOVOX_VOXEL_M).astype(np.int64)


def anovox_voxel_center(index: np.ndarray) -> np.ndarray:
    """LiDAR-frame centres (N, 3) float64 of AnoVox voxel indices (N, >=3)."""
    idx = np.asarray(index)[:, :3].astype(np.float64)
    return (idx + 0.5) * ANOVOX_VOXEL_M - ANOVOX_ORIGIN_OFFSET_M


@dataclass(frozen=True)
class GridSpec:
    """An axis-aligned voxel grid in the LiDAR frame, aligned on the AnoVox lattice.

    Bounds are half-open: ``x_min_m <= x < x_max_m``. Cell indices are (ix, iy, iz)
    along (x, y, z); arrays on this grid have shape ``(nx, ny, nz)``.
    """

    x_min_m: float = -16.0
    x_max_m: float = 64.0
    y_min_m: float = -40.0
    y_max_m: float = 40.0
    z_min_m: float = -3.0
    z_max_m: float = 5.0
    cell_m: float = 0.5

    def __post_init__(self) -> None:
        if not self.cell_m > 0:
            msg = f'GridSpec: cell_m must be > 0, got {self.cell_m}'
            raise GeometryError(msg)
        for axis in 'xyz':
            lo, hi = getattr(self, f'{axis}_min_m'), getattr(self, f'{axis}_max_m')
            if not hi > lo:
                msg = f'GridSpec: {axis}_max_m ({hi}) must exceed {axis}_min_m ({lo})'
                raise GeometryError(msg)
            n = (hi - lo) / self.cell_m
            if abs(n - round(n)) > 1e-6:
                msg = f'GridSpec: {axis} extent {hi - lo} m is not a whole number of {self.cell_m} m cells'
                raise GeometryError(msg)
        if self.aligned_with_anovox:
            exact = (self.mins + ANOVOX_ORIGIN_OFFSET_M) / ANOVOX_VOXEL_M
            for axis, value in zip('xyz', exact, strict=True):
                lo = getattr(self, f'{axis}_min_m')
                if abs(value - round(value)) > 1e-6:
                    msg = f'GridSpec: {axis}_min_m={lo} is not on the AnoVox 0.5 m lattice; use a multiple of 0.5 m'
                    raise GeometryError(msg)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(nx, ny, nz) cell counts."""
        return (
            round((self.x_max_m - self.x_min_m) / self.cell_m),
            round((self.y_max_m - self.y_min_m) / self.cell_m),
            round((self.z_max_m - self.z_min_m) / self.cell_m),
        )

    @property
    def nx(self) -> int:
        return self.shape[0]

    @property
    def ny(self) -> int:
        return self.shape[1]

    @property
    def nz(self) -> int:
        return self.shape[2]

    @property
    def mins(self) -> np.ndarray:
        return np.array([self.x_min_m, self.y_min_m, self.z_min_m])

    @property
    def maxs(self) -> np.ndarray:
        return np.array([self.x_max_m, self.y_max_m, self.z_max_m])

    @property
    def aligned_with_anovox(self) -> bool:
        """True when each cell is exactly one AnoVox voxel."""
        return abs(self.cell_m - ANOVOX_VOXEL_M) < 1e-9

    @property
    def anovox_offset(self) -> tuple[int, int, int]:
        """AnoVox index of detector cell (0, 0, 0)."""
        off = (self.mins + ANOVOX_ORIGIN_OFFSET_M) / ANOVOX_VOXEL_M
        return (round(off[0]), round(off[1]), round(off[2]))

    def cell_index(self, points_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell indices of LiDAR-frame points.

        Args:
            points_m: (N, >=3) array; only the first three columns are used.

        Returns:
            ``(index, inside)``: (N, 3) int64 indices and an (N,) bool mask of the
            points that fall inside the grid (non-finite points are outside).
        """
        pts = np.asarray(points_m, dtype=np.float64)[:, :3]
        with np.errstate(invalid='ignore'):
            if self.aligned_with_anovox:
                # Same arithmetic as the AnoVox rule, so a point never lands in a
                # different voxel through rounding at a cell boundary.
                idx_f = np.floor((pts + ANOVOX_ORIGIN_OFFSET_M) / ANOVOX_VOXEL_M) - np.array(self.anovox_offset)
            else:
                idx_f = np.floor((pts - self.mins) / self.cell_m)
        inside = np.all(np.isfinite(idx_f), axis=1)
        inside &= np.all(idx_f >= 0, axis=1) & np.all(idx_f < np.array(self.shape), axis=1)
        idx = np.zeros(idx_f.shape, dtype=np.int64)
        idx[inside] = idx_f[inside].astype(np.int64)
        return idx, inside

    def cell_center(self, index: np.ndarray) -> np.ndarray:
        """LiDAR-frame centres (N, 3) of cell indices (N, 3)."""
        idx = np.asarray(index)[:, :3].astype(np.float64)
        return self.mins + (idx + 0.5) * self.cell_m

    def flat_index(self, index: np.ndarray) -> np.ndarray:
        """Row-major flat index into an (nx, ny, nz) array."""
        idx = np.asarray(index, dtype=np.int64)
        nx, ny, nz = self.shape
        return (idx[:, 0] * ny + idx[:, 1]) * nz + idx[:, 2]

    def to_anovox(self, index: np.ndarray) -> np.ndarray:
        """AnoVox voxel indices of detector cell indices (requires aligned grids)."""
        self._require_aligned()
        return np.asarray(index, dtype=np.int64)[:, :3] + np.array(self.anovox_offset)

    def from_anovox(self, anovox_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Detector cell indices of AnoVox voxel indices, and which lie inside the grid."""
        self._require_aligned()
        idx = np.asarray(anovox_index, dtype=np.int64)[:, :3] - np.array(self.anovox_offset)
        inside = np.all(idx >= 0, axis=1) & np.all(idx < np.array(self.shape), axis=1)
        return idx, inside

    def _require_aligned(self) -> None:
        if not self.aligned_with_anovox:
            msg = (
                f'GridSpec with cell_m={self.cell_m} is not aligned with AnoVox voxels '
                f'({ANOVOX_VOXEL_M} m); use cell_m={ANOVOX_VOXEL_M} for evaluation'
            )
            raise GeometryError(msg)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GridSpec:
        """Build from a mapping, rejecting unknown keys (typos must not pass silently)."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            msg = f'GridSpec: unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}'
            raise GeometryError(msg)
        return cls(**{k: float(v) for k, v in data.items()})


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera without distortion, in the optical frame (pixels, metres)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            msg = f'CameraModel: image size must be positive, got {self.width}x{self.height}'
            raise GeometryError(msg)
        if not (self.fx > 0 and self.fy > 0):
            msg = f'CameraModel: focal lengths must be positive, got fx={self.fx}, fy={self.fy}'
            raise GeometryError(msg)
        if not all(math.isfinite(v) for v in (self.fx, self.fy, self.cx, self.cy)):
            msg = 'CameraModel: intrinsics must be finite'
            raise GeometryError(msg)

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float) -> CameraModel:
        """CARLA-style camera: horizontal FOV, square pixels, centred principal point."""
        if not 0.0 < fov_deg < 180.0:
            msg = f'CameraModel: fov_deg must be in (0, 180), got {fov_deg}'
            raise GeometryError(msg)
        f = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
        return cls(width, height, f, f, width / 2.0, height / 2.0)

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> CameraModel:
        """From a 3x3 intrinsic matrix (as in sensor_msgs/CameraInfo.k)."""
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        return cls(int(width), int(height), float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]))

    @property
    def matrix(self) -> np.ndarray:
        """3x3 intrinsic matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for an image resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        return CameraModel(width, height, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy)

    def project(self, points_cam: np.ndarray, min_depth_m: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """Project optical-frame points (N, 3) to pixels.

        Returns:
            ``(uv, visible)``: (N, 2) float64 pixel coordinates (u right, v down;
            pixel centres at integer + 0.5) and an (N,) mask of points in front of
            the camera (depth >= ``min_depth_m``) and inside the image.
        """
        p = np.asarray(points_cam, dtype=np.float64)[:, :3]
        z = p[:, 2]
        in_front = z >= min_depth_m
        safe_z = np.where(in_front, z, 1.0)
        uv = np.stack([self.fx * p[:, 0] / safe_z + self.cx, self.fy * p[:, 1] / safe_z + self.cy], axis=1)
        visible = in_front & (uv[:, 0] >= 0) & (uv[:, 0] < self.width) & (uv[:, 1] >= 0) & (uv[:, 1] < self.height)
        return uv, visible

    def unproject(self, uv: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
        """Optical-frame points (N, 3) at the given pixel coordinates and depths (z)."""
        uv = np.asarray(uv, dtype=np.float64)
        d = np.asarray(depth_m, dtype=np.float64)
        x = (uv[:, 0] - self.cx) / self.fx * d
        y = (uv[:, 1] - self.cy) / self.fy * d
        return np.stack([x, y, d], axis=1)

    def rays(self, uv: np.ndarray) -> np.ndarray:
        """Unit ray directions (N, 3) in the optical frame through pixel coordinates."""
        dirs = self.unproject(uv, np.ones(len(uv)))
        return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CameraModel:
        known = set(cls.__dataclass_fields__)
        missing, unknown = known - set(data), set(data) - known
        if missing or unknown:
            msg = f'CameraModel: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}'
            raise GeometryError(msg)
        return cls(
            int(data['width']),
            int(data['height']),
            float(data['fx']),
            float(data['fy']),
            float(data['cx']),
            float(data['cy']),
        )


def rotation_from_rpy(roll_rad: float, pitch_rad: float, yaw_rad: float) -> np.ndarray:
    """Rotation matrix R = Rz(yaw) Ry(pitch) Rx(roll) (REP-103 fixed-axis RPY)."""
    cr, sr = math.cos(roll_rad), math.sin(roll_rad)
    cp, sp = math.cos(pitch_rad), math.sin(pitch_rad)
    cy, sy = math.cos(yaw_rad), math.sin(yaw_rad)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def make_transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a 3-vector."""
    t = np.eye(4)
    t[:3, :3] = np.asarray(rotation, dtype=np.float64)
    t[:3, 3] = np.asarray(translation, dtype=np.float64)
    return t


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    t = np.asarray(transform, dtype=np.float64)
    r, p = t[:3, :3], t[:3, 3]
    return make_transform(r.T, -r.T @ p)


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to points (N, >=3); extra columns are dropped."""
    t = np.asarray(transform, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)[:, :3]
    return p @ t[:3, :3].T + t[:3, 3]


def camera_from_lidar(body_from_camera: np.ndarray, body_from_lidar: np.ndarray) -> np.ndarray:
    """T_cam_lidar: maps LiDAR-frame points into the camera's optical frame."""
    optical = make_transform(OPTICAL_FROM_BODY, np.zeros(3))
    return optical @ invert_transform(body_from_camera) @ np.asarray(body_from_lidar, dtype=np.float64)


__all__ += ['camera_from_lidar']
