"""Geometric baseline: ground fit, height scores, column rules, dilation."""

from __future__ import annotations

import numpy as np

from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.preprocess import InputSpec, points_to_bev
from anovox_training.evaluate.baseline import GeometricBaseline, dilate

GRID = GridSpec(x_min_m=-4.0, x_max_m=12.0, y_min_m=-8.0, y_max_m=8.0, z_min_m=-3.0, z_max_m=5.0)
SPEC = InputSpec(grid=GRID, image_width=96, image_height=64, image_stride=8, bev_stride=4, lift_heights_m=(0.0,))


def _scene(tilt: float = 0.0) -> np.ndarray:
    """Ground at z = -1.8 + tilt * x, a 1.2 m box at x = 6 m, a 6 m tall wall at y = -7 m."""
    xs, ys = np.meshgrid(np.arange(-3.9, 12, 0.25), np.arange(-7.9, 8, 0.25), indexing='ij')
    ground = np.stack([xs.ravel(), ys.ravel(), -1.8 + tilt * xs.ravel()], axis=1)
    bx, by, bz = np.meshgrid(np.arange(5.6, 6.4, 0.1), np.arange(-0.4, 0.4, 0.1), np.arange(0.0, 1.2, 0.1))
    box = np.stack([bx.ravel(), by.ravel(), -1.8 + tilt * bx.ravel() + bz.ravel()], axis=1)
    wx, wz = np.meshgrid(np.arange(-3.9, 12, 0.25), np.arange(0.0, 6.0, 0.2))
    wall = np.stack([wx.ravel(), np.full(wx.size, -7.1), -1.8 + tilt * wx.ravel() + wz.ravel()], axis=1)
    return np.concatenate([ground, box, wall])


def _cell(x: float, y: float, z: float) -> tuple[int, int, int]:
    idx, _ = GRID.cell_index(np.array([[x, y, z]]))
    return tuple(idx[0])


def test_ground_fit_recovers_a_tilted_plane_despite_objects():
    bev = points_to_bev(_scene(tilt=0.02), SPEC)
    a, b, c = GeometricBaseline().fit_ground(bev, SPEC)
    assert abs(a - 0.02) < 0.01 and abs(b) < 0.01 and abs(c + 1.8) < 0.2


def test_objects_standing_on_the_ground_score_high_and_ground_and_tall_walls_score_zero():
    occupancy, score = GeometricBaseline()(points_to_bev(_scene(), SPEC), SPEC)
    assert occupancy.shape == score.shape == GRID.shape
    top_of_box = _cell(6.0, 0.0, -0.7)
    assert occupancy[top_of_box] == 1 and score[top_of_box] > 0.9
    assert score[_cell(2.0, 3.0, -1.8)] == 0  # road surface
    assert score[_cell(4.0, -7.1, 0.5)] == 0  # the wall column is taller than road debris
    assert occupancy[_cell(2.0, 3.0, -1.3)] == 1  # one-cell dilation above the ground


def test_dilation_grows_a_single_cell_into_its_six_neighbours_without_wrapping():
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[0, 1, 1] = True
    grown = dilate(mask)
    assert grown.sum() == 6 and not grown[3, 1, 1]  # five neighbours inside the array plus itself
