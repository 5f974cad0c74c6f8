"""Voxel ground truth by AnoVox's rule.

Points in the LiDAR frame are binned into AnoVox voxels (0.5 m, 1000 x 1000 x 64,
sensor at voxel (500, 500, 32); ``geometry.anovox_voxel_index``). Each occupied
voxel takes the label of the point nearest its centre, except that a voxel
holding any road-line point (24) is labelled road line, so thin markings
survive next to the road they are painted on.
"""

from __future__ import annotations

import numpy as np

from anovox_perception.core.errors import DataError
from anovox_perception.core.geometry import ANOVOX_GRID_SHAPE, ANOVOX_ORIGIN_OFFSET_M, ANOVOX_VOXEL_M
from anovox_training.data.labels import ROAD_LINE_LABEL

__all__ = ['voxelize_labels']

_MAX_DIST2 = 3 * (ANOVOX_VOXEL_M / 2) ** 2


def voxelize_labels(points_xyz: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Label voxels from labelled points.

    Args:
        points_xyz: (N, >=3) points in the LiDAR frame, m (extra columns ignored).
        labels: (N,) label ids (integers, or floats holding whole numbers, in 0..65535).

    Returns:
        (M, 4) uint16 rows ``[ix, iy, iz, label]``, one per occupied voxel inside
        the AnoVox grid, sorted by (ix, iy, iz). Points outside the grid or not
        finite are dropped.

    Raises:
        DataError: When shapes disagree or labels are out of range.
    """
    pts = np.asarray(points_xyz)
    lab = np.asarray(labels)
    if pts.ndim != 2 or pts.shape[1] < 3:
        msg = f'voxelize_labels: points must be (N, >=3), got shape {pts.shape}'
        raise DataError(msg)
    if lab.shape != (len(pts),):
        msg = f'voxelize_labels: labels must be ({len(pts)},) to match the points, got shape {lab.shape}'
        raise DataError(msg)
    lab = np.rint(lab).astype(np.int64) if lab.dtype.kind == 'f' else lab.astype(np.int64)
    if len(lab) and (lab.min() < 0 or lab.max() > np.iinfo(np.uint16).max):
        msg = f'voxelize_labels: labels must lie in 0..65535, got {lab.min()}..{lab.max()}'
        raise DataError(msg)
    # Planar arithmetic (long inner loops); per element it is exactly
    # geometry.anovox_voxel_index: floor((p + offset) / voxel).
    planes = pts[:, :3].T.astype(np.float64)
    keep = np.all(np.isfinite(planes), axis=0)
    idx_planes = []
    for axis in range(3):
        i = np.floor((planes[axis] + ANOVOX_ORIGIN_OFFSET_M[axis]) / ANOVOX_VOXEL_M)
        with np.errstate(invalid='ignore'):
            keep &= (i >= 0) & (i < ANOVOX_GRID_SHAPE[axis])
        idx_planes.append(i)
    sel = np.flatnonzero(keep)
    if not len(sel):
        return np.zeros((0, 4), np.uint16)
    ix, iy, iz = (i.take(sel).astype(np.int64) for i in idx_planes)
    lab = lab.take(sel)
    dist2 = np.zeros(len(sel))
    for axis, i in enumerate((ix, iy, iz)):
        centre = (i + 0.5) * ANOVOX_VOXEL_M - ANOVOX_ORIGIN_OFFSET_M[axis]
        dist2 += (planes[axis].take(sel) - centre) ** 2
    _, ny, nz = ANOVOX_GRID_SHAPE
    key = (ix * ny + iy) * nz + iz
    # One int64 sort key: voxel first, then the squared distance to its centre
    # (at most 3 * 0.25^2 m^2) in 2^20 steps; a stable sort keeps input order on ties
    # (distances within 2e-7 m^2 of each other count as ties).
    steps = (1 << 20) - 1
    q = np.minimum(np.floor(dist2 * (steps / _MAX_DIST2)), steps).astype(np.int64)
    order = np.argsort((key << 20) | q, kind='stable')
    key_sorted = key[order]
    first = np.empty(len(order), bool)
    first[0] = True
    first[1:] = key_sorted[1:] != key_sorted[:-1]
    group = np.cumsum(first) - 1
    winner = order[first]
    out_label = lab.take(winner)
    has_line = np.zeros(len(winner), bool)
    has_line[group[lab[order] == ROAD_LINE_LABEL]] = True
    out_label[has_line] = ROAD_LINE_LABEL
    return np.stack([ix.take(winner), iy.take(winner), iz.take(winner), out_label], axis=1).astype(np.uint16)
