"""Non-learned geometric baseline: height above a fitted ground plane, in ground-level columns.

It reads only the LiDAR BEV tensor (the same input the models get), so it runs
from the sample cache:

1. Occupancy: every cell holding a LiDAR point, dilated by one cell along each
   axis (sensor noise and the voxelisation rule move points across cell borders).
2. Ground: a plane ``z = a x + b y + c`` fitted by iterated least squares to the
   lowest point of every column, keeping the columns within
   ``ground_tolerance_m`` of the current fit.
3. Score of a cell: its height above the plane, ramped linearly from 0 at
   ``min_height_m`` to 1 at ``full_score_height_m``, only in columns that reach
   down to the ground (something standing on the surface) and whose top stays
   below ``max_column_height_m`` (buildings, trees and poles are taller than road
   debris).

This is the "something sticks out of the road" rule a hand-written detector
would use. It cannot tell a car from a fallen tree; the learned model can.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anovox_perception.core.preprocess import InputSpec

__all__ = ['GeometricBaseline', 'dilate']


def dilate(mask: np.ndarray) -> np.ndarray:
    """Binary dilation of a boolean mask by one cell along each axis (4- / 6-neighbourhood)."""
    out = mask.copy()
    for axis in range(mask.ndim):
        for shift in (1, -1):
            rolled = np.roll(mask, shift, axis=axis)
            # np.roll wraps around; clear the wrapped slab.
            edge = [slice(None)] * mask.ndim
            edge[axis] = slice(0, 1) if shift == 1 else slice(-1, None)
            rolled[tuple(edge)] = False
            out |= rolled
    return out


@dataclass(frozen=True)
class GeometricBaseline:
    """The baseline's parameters (metres) and its scoring function.

    Attributes:
        ground_tolerance_m: Column-bottom distance to the plane that counts as ground.
        min_height_m: Height above the plane where the score starts rising.
        full_score_height_m: Height above the plane with score 1.
        max_column_height_m: Columns whose top is higher above the plane score 0.
        fit_iterations: Least-squares refits.
    """

    ground_tolerance_m: float = 0.25
    min_height_m: float = 0.2
    full_score_height_m: float = 1.0
    max_column_height_m: float = 3.0
    fit_iterations: int = 4

    def fit_ground(self, bev: np.ndarray, spec: InputSpec) -> np.ndarray:
        """Plane coefficients (a, b, c) of ``z = a x + b y + c`` in the LiDAR frame.

        Falls back to the flat plane through the lowest column heights' median
        when fewer than three columns are observed.
        """
        grid = spec.grid
        nz = grid.nz
        occupied = bev[nz] > 0
        z_span = grid.z_max_m - grid.z_min_m
        z_low = grid.z_min_m + bev[nz + 3] * z_span
        ix, iy = np.nonzero(occupied)
        if len(ix) < 3:
            return np.array([0.0, 0.0, float(np.median(z_low[occupied])) if len(ix) else grid.z_min_m])
        xs = grid.x_min_m + (ix + 0.5) * grid.cell_m
        ys = grid.y_min_m + (iy + 0.5) * grid.cell_m
        zs = z_low[ix, iy]
        design = np.stack([xs, ys, np.ones_like(xs)], axis=1)
        # Start from the lowest third of the columns: mostly ground.
        keep = zs <= np.quantile(zs, 0.33)
        coef = np.array([0.0, 0.0, float(np.median(zs[keep]))])
        for _ in range(self.fit_iterations):
            if keep.sum() < 3:
                break
            coef, *_ = np.linalg.lstsq(design[keep], zs[keep], rcond=None)
            keep = np.abs(design @ coef - zs) < self.ground_tolerance_m
        return coef

    def __call__(self, bev: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
        """Occupancy (0/1) and anomaly score grids, each (nx, ny, nz) float32, from one (C, nx, ny) BEV."""
        grid = spec.grid
        nx, ny, nz = grid.shape
        slices = bev[:nz] > 0  # (nz, nx, ny)
        occupancy = dilate(np.moveaxis(slices, 0, -1))
        coef = self.fit_ground(bev, spec)
        xs = grid.x_min_m + (np.arange(nx) + 0.5) * grid.cell_m
        ys = grid.y_min_m + (np.arange(ny) + 0.5) * grid.cell_m
        zs = grid.z_min_m + (np.arange(nz) + 0.5) * grid.cell_m
        ground = coef[0] * xs[:, None] + coef[1] * ys[None, :] + coef[2]  # (nx, ny)
        height = zs[None, None, :] - ground[:, :, None]
        z_span = grid.z_max_m - grid.z_min_m
        col_low = grid.z_min_m + bev[nz + 3] * z_span - ground
        col_top = grid.z_min_m + bev[nz + 2] * z_span - ground
        observed = bev[nz] > 0
        # Far objects show no ground in their own column; accept columns next to ground (two cells).
        near_ground = dilate(dilate(observed & (col_low < self.ground_tolerance_m)))
        standing = observed & near_ground & (col_top < self.max_column_height_m)
        ramp = (height - self.min_height_m) / (self.full_score_height_m - self.min_height_m)
        score = np.clip(ramp, 0.0, 1.0) * standing[:, :, None]
        return occupancy.astype(np.float32), score.astype(np.float32)
