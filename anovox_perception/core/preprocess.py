"""Sensor data -> model input tensors, shared by training, evaluation and the node.

One implementation (numpy, vectorised) so preprocessing cannot drift between the
offline and the online code. It runs in two stages:

- :func:`encode_frame` (the per-frame, expensive part): the image resized to the
  model size (uint8) and the BEV encoding of the cloud. The training sample cache
  stores exactly this (:class:`FrameEncoding`).
- :func:`assemble_inputs`: a :class:`FrameEncoding` plus the rig (camera model,
  ``T_cam_lidar``, or neither) -> the model input dict: the normalised image (zeros
  without a camera frame), ``camera_valid`` and the camera-geometry inputs.

:func:`build_inputs` (the node's :class:`~anovox_perception.core.detector.Detector`) is
the two in a row; training and evaluation assemble from the cache with the same
:func:`assemble_inputs`, so both get bit-identical inputs for a frame.

Every array :func:`assemble_inputs` returns carries a leading batch dimension of 1
and is keyed by the model's ONNX input name:

- ``image`` (1, 3, H, W) float32: RGB resized to the spec's size and normalised.
- ``bev`` (1, nz + 4, nx, ny) float32: LiDAR bird's-eye view on the detector grid:
  ``nz`` height-slice occupancies (0/1), then per column log-density, mean
  intensity, highest and lowest point height (both scaled to [0, 1] over the
  grid's z range; 0 where the column is empty). The intensity channel is 0 when
  the cloud has no intensity or the spec's ``lidar_intensity`` is ``'ignore'``.
- ``camera_valid`` (1, 1) float32: 1 when ``image`` holds a camera frame, 0 for
  LiDAR-only operation.
- ``cell_uv`` (1, L, qx, qy, 2) float32: for each BEV query cell (the grid coarsened
  by ``bev_stride``) and each of the L lift heights, the projected image position,
  normalised to [-1, 1] as ``torch.nn.functional.grid_sample`` expects
  (``align_corners=False``).
- ``cell_valid`` (1, L, qx, qy) float32: 1 where that projection lies in front of
  the camera and inside the image.
- ``cell_rays`` (1, 4 L, qx, qy) float32: per lift height, the unit direction from
  the camera centre to the cell (LiDAR-frame axes) and ``log(distance_m) / 4``.
- ``token_rays`` (1, 3, th, tw) float32: unit viewing ray (LiDAR-frame axes) through
  the centre of each image token of the backbone (image size / ``image_stride``).

The geometry inputs come from the camera model and ``T_cam_lidar`` only, so the
same weights serve other camera mounts.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from PIL import Image

from anovox_perception.core.errors import ConfigError, DecodeError, GeometryError
from anovox_perception.core.geometry import (
    ANOVOX_ORIGIN_OFFSET_M,
    ANOVOX_VOXEL_M,
    CameraModel,
    GridSpec,
    invert_transform,
    transform_points,
)

__all__ = [
    'BEV_COLUMN_FEATURES',
    'GEOMETRY_INPUT_NAMES',
    'IMAGENET_MEAN',
    'IMAGENET_STD',
    'INPUT_NAMES',
    'LIDAR_INTENSITY_MODES',
    'FrameEncoding',
    'InputSpec',
    'assemble_inputs',
    'bev_column_points',
    'build_inputs',
    'camera_geometry',
    'encode_frame',
    'input_shapes',
    'normalise_image',
    'points_to_bev',
    'prepare_image',
    'resize_image',
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Per-column channels appended after the nz height slices, in this order.
BEV_COLUMN_FEATURES = ('log_density', 'mean_intensity', 'max_height', 'min_height')
INPUT_NAMES = ('image', 'bev', 'camera_valid', 'cell_uv', 'cell_valid', 'cell_rays', 'token_rays')
# The inputs made from the camera model and T_cam_lidar alone (see camera_geometry).
GEOMETRY_INPUT_NAMES = ('cell_uv', 'cell_valid', 'cell_rays', 'token_rays')
# 'use': the BEV carries the mean LiDAR intensity; 'ignore': that channel is always 0, for
# models meant for sensors whose intensity scale does not match the training data's.
LIDAR_INTENSITY_MODES = ('use', 'ignore')
# log1p(points per column) is divided by this so typical densities stay near [0, 1].
_LOG_DENSITY_SCALE = math.log1p(64.0)


@dataclass(frozen=True)
class InputSpec:
    """Everything that fixes the model's input tensors.

    Attributes:
        grid: Detector grid (LiDAR frame).
        image_width: Model image width in pixels (multiple of ``image_stride``).
        image_height: Model image height in pixels (multiple of ``image_stride``).
        image_mean: Per-channel RGB mean subtracted after scaling to [0, 1].
        image_std: Per-channel RGB standard deviation divided by.
        image_stride: Pixels per image token of the image backbone.
        bev_stride: Grid cells per BEV query cell along x and y.
        lift_heights_m: LiDAR-frame heights (m) at which each query cell is projected
            into the image.
        intensity_max: LiDAR intensity mapped to 1 (values are clipped to [0, 1]).
        lidar_intensity: ``'use'`` or ``'ignore'`` (the intensity channel stays 0); see
            :data:`LIDAR_INTENSITY_MODES`. Left out of :meth:`to_dict` when ``'use'``, so
            specs (and model cards) written before the option existed read back unchanged.
    """

    grid: GridSpec = field(default_factory=GridSpec)
    image_width: int = 384
    image_height: int = 256
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    image_stride: int = 16
    bev_stride: int = 4
    lift_heights_m: tuple[float, ...] = (-1.5, -0.5, 0.5, 1.5)
    intensity_max: float = 1.0
    lidar_intensity: str = 'use'

    def __post_init__(self) -> None:
        for name in ('image_width', 'image_height', 'image_stride', 'bev_stride'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                msg = f'InputSpec: {name} must be a positive integer, got {value!r}'
                raise ConfigError(msg)
        for name in ('image_width', 'image_height'):
            if getattr(self, name) % self.image_stride:
                msg = f'InputSpec: {name}={getattr(self, name)} is not a multiple of image_stride={self.image_stride}'
                raise ConfigError(msg)
        nx, ny, _ = self.grid.shape
        if nx % self.bev_stride or ny % self.bev_stride:
            msg = f'InputSpec: grid {nx}x{ny} cells is not divisible by bev_stride={self.bev_stride}'
            raise ConfigError(msg)
        for name in ('image_mean', 'image_std'):
            if len(getattr(self, name)) != 3:
                msg = f'InputSpec: {name} needs 3 values (R, G, B), got {getattr(self, name)!r}'
                raise ConfigError(msg)
        if min(self.image_std) <= 0:
            msg = f'InputSpec: image_std must be positive, got {self.image_std}'
            raise ConfigError(msg)
        if not self.lift_heights_m:
            msg = 'InputSpec: lift_heights_m needs at least one height'
            raise ConfigError(msg)
        if not self.intensity_max > 0:
            msg = f'InputSpec: intensity_max must be > 0, got {self.intensity_max}'
            raise ConfigError(msg)
        if self.lidar_intensity not in LIDAR_INTENSITY_MODES:
            msg = f'InputSpec: lidar_intensity must be one of {LIDAR_INTENSITY_MODES}, got {self.lidar_intensity!r}'
            raise ConfigError(msg)

    @property
    def bev_channels(self) -> int:
        """Channels of the ``bev`` input: nz height slices plus the column features."""
        return self.grid.nz + len(BEV_COLUMN_FEATURES)

    @property
    def token_shape(self) -> tuple[int, int]:
        """(th, tw) image tokens."""
        return (self.image_height // self.image_stride, self.image_width // self.image_stride)

    @property
    def query_shape(self) -> tuple[int, int]:
        """(qx, qy) BEV query cells."""
        return (self.grid.nx // self.bev_stride, self.grid.ny // self.bev_stride)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``bev_channels`` is included for readers of the model card."""
        out: dict[str, Any] = {'grid': self.grid.to_dict()}
        for f in fields(self):
            if f.name == 'lidar_intensity' and self.lidar_intensity == 'use':
                continue  # the default before the option existed: absent means 'use'
            if f.name != 'grid':
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        out['bev_channels'] = self.bev_channels
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        """Inverse of :meth:`to_dict`; rejects unknown keys and an inconsistent ``bev_channels``.

        Raises:
            ConfigError: On unknown keys or inconsistent values.
        """
        known = {f.name for f in fields(cls)} | {'bev_channels'}
        unknown = set(data) - known
        if unknown:
            msg = f'InputSpec: unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}'
            raise ConfigError(msg)
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == 'grid':
                kwargs['grid'] = GridSpec.from_dict(value)
            elif key in ('image_mean', 'image_std', 'lift_heights_m'):
                kwargs[key] = tuple(float(v) for v in value)
            elif key == 'intensity_max':
                kwargs[key] = float(value)
            elif key != 'bev_channels':
                kwargs[key] = value
        spec = cls(**kwargs)
        if 'bev_channels' in data and int(data['bev_channels']) != spec.bev_channels:
            msg = f'InputSpec: bev_channels={data["bev_channels"]} does not match the grid ({spec.bev_channels})'
            raise ConfigError(msg)
        return spec


def input_shapes(spec: InputSpec, batch: int = 1) -> dict[str, tuple[int, ...]]:
    """Static shapes of every model input, keyed by input name."""
    nx, ny, _ = spec.grid.shape
    qx, qy = spec.query_shape
    th, tw = spec.token_shape
    n_lift = len(spec.lift_heights_m)
    return {
        'image': (batch, 3, spec.image_height, spec.image_width),
        'bev': (batch, spec.bev_channels, nx, ny),
        'camera_valid': (batch, 1),
        'cell_uv': (batch, n_lift, qx, qy, 2),
        'cell_valid': (batch, n_lift, qx, qy),
        'cell_rays': (batch, 4 * n_lift, qx, qy),
        'token_rays': (batch, 3, th, tw),
    }


def resize_image(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 RGB image (bilinear with antialiasing); returns uint8.

    Raises:
        DecodeError: When ``rgb`` is not an (H, W, 3) uint8 array.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        msg = f'image must be an (H, W, 3) uint8 RGB array, got shape {arr.shape} dtype {arr.dtype}'
        raise DecodeError(msg)
    if arr.shape[1] == width and arr.shape[0] == height:
        return np.ascontiguousarray(arr)
    return np.asarray(Image.fromarray(arr).resize((width, height), Image.Resampling.BILINEAR))


def _normalisation_table(mean: tuple[float, float, float], std: tuple[float, float, float]) -> np.ndarray:
    """(3, 256) float32: the normalised value of every uint8 level per channel.

    Built with the float32 operations ``(v * (1 / 255) - mean) / std`` applied to the
    image element-wise before, so a lookup gives bit-identical results.
    """
    key = (mean, std)
    table = _NORMALISATION_TABLES.get(key)
    if table is None:
        levels = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)
        mean32 = np.asarray(mean, dtype=np.float32)[:, None]
        std32 = np.asarray(std, dtype=np.float32)[:, None]
        table = (levels[None, :] - mean32) / std32
        table.setflags(write=False)
        _NORMALISATION_TABLES[key] = table
    return table


_NORMALISATION_TABLES: dict[tuple[tuple[float, ...], tuple[float, ...]], np.ndarray] = {}


def normalise_image(rgb_resized: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(H, W, 3) uint8 at the model size -> (3, H, W) float32 normalised.

    A 256-entry table per channel replaces the float arithmetic per pixel, and each
    channel is written straight into the planar output (no (H, W, 3) float temporary).
    """
    arr = np.asarray(rgb_resized)
    if arr.dtype != np.uint8:
        x = arr.astype(np.float32) * np.float32(1.0 / 255.0)
        x = (x - np.asarray(spec.image_mean, dtype=np.float32)) / np.asarray(spec.image_std, dtype=np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))
    table = _normalisation_table(spec.image_mean, spec.image_std)
    out = np.empty((3, arr.shape[0], arr.shape[1]), dtype=np.float32)
    for channel in range(3):
        np.take(table[channel], arr[:, :, channel], out=out[channel])
    return out


def prepare_image(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(H, W, 3) uint8 RGB at any size -> (3, image_height, image_width) float32 normalised."""
    return normalise_image(resize_image(rgb, spec.image_width, spec.image_height), spec)


# Below this magnitude, 2 * p + offset may round in float64 (offsets < 2**10); see _anovox_floor_float32.
_TINY_DOUBLED_M = np.float32(2.0**-20)


def _anovox_floor_float32(values: np.ndarray, doubled_offset: float) -> np.ndarray:
    """``floor(float64(v) + doubled_offset / 2) / 0.5) - doubled_offset`` for float32 ``v``, in float32.

    The AnoVox rule (:meth:`GridSpec.cell_index`) works in float64. For float32 input it
    equals ``floor(2 v)`` computed in float32 (exact: doubling and flooring a float32 never
    round) except where float64 rounds ``2 v + offset`` up to ``offset`` itself, which only
    happens for tiny negative ``v``: those few points are redone in float64.
    """
    doubled = values * np.float32(2.0)
    index = np.floor(doubled)
    tiny = np.flatnonzero((doubled < 0) & (doubled > -_TINY_DOUBLED_M))
    if tiny.size:
        exact = np.floor(doubled[tiny].astype(np.float64) + doubled_offset) - doubled_offset
        index[tiny] = exact.astype(np.float32)
    return index


def _cell_coordinates(pts: np.ndarray, grid: GridSpec) -> tuple[list[np.ndarray], np.ndarray]:
    """Floored cell coordinates along x, y and z (one (N,) float array per axis), and the index offsets.

    Cell index = coordinate + offset, exactly as :meth:`GridSpec.cell_index` computes it, but
    column by column (numpy reduces the 3-wide rows of an (N, 3) array slowly), and in float32
    for float32 points on an AnoVox-aligned grid (half the memory traffic of float64).
    """
    if grid.aligned_with_anovox:
        doubled_offsets = ANOVOX_ORIGIN_OFFSET_M / ANOVOX_VOXEL_M
        offsets = doubled_offsets - np.asarray(grid.anovox_offset, dtype=np.float64)
        if pts.dtype == np.float32:
            return [_anovox_floor_float32(pts[:, axis], doubled_offsets[axis]) for axis in range(3)], offsets
        coordinates = []
        for axis in range(3):
            column = pts[:, axis].astype(np.float64)
            column += ANOVOX_ORIGIN_OFFSET_M[axis]
            column /= ANOVOX_VOXEL_M
            np.floor(column, out=column)
            column -= doubled_offsets[axis]
            coordinates.append(column)
        return coordinates, offsets
    coordinates = []
    for axis in range(3):
        column = pts[:, axis].astype(np.float64)
        column -= grid.mins[axis]
        column /= grid.cell_m
        np.floor(column, out=column)
        coordinates.append(column)
    return coordinates, np.zeros(3)


def _mean_intensity(intensity: np.ndarray, column: np.ndarray, count: np.ndarray, intensity_max: float) -> np.ndarray:
    """(n_cols,) mean of ``clip(nan_to_num(intensity) / intensity_max, 0, 1)`` per column, 0 where empty.

    Float64 like the rule it implements; the NaN/inf scan and the division are skipped
    when they cannot change a value (all finite; ``intensity_max`` 1), and with
    ``intensity_max`` 1 the clip runs before the widening, which commutes with it.
    """
    if intensity_max == 1.0:
        values = intensity if np.isfinite(intensity).all() else np.nan_to_num(intensity)
        values = np.clip(values, 0.0, 1.0).astype(np.float64, copy=False)
    else:
        values = np.nan_to_num(intensity.astype(np.float64), copy=False)
        with np.errstate(over='ignore'):  # a huge intensity becomes inf here and 1 after the clip
            values /= intensity_max
        np.clip(values, 0.0, 1.0, out=values)
    total = np.bincount(column, weights=values, minlength=count.size)
    return np.where(count > 0, total / np.maximum(count, 1.0), 0.0)


def points_to_bev(points: np.ndarray, spec: InputSpec) -> np.ndarray:
    """LiDAR points -> (nz + 4, nx, ny) float32 bird's-eye-view tensor (see module docstring).

    Args:
        points: (N, 3) or (N, >=4) LiDAR-frame points (x, y, z[, intensity]); points
            outside the grid or with non-finite coordinates are dropped.
        spec: Input specification.

    Returns:
        The BEV tensor.

    Raises:
        DecodeError: When ``points`` is not a 2-D array with at least 3 columns.
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        msg = f'points must be an (N, >=3) array, got shape {pts.shape}'
        raise DecodeError(msg)
    grid = spec.grid
    shape = grid.shape
    nx, ny, nz = shape
    bev = np.zeros((spec.bev_channels, nx, ny), dtype=np.float32)
    if pts.shape[0] == 0:
        return bev
    coordinates, offsets = _cell_coordinates(pts, grid)
    # index = coordinate + offset in [0, n). NaN compares False and +-inf falls outside,
    # so the bounds test also drops non-finite points.
    inside = None
    for coordinate, offset, n in zip(coordinates, offsets, shape, strict=True):
        low = coordinate.dtype.type(-offset)
        axis_inside = (coordinate >= low) & (coordinate < low + n)
        inside = axis_inside if inside is None else np.logical_and(inside, axis_inside, out=inside)
    if not inside.any():
        return bev
    n_cols = nx * ny
    # Flat column and voxel indices of every point, then one boolean-mask gather of each:
    # cheaper than gathering the three coordinates. Points outside cast to garbage here
    # (NaN, inf, huge values) and are never gathered.
    with np.errstate(invalid='ignore'):
        ix, iy, iz = (coordinate.astype(np.intp) for coordinate in coordinates)
    column_all = ix
    column_all += int(offsets[0])
    column_all *= ny
    column_all += iy
    column_all += int(offsets[1])
    voxel_all = iz
    voxel_all += int(offsets[2])
    voxel_all *= n_cols
    voxel_all += column_all
    column = column_all[inside]
    # Height slices: scatter ones at iz * n_cols + column (duplicates just write 1 again).
    bev.reshape(-1)[voxel_all[inside]] = 1.0
    count = np.bincount(column, minlength=n_cols).astype(np.float64)
    occupied = count > 0
    bev[nz] = (np.log1p(count) / _LOG_DENSITY_SCALE).reshape(nx, ny)
    if pts.shape[1] >= 4 and spec.lidar_intensity == 'use':
        bev[nz + 1] = _mean_intensity(pts[:, 3][inside], column, count, spec.intensity_max).reshape(nx, ny)
    height = pts[:, 2][inside].astype(np.float64)
    height -= grid.z_min_m
    height /= grid.z_max_m - grid.z_min_m
    z_max = np.full(n_cols, -np.inf)
    np.maximum.at(z_max, column, height)
    z_min = np.full(n_cols, np.inf)
    np.minimum.at(z_min, column, height)
    bev[nz + 2] = np.where(occupied, z_max, 0.0).reshape(nx, ny)
    bev[nz + 3] = np.where(occupied, z_min, 0.0).reshape(nx, ny)
    return bev


def bev_column_points(log_density: np.ndarray) -> np.ndarray:
    """LiDAR points per column from values of the BEV's ``log_density`` channel (channel ``nz``).

    The inverse of :func:`points_to_bev`'s encoding, exact: its float32 values give back every
    count up to a million points per column.

    Args:
        log_density: Values of that channel, any shape.

    Returns:
        int64 point counts, same shape.
    """
    return np.rint(np.expm1(np.asarray(log_density, dtype=np.float64) * _LOG_DENSITY_SCALE)).astype(np.int64)


def _check_extrinsics(t_cam_lidar: np.ndarray) -> np.ndarray:
    t = np.asarray(t_cam_lidar, dtype=np.float64)
    if t.shape != (4, 4) or not np.all(np.isfinite(t)):
        msg = f'T_cam_lidar must be a finite 4x4 matrix, got shape {t.shape}'
        raise GeometryError(msg)
    r = t[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0:
        msg = 'T_cam_lidar rotation is not a proper rotation matrix (orthonormal, det +1)'
        raise GeometryError(msg)
    return t


def _query_cell_centres(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """(qx, qy) x and y centres (m) of the BEV query cells."""
    grid = spec.grid
    qx, qy = spec.query_shape
    size_m = grid.cell_m * spec.bev_stride
    xs = grid.x_min_m + (np.arange(qx) + 0.5) * size_m
    ys = grid.y_min_m + (np.arange(qy) + 0.5) * size_m
    return np.meshgrid(xs, ys, indexing='ij')


def _compute_camera_geometry(spec: InputSpec, camera: CameraModel, t_cam_lidar: np.ndarray) -> dict[str, np.ndarray]:
    cam = camera.scaled(spec.image_width, spec.image_height)
    qx, qy = spec.query_shape
    heights = np.asarray(spec.lift_heights_m, dtype=np.float64)
    n_lift = len(heights)
    gx, gy = _query_cell_centres(spec)
    # (L, qx, qy, 3) LiDAR-frame cell centres at each lift height.
    cells = np.empty((n_lift, qx, qy, 3))
    cells[..., 0] = gx
    cells[..., 1] = gy
    cells[..., 2] = heights[:, None, None]
    flat = cells.reshape(-1, 3)
    uv, visible = cam.project(transform_points(t_cam_lidar, flat))
    # Normalised coordinates for grid_sample(align_corners=False): -1 and +1 are the outer pixel edges.
    norm = np.stack([uv[:, 0] / cam.width * 2.0 - 1.0, uv[:, 1] / cam.height * 2.0 - 1.0], axis=1)
    norm = np.where(visible[:, None], norm, -2.0)  # outside the image: samples zeros, and masked anyway
    cam_centre = invert_transform(t_cam_lidar)[:3, 3]
    offset = flat - cam_centre
    dist = np.maximum(np.linalg.norm(offset, axis=1), 1e-3)
    rays = np.concatenate([offset / dist[:, None], (np.log(dist) / 4.0)[:, None]], axis=1)  # (L*qx*qy, 4)
    rays = rays.reshape(n_lift, qx, qy, 4).transpose(0, 3, 1, 2).reshape(4 * n_lift, qx, qy)
    th, tw = spec.token_shape
    stride = spec.image_stride
    us = (np.arange(tw) + 0.5) * stride
    vs = (np.arange(th) + 0.5) * stride
    uu, vv = np.meshgrid(us, vs, indexing='xy')
    optical = cam.rays(np.stack([uu.ravel(), vv.ravel()], axis=1))
    lidar_rays = optical @ invert_transform(t_cam_lidar)[:3, :3].T  # rotate only: directions
    return {
        'cell_uv': norm.reshape(1, n_lift, qx, qy, 2).astype(np.float32),
        'cell_valid': visible.reshape(1, n_lift, qx, qy).astype(np.float32),
        'cell_rays': rays[None].astype(np.float32),
        'token_rays': lidar_rays.T.reshape(1, 3, th, tw).astype(np.float32),
    }


_GEOMETRY_CACHE: OrderedDict[tuple[Any, ...], dict[str, np.ndarray]] = OrderedDict()
_GEOMETRY_CACHE_SIZE = 8


def camera_geometry(spec: InputSpec, camera: CameraModel, t_cam_lidar: np.ndarray) -> dict[str, np.ndarray]:
    """Geometry inputs (``cell_uv``, ``cell_valid``, ``cell_rays``, ``token_rays``), batch dim 1.

    Results are cached per (spec, camera, extrinsics): they change only when the
    rig does, and the node calls this for every frame. Callers must not modify
    the returned arrays.

    Raises:
        GeometryError: When ``T_cam_lidar`` is not a finite rigid transform.
    """
    t = _check_extrinsics(t_cam_lidar)
    key = (spec, camera, t.tobytes())
    cached = _GEOMETRY_CACHE.get(key)
    if cached is None:
        cached = _compute_camera_geometry(spec, camera, t)
        for value in cached.values():
            value.setflags(write=False)
        _GEOMETRY_CACHE[key] = cached
        if len(_GEOMETRY_CACHE) > _GEOMETRY_CACHE_SIZE:
            _GEOMETRY_CACHE.popitem(last=False)
    else:
        _GEOMETRY_CACHE.move_to_end(key)
    return cached


@dataclass(frozen=True)
class FrameEncoding:
    """The per-frame part of the model inputs, before the rig is applied (what the sample cache stores).

    Attributes:
        image: (image_height, image_width, 3) uint8 RGB at the model size, or None without
            a camera frame. Normalised by :func:`assemble_inputs` (a table lookup), so a
            cached image stays uint8.
        bev: (bev_channels, nx, ny) float32 from :func:`points_to_bev`, built with the
            spec's ``lidar_intensity`` mode.
    """

    image: np.ndarray | None
    bev: np.ndarray


def encode_frame(spec: InputSpec, rgb: np.ndarray | None, points: np.ndarray) -> FrameEncoding:
    """The expensive, per-frame stage: BEV encoding of the cloud and the image resized to the model size.

    Args:
        spec: Input specification.
        rgb: (H, W, 3) uint8 RGB at any size, or None without a camera frame.
        points: (N, >=3) LiDAR-frame points, optional intensity in column 3.

    Raises:
        DecodeError: On a malformed image or point array.
    """
    bev = points_to_bev(points, spec)
    image = None if rgb is None else resize_image(rgb, spec.image_width, spec.image_height)
    return FrameEncoding(image=image, bev=bev)


def _check_encoding(spec: InputSpec, encoding: FrameEncoding) -> None:
    """Raise :class:`DecodeError` unless ``encoding`` is what :func:`encode_frame` makes for ``spec``."""
    shapes = input_shapes(spec)
    bev = encoding.bev
    if bev.shape != shapes['bev'][1:] or bev.dtype != np.float32:
        msg = (
            f'assemble_inputs: bev is {bev.shape} {bev.dtype}, the input spec needs {shapes["bev"][1:]} float32; '
            'encode the frame with this spec (encode_frame)'
        )
        raise DecodeError(msg)
    image = encoding.image
    if image is not None and (image.shape != (spec.image_height, spec.image_width, 3) or image.dtype != np.uint8):
        msg = (
            f'assemble_inputs: image is {image.shape} {image.dtype}, the input spec needs '
            f'({spec.image_height}, {spec.image_width}, 3) uint8; encode the frame with this spec (encode_frame)'
        )
        raise DecodeError(msg)
    if spec.lidar_intensity == 'ignore':
        channel = spec.grid.nz + BEV_COLUMN_FEATURES.index('mean_intensity')
        if bev[channel].any():
            msg = (
                "assemble_inputs: bev carries LiDAR intensity but the input spec's lidar_intensity is 'ignore'; "
                'encode the frame with this spec (encode_frame)'
            )
            raise DecodeError(msg)


def assemble_inputs(
    spec: InputSpec,
    encoding: FrameEncoding,
    camera: CameraModel | None,
    t_cam_lidar: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """All model inputs for one frame from its encoding and the rig, keyed by input name, batch dim 1.

    ``camera_valid`` is 1 exactly when the encoding holds an image. The geometry inputs
    come from ``camera`` and ``t_cam_lidar`` whenever both are given, also for a frame
    without an image (``camera_valid`` 0 masks it), and are zeros otherwise.

    Args:
        spec: Input specification (from the model card or checkpoint).
        encoding: The frame's :func:`encode_frame` output (or the sample cache's copy of it).
        camera: Camera intrinsics for the full-size image (they are scaled to the model
            size); may be None only when the encoding has no image.
        t_cam_lidar: 4x4 transform from the LiDAR frame to the camera optical frame; may be
            None only when the encoding has no image.

    Returns:
        Dict of float32 arrays keyed by :data:`INPUT_NAMES`.

    Raises:
        DecodeError: When the encoding does not match ``spec`` (other sizes, or intensity
            in the BEV of a spec that ignores it).
        GeometryError: On an image without its camera model and ``T_cam_lidar``, or a
            malformed ``T_cam_lidar``.
    """
    _check_encoding(spec, encoding)
    if encoding.image is not None and (camera is None or t_cam_lidar is None):
        msg = 'assemble_inputs: an image needs its camera model and T_cam_lidar'
        raise GeometryError(msg)
    shapes = input_shapes(spec)
    out: dict[str, np.ndarray] = {'bev': encoding.bev[None]}
    if encoding.image is not None:
        out['image'] = normalise_image(encoding.image, spec)[None]
        out['camera_valid'] = np.ones(shapes['camera_valid'], dtype=np.float32)
    else:
        out['image'] = np.zeros(shapes['image'], dtype=np.float32)
        out['camera_valid'] = np.zeros(shapes['camera_valid'], dtype=np.float32)
    if camera is not None and t_cam_lidar is not None:
        # Copies: the cached arrays are read-only and callers may hand them to torch.
        out.update({name: value.copy() for name, value in camera_geometry(spec, camera, t_cam_lidar).items()})
    else:
        for name in GEOMETRY_INPUT_NAMES:
            out[name] = np.zeros(shapes[name], dtype=np.float32)
    return {name: out[name] for name in INPUT_NAMES}


def build_inputs(
    spec: InputSpec,
    rgb: np.ndarray | None,
    points: np.ndarray,
    camera: CameraModel | None,
    t_cam_lidar: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """All model inputs for one frame, keyed by input name, each with batch dim 1.

    :func:`encode_frame` then :func:`assemble_inputs`, after checking that an image
    comes with its camera model and matches its size.

    Args:
        spec: Input specification (from the model card or checkpoint).
        rgb: (H, W, 3) uint8 RGB image matching ``camera``'s size, or None when no
            camera frame is available (the model then runs LiDAR-only).
        points: (N, >=3) LiDAR-frame points, optional intensity in column 3.
        camera: Camera intrinsics for the full-size image; may be None only when
            ``rgb`` is None.
        t_cam_lidar: 4x4 transform from the LiDAR frame to the camera optical frame;
            may be None only when ``rgb`` is None.

    Returns:
        Dict of float32 arrays keyed by :data:`INPUT_NAMES`.

    Raises:
        DecodeError: On a malformed image or point array, or an image whose size does
            not match the camera model.
        GeometryError: On a malformed ``T_cam_lidar``.
    """
    if rgb is not None and (camera is None or t_cam_lidar is None):
        msg = 'build_inputs: an image needs its camera model and T_cam_lidar'
        raise GeometryError(msg)
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.ndim == 3 and (rgb.shape[1], rgb.shape[0]) != (camera.width, camera.height):
            msg = (
                f'build_inputs: image is {rgb.shape[1]}x{rgb.shape[0]} but the camera model is '
                f'{camera.width}x{camera.height}; pass the matching CameraModel (or CameraModel.scaled)'
            )
            raise DecodeError(msg)
    return assemble_inputs(spec, encode_frame(spec, rgb, points), camera, t_cam_lidar)
