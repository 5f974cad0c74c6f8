"""The ego's sensors: a pinhole camera and a spinning multi-beam LiDAR, as ray grids, and their mounts.

Each sensor sits on its own `Mount` on the ego (AnoVox's MONO rig puts both at
(0, 0, 1.8) m with no rotation; a varied rig moves and tilts them, see
variation.py). Each sensor knows its ray directions (fixed in the sensor frame)
and, for culling, which rectangle of its ray grid a primitive can cover: the
camera projects the primitive's bounding box (clipped at the near plane), the
LiDAR bounds its azimuth and elevation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anovox_perception.core.geometry import OPTICAL_FROM_BODY, CameraModel
from anovox_training.data.carla_mount import carla_mount_to_body
from anovox_training.data.layout import anovox_rotation_to_pyr
from anovox_training.data.synth.lidar_returns import LidarResponse
from anovox_training.data.synth.primitives import PrimitiveBatch

__all__ = ['CameraRig', 'LidarRig', 'Mount']


@dataclass(frozen=True)
class Mount:
    """Where a sensor sits on the ego, in the numbers AnoVox writes to sensor_setup.json.

    Attributes:
        location: (x forward, y right, z up) m from the ego's ground reference point (CARLA axes).
        rotation: Rotation about (x, y, z) in degrees, i.e. (roll, pitch, yaw) with CARLA's signs
            (positive pitch looks up, positive yaw turns right).
    """

    location: tuple[float, float, float] = (0.0, 0.0, 1.8)
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def ego_from_sensor(self) -> np.ndarray:
        """4x4 REP-103 ego-from-sensor transform (the one the reader derives from sensor_setup.json)."""
        return carla_mount_to_body(self.location, anovox_rotation_to_pyr(self.rotation))


# Corner pairs of a box's 12 edges (corner index bits: x, y, z signs).
_EDGES = np.array([(i, i | b) for b in (1, 2, 4) for i in range(8) if not i & b])


@dataclass(frozen=True)
class CameraRig:
    """A pinhole camera looking along the body x axis.

    Attributes:
        camera: Intrinsics (CameraModel.from_fov for a CARLA camera).
        far_m: Primitives farther than this are not rendered (haze hides them).
        depth_far_m: Depth written for sky pixels (CARLA's far plane).
        exposure: Gain of the sensor on top of the scene's exposure.
        noise_stddev: Sensor noise (1 sigma) in linear [0, 1] units.
        shadows: Whether objects cast sun shadows in the image (off in AnoVox's MONO rig as this generator
            first rendered it; on in every varied rig).
    """

    camera: CameraModel
    far_m: float = 400.0
    depth_far_m: float = 1000.0
    exposure: float = 1.0
    noise_stddev: float = 0.012
    shadows: bool = False

    def body_dirs(self) -> np.ndarray:
        """(3, H, W) ray directions in the body frame; the optical z component is 1, so ``t`` is depth."""
        cam = self.camera
        u = (np.arange(cam.width) + 0.5 - cam.cx) / cam.fx
        v = (np.arange(cam.height) + 0.5 - cam.cy) / cam.fy
        uu, vv = np.meshgrid(u, v)
        optical = np.stack([uu, vv, np.ones_like(uu)])
        return np.einsum('ji,jhw->ihw', OPTICAL_FROM_BODY, optical)

    def rects(self, prims: PrimitiveBatch, origin: np.ndarray, world_from_body: np.ndarray) -> np.ndarray:
        """(K, 5) rows ``[primitive, row0, row1, col0, col1]`` of the pixels each primitive may cover."""
        if not len(prims):
            return np.zeros((0, 5), np.int64)
        cam = self.camera
        near = 0.05
        rot = OPTICAL_FROM_BODY @ world_from_body.T
        corners = (prims.corners() - origin) @ rot.T
        centre_dist = np.linalg.norm(prims.center - origin, axis=1)
        a, b = corners[:, _EDGES[:, 0]], corners[:, _EDGES[:, 1]]
        za, zb = a[..., 2], b[..., 2]
        crosses = (za - near) * (zb - near) < 0
        with np.errstate(divide='ignore', invalid='ignore'):
            frac = np.where(crosses, (near - za) / (zb - za), 0.0)
        clipped = a + frac[..., None] * (b - a)
        points = np.concatenate([corners, clipped], axis=1)
        valid = np.concatenate([corners[..., 2] >= near, crosses], axis=1)
        z = np.where(valid, points[..., 2], 1.0)
        u = cam.fx * points[..., 0] / z + cam.cx
        v = cam.fy * points[..., 1] / z + cam.cy
        u_lo = np.where(valid, u, np.inf).min(axis=1)
        u_hi = np.where(valid, u, -np.inf).max(axis=1)
        v_lo = np.where(valid, v, np.inf).min(axis=1)
        v_hi = np.where(valid, v, -np.inf).max(axis=1)
        keep = valid.any(axis=1) & (centre_dist - prims.bounding_radius() < self.far_m)
        # Pixel c's ray passes through u = c + 0.5; one pixel of margin.
        c0 = np.clip(np.ceil(u_lo - 1.5), 0, cam.width)
        c1 = np.clip(np.floor(u_hi + 0.5) + 1, 0, cam.width)
        r0 = np.clip(np.ceil(v_lo - 1.5), 0, cam.height)
        r1 = np.clip(np.floor(v_hi + 0.5) + 1, 0, cam.height)
        with np.errstate(invalid='ignore'):
            keep &= (c1 > c0) & (r1 > r0)
        idx = np.flatnonzero(keep)
        return np.stack([idx, r0[idx], r1[idx], c0[idx], c1[idx]], axis=1).astype(np.int64)


@dataclass(frozen=True)
class LidarRig:
    """A spinning multi-beam LiDAR (CARLA ray_cast semantics: at most one return per beam and azimuth step).

    Attributes:
        channels: Number of beams.
        azimuth_steps: Rays per beam over 360 deg.
        upper_fov_deg, lower_fov_deg: Elevation of the top and bottom beams.
        range_m: Maximum range.
        noise_stddev_m: Range noise (1 sigma) of the non-semantic LiDAR; 0.1 m as in AnoVox's CARLA setup.
        beam_elevations_deg: Elevation of every beam, top first, for uneven layouts (HDL-64E: two blocks
            with different spacing); empty: ``channels`` beams spread evenly over the field of view.
        response: Which rays return and what intensity they carry (lidar_returns.py).
        azimuth_fov_deg: Horizontal field of view the delivered cloud covers, centred on the x axis (CARLA's
            ``horizontal_fov``); below 360 for pipelines that deliver only the camera's view, like KITTI's
            reduced clouds, so a detector sees clouds that end at the edge of the image.

    Raises:
        ValueError: When ``beam_elevations_deg`` disagrees with ``channels`` or the field of view, or
            ``azimuth_fov_deg`` is not in (0, 360].
    """

    channels: int = 64
    azimuth_steps: int = 1024
    upper_fov_deg: float = 15.0
    lower_fov_deg: float = -25.0
    range_m: float = 100.0
    noise_stddev_m: float = 0.1
    beam_elevations_deg: tuple[float, ...] = ()
    response: LidarResponse = LidarResponse()
    azimuth_fov_deg: float = 360.0

    def __post_init__(self) -> None:
        if not 0.0 < self.azimuth_fov_deg <= 360.0:
            msg = f'LidarRig: azimuth_fov_deg must be in (0, 360], got {self.azimuth_fov_deg}'
            raise ValueError(msg)
        el = self.beam_elevations_deg
        if el and (
            len(el) != self.channels
            or el[0] != self.upper_fov_deg
            or el[-1] != self.lower_fov_deg
            or any(a <= b for a, b in zip(el, el[1:], strict=False))
        ):
            msg = (
                f'LidarRig: beam_elevations_deg must hold {self.channels} strictly decreasing elevations from '
                f'upper_fov_deg {self.upper_fov_deg} to lower_fov_deg {self.lower_fov_deg}; got {len(el)} '
                f'from {el[0]} to {el[-1]} (use LidarRig.from_elevations)'
            )
            raise ValueError(msg)

    @classmethod
    def from_elevations(cls, elevations_deg: tuple[float, ...], **kwargs: object) -> LidarRig:
        """A LiDAR with the given beam elevations (top first); other fields from ``kwargs``."""
        el = tuple(float(e) for e in elevations_deg)
        return cls(channels=len(el), upper_fov_deg=el[0], lower_fov_deg=el[-1], beam_elevations_deg=el, **kwargs)

    @property
    def elevations_rad(self) -> np.ndarray:
        """(channels,) beam elevations, top beam first."""
        if self.beam_elevations_deg:
            return np.radians(np.asarray(self.beam_elevations_deg, np.float64))
        return np.radians(np.linspace(self.upper_fov_deg, self.lower_fov_deg, self.channels))

    @property
    def azimuths_rad(self) -> np.ndarray:
        """(azimuth_steps,) ray azimuths, counter-clockwise from the x axis."""
        return np.arange(self.azimuth_steps) * (2 * math.pi / self.azimuth_steps)

    def in_view(self, dirs: np.ndarray) -> np.ndarray:
        """(N,) bool: which of the (N, 3) LiDAR-frame directions lie inside ``azimuth_fov_deg``."""
        if self.azimuth_fov_deg >= 360.0:
            return np.ones(len(dirs), bool)
        azimuth = np.degrees(np.abs(np.arctan2(dirs[:, 1], dirs[:, 0])))
        return azimuth <= self.azimuth_fov_deg / 2

    def body_dirs(self) -> np.ndarray:
        """(3, channels, azimuth_steps) unit ray directions in the LiDAR frame."""
        el, az = np.meshgrid(self.elevations_rad, self.azimuths_rad, indexing='ij')
        return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])

    def rects(self, prims: PrimitiveBatch, origin: np.ndarray, world_from_body: np.ndarray) -> np.ndarray:
        """(K, 5) rows ``[primitive, row0, row1, col0, col1]`` of the rays each primitive may cover."""
        if not len(prims):
            return np.zeros((0, 5), np.int64)
        rot = world_from_body.T
        corners = (prims.corners() - origin) @ rot.T
        centre = (prims.center - origin) @ rot.T
        radius = prims.bounding_radius()
        dist_h = np.hypot(centre[:, 0], centre[:, 1])
        radius_h = np.hypot(*(corners[..., :2] - centre[:, None, :2]).transpose(2, 0, 1)).max(axis=1)
        keep = np.linalg.norm(centre, axis=1) - radius < self.range_m
        # Azimuth: extremes of a convex footprint not containing the sensor are at its corners.
        az_c = np.arctan2(centre[:, 1], centre[:, 0])
        rel = np.angle(np.exp(1j * (np.arctan2(corners[..., 1], corners[..., 0]) - az_c[:, None])))
        full_az = dist_h <= radius_h + 0.05
        step = 2 * math.pi / self.azimuth_steps
        lo = np.floor((az_c + rel.min(axis=1)) / step) - 1
        hi = np.ceil((az_c + rel.max(axis=1)) / step) + 2
        lo = np.where(full_az, 0, lo)
        hi = np.where(full_az | (hi - lo >= self.azimuth_steps), lo + self.azimuth_steps, hi)
        # Elevation: conservative bounds from the height range and horizontal distance range.
        z_lo, z_hi = corners[..., 2].min(axis=1), corners[..., 2].max(axis=1)
        h_min = np.maximum(dist_h - radius_h, 0.0)
        h_max = dist_h + radius_h
        el_hi = np.arctan2(z_hi, np.where(z_hi > 0, h_min, h_max))
        el_lo = np.arctan2(z_lo, np.where(z_lo > 0, h_max, h_min))
        elev_desc = self.elevations_rad
        # Half the widest gap between beams is a safe margin for any layout.
        beam_step = float(np.max(-np.diff(elev_desc))) if self.channels > 1 else 0.0
        # Rows are ordered by decreasing elevation.
        r0 = np.searchsorted(-elev_desc, -(el_hi + beam_step * 0.5), side='left')
        r1 = np.searchsorted(-elev_desc, -(el_lo - beam_step * 0.5), side='right')
        keep &= r1 > r0
        idx = np.flatnonzero(keep)
        lo, hi, r0, r1 = lo[idx].astype(np.int64), hi[idx].astype(np.int64), r0[idx], r1[idx]
        # Wrap azimuth ranges into [0, steps): a range crossing the seam becomes two rectangles.
        n = self.azimuth_steps
        shift = np.floor_divide(lo, n) * n
        lo, hi = lo - shift, hi - shift
        first_hi = np.minimum(hi, n)
        rows = [np.stack([idx, r0, r1, lo, first_hi], axis=1)]
        wrap = hi > n
        if wrap.any():
            rows.append(np.stack([idx[wrap], r0[wrap], r1[wrap], np.zeros(wrap.sum(), np.int64), hi[wrap] - n], axis=1))
        return np.concatenate(rows).astype(np.int64)
