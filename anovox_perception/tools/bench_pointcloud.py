"""Benchmark inputs and references for the LiDAR path: a 64-beam sweep, upstream's decode, a per-point voxeliser.

- :func:`lidar_sweep`: an organised 64-beam spinning-LiDAR cloud (ground, walls, a
  few objects, no-returns as NaN), packed like a driver packs it (x, y, z,
  intensity float32, ring uint16, time float32).
- :func:`read_points_numpy`: what ``sensor_msgs_py.point_cloud2.read_points_numpy``
  does (structured dtype from the fields, ``np.frombuffer``, per-field extraction,
  NaN skipping), re-implemented because ``sensor_msgs_py`` is not on PyPI.
- :func:`bev_per_point`: a straightforward voxeliser that visits the points one by
  one in Python, with the rule :func:`~anovox_perception.core.preprocess.points_to_bev`
  documents. It is the benchmark's reference and the tests' oracle for the
  vectorised path (equal bit for bit).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib import recfunctions

from anovox_perception.core.geometry import ANOVOX_ORIGIN_OFFSET_M, ANOVOX_VOXEL_M
from anovox_perception.core.preprocess import InputSpec

__all__ = ['bev_per_point', 'lidar_sweep', 'read_points_numpy']

# sensor_msgs/PointField datatypes, as sensor_msgs_py.point_cloud2 maps them (native byte order).
_DATATYPES = {
    1: np.dtype(np.int8),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int16),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int32),
    6: np.dtype(np.uint32),
    7: np.dtype(np.float32),
    8: np.dtype(np.float64),
}


def lidar_sweep(
    n_beams: int = 64, n_azimuth: int = 1875, height_m: float = 1.8, seed: int = 0
) -> dict[str, np.ndarray]:
    """One revolution of a spinning LiDAR, organised (n_beams x n_azimuth), as named 1-D field arrays.

    Beams span -25..+15 deg (the synthetic rig's). Downward beams hit the ground or a
    wall ring 15-60 m away (varying with azimuth); upward beams hit the wall or return
    nothing (x, y, z NaN, as organised drivers mark it). Ranges carry 2 cm noise.

    Returns:
        ``x``, ``y``, ``z``, ``intensity`` (float32), ``ring`` (uint16), ``time`` (float32, s), each
        of length ``n_beams * n_azimuth``, beam-major.
    """
    rng = np.random.default_rng(seed)
    elevation = np.deg2rad(np.linspace(-25.0, 15.0, n_beams))[:, None]
    azimuth = np.linspace(-np.pi, np.pi, n_azimuth, endpoint=False)[None, :]
    wall_m = 15.0 + 45.0 * (0.5 + 0.5 * np.sin(3.0 * azimuth) * np.cos(0.7 * azimuth))
    wall_height_m = 4.0 + 8.0 * (0.5 + 0.5 * np.cos(5.0 * azimuth))
    horizontal = np.cos(elevation)
    with np.errstate(divide='ignore'):
        ground_m = np.where(elevation < 0, height_m / np.maximum(-np.sin(elevation), 1e-9), np.inf)
    wall_range_m = wall_m / horizontal
    wall_z = height_m + wall_range_m * np.sin(elevation)
    range_m = np.minimum(ground_m, np.where(wall_z <= wall_height_m, wall_range_m, np.inf))
    range_m = np.where(range_m <= 100.0, range_m + rng.normal(0.0, 0.02, range_m.shape), np.nan)
    x = range_m * horizontal * np.cos(azimuth)
    y = range_m * horizontal * np.sin(azimuth)
    z = range_m * np.sin(elevation)
    intensity = np.where(np.isfinite(range_m), rng.uniform(0.0, 1.0, range_m.shape), 0.0)
    ring = np.broadcast_to(np.arange(n_beams, dtype=np.uint16)[:, None], range_m.shape)
    time_s = np.broadcast_to((np.arange(n_azimuth) / n_azimuth * 0.1)[None, :], range_m.shape)
    return {
        'x': x.astype(np.float32).ravel(),
        'y': y.astype(np.float32).ravel(),
        'z': z.astype(np.float32).ravel(),
        'intensity': intensity.astype(np.float32).ravel(),
        'ring': np.ascontiguousarray(ring).ravel(),
        'time': time_s.astype(np.float32).ravel(),
    }


def _dtype_from_fields(fields: Sequence[Any], point_step: int) -> np.dtype:
    """``sensor_msgs_py.point_cloud2.dtype_from_fields``: one named member per field (count > 1 expands)."""
    names, offsets, formats = [], [], []
    for i, field in enumerate(fields):
        datatype = _DATATYPES[int(field.datatype)]
        name = field.name or f'unnamed_field_{i}'
        if int(field.count) == 1:
            names.append(name)
            offsets.append(int(field.offset))
            formats.append(datatype)
        else:
            for a in range(int(field.count)):
                names.append(f'{name}_{a}')
                offsets.append(int(field.offset) + a * datatype.itemsize)
                formats.append(datatype)
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': point_step})


def read_points_numpy(cloud: Any, field_names: Sequence[str], skip_nans: bool = True) -> np.ndarray:
    """``sensor_msgs_py.point_cloud2.read_points_numpy(cloud, field_names, skip_nans)``: (N, F) array.

    Upstream's steps: a structured view of ``cloud.data`` (``np.ndarray`` over the
    buffer), the requested fields selected, a byte swap when the cloud's endianness
    differs from the machine's, NaN rows dropped, ``structured_to_unstructured``.
    """
    points = np.ndarray(
        shape=(cloud.width * cloud.height,),
        dtype=_dtype_from_fields(cloud.fields, cloud.point_step),
        buffer=np.frombuffer(cloud.data, dtype=np.uint8),
    )
    points = points[list(field_names)]
    if (sys.byteorder != 'little') != bool(cloud.is_bigendian):
        points = points.byteswap()
    if skip_nans:
        not_nan = np.ones(len(points), dtype=bool)
        for name in points.dtype.names:
            not_nan = np.logical_and(not_nan, ~np.isnan(points[name]))
        points = points[not_nan]
    return recfunctions.structured_to_unstructured(points)


def bev_per_point(points: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The BEV tensor of :func:`~anovox_perception.core.preprocess.points_to_bev`, one Python loop step per point.

    Per cell it keeps the occupied height slices, the point count, the sum of clipped
    intensities and the highest and lowest height, in float64, visiting the points in
    order (the sums therefore round exactly as ``np.bincount``'s do).
    """
    grid = spec.grid
    nx, ny, nz = grid.shape
    n_cols = nx * ny
    aligned = grid.aligned_with_anovox
    offsets = grid.anovox_offset if aligned else (0, 0, 0)
    mins = grid.mins.tolist()
    z_min_m, z_span_m = grid.z_min_m, grid.z_max_m - grid.z_min_m
    use_intensity = points.shape[1] >= 4 and spec.lidar_intensity == 'use'
    slices = np.zeros((nz, n_cols), dtype=np.float32)
    count = [0] * n_cols
    intensity_sum = [0.0] * n_cols
    high = [-math.inf] * n_cols
    low = [math.inf] * n_cols
    shift = ANOVOX_ORIGIN_OFFSET_M.tolist()
    for row in np.asarray(points).tolist():
        index = []
        for axis in range(3):
            value = row[axis]
            if math.isnan(value) or math.isinf(value):
                break
            if aligned:
                cell = math.floor((value + shift[axis]) / ANOVOX_VOXEL_M) - offsets[axis]
            else:
                cell = math.floor((value - mins[axis]) / grid.cell_m)
            index.append(cell)
        if len(index) < 3 or not (0 <= index[0] < nx and 0 <= index[1] < ny and 0 <= index[2] < nz):
            continue
        column = index[0] * ny + index[1]
        slices[index[2], column] = 1.0
        count[column] += 1
        if use_intensity:
            value = row[3]
            value = 0.0 if math.isnan(value) else max(min(value, sys.float_info.max), -sys.float_info.max)
            intensity_sum[column] += min(max(value / spec.intensity_max, 0.0), 1.0)
        height = (row[2] - z_min_m) / z_span_m
        high[column] = max(high[column], height)
        low[column] = min(low[column], height)
    counts = np.asarray(count, dtype=np.float64)
    occupied = counts > 0
    bev = np.zeros((spec.bev_channels, nx, ny), dtype=np.float32)
    bev[:nz] = slices.reshape(nz, nx, ny)
    bev[nz] = (np.log1p(counts) / math.log1p(64.0)).reshape(nx, ny)
    if use_intensity:
        bev[nz + 1] = np.where(occupied, np.asarray(intensity_sum) / np.maximum(counts, 1.0), 0.0).reshape(nx, ny)
    bev[nz + 2] = np.where(occupied, np.asarray(high), 0.0).reshape(nx, ny)
    bev[nz + 3] = np.where(occupied, np.asarray(low), 0.0).reshape(nx, ny)
    return bev
