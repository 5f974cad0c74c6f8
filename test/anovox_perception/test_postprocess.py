"""Tests for anovox_perception.core.postprocess: score grids, voxel scores, components."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from anovox_perception.core.errors import BackendError, ConfigError, GeometryError
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.postprocess import (
    component_candidates,
    component_points,
    find_components,
    label_components,
    score_grid,
    voxel_scores,
)
from anovox_perception.core.preprocess import InputSpec, bev_column_points, points_to_bev

# 8 x 6 x 4 cells of 0.5 m: x in [-2, 2), y in [-1, 2), z in [-1, 1).
GRID = GridSpec(x_min_m=-2.0, x_max_m=2.0, y_min_m=-1.0, y_max_m=2.0, z_min_m=-1.0, z_max_m=1.0, cell_m=0.5)


def empty_volumes(grid: GridSpec = GRID) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(grid.shape, np.float32), np.zeros(grid.shape, np.float32)


def test_score_grid_puts_a_voxel_at_known_xy_in_the_right_row_and_column() -> None:
    occ, anom = empty_volumes()
    # The point (1.2, 0.7, 0.1) m lies in cell ix = (1.2 + 2) // 0.5 = 6, iy = (0.7 + 1) // 0.5 = 3.
    index, inside = GRID.cell_index(np.array([[1.2, 0.7, 0.1]]))
    ix, iy, iz = index[0]
    assert inside[0] and (ix, iy) == (6, 3)
    occ[ix, iy, iz] = 0.9
    anom[ix, iy, iz] = 0.734
    grid = score_grid(occ, anom, GRID, occupancy_threshold=0.5)
    assert grid.shape == (GRID.ny, GRID.nx) and grid.dtype == np.int8 and grid.flags.c_contiguous
    assert grid[3, 6] == 73
    # OccupancyGrid convention: cell (row, col) spans x_min + col * res, y_min + row * res.
    assert GRID.x_min_m + 6 * GRID.cell_m <= 1.2 < GRID.x_min_m + 7 * GRID.cell_m
    assert GRID.y_min_m + 3 * GRID.cell_m <= 0.7 < GRID.y_min_m + 4 * GRID.cell_m
    expected = np.full((GRID.ny, GRID.nx), -1, np.int8)
    expected[3, 6] = 73
    np.testing.assert_array_equal(grid, expected)


def test_score_grid_takes_the_max_over_occupied_voxels_only() -> None:
    occ, anom = empty_volumes()
    occ[2, 1, 0], anom[2, 1, 0] = 0.6, 0.2
    occ[2, 1, 1], anom[2, 1, 1] = 0.5, 0.41  # exactly at the threshold counts as occupied
    occ[2, 1, 3], anom[2, 1, 3] = 0.49, 1.0  # free: its high score must not show
    occ[5, 5, 2], anom[5, 5, 2] = 1.0, 0.0
    grid = score_grid(occ, anom, GRID, occupancy_threshold=0.5)
    assert grid[1, 2] == 41
    assert grid[5, 5] == 0
    assert (grid == -1).sum() == GRID.nx * GRID.ny - 2


def test_score_grid_accepts_a_batch_dimension_of_one() -> None:
    occ, anom = empty_volumes()
    occ[0, 0, 0], anom[0, 0, 0] = 1.0, 1.0
    grid = score_grid(occ[None], anom[None], GRID)
    assert grid[0, 0] == 100


def test_postprocess_rejects_outputs_that_do_not_match_the_grid() -> None:
    occ, anom = empty_volumes()
    with pytest.raises(GeometryError, match=r"'anomaly' has shape \(8, 6, 3\); expected \(8, 6, 4\)"):
        score_grid(occ, anom[:, :, :3], GRID)


def test_postprocess_rejects_non_finite_model_outputs() -> None:
    occ, anom = empty_volumes()
    anom[1, 1, 1] = np.nan
    with pytest.raises(BackendError, match="'anomaly' contains non-finite"):
        voxel_scores(occ, anom, GRID)


def test_postprocess_rejects_thresholds_outside_unit_interval() -> None:
    occ, anom = empty_volumes()
    with pytest.raises(ConfigError, match=r'occupancy_threshold must be in \[0, 1\], got 1.5'):
        score_grid(occ, anom, GRID, occupancy_threshold=1.5)


def test_voxel_scores_lists_every_occupied_voxel_centre_with_its_score() -> None:
    occ, anom = empty_volumes()
    occ[0, 0, 0], anom[0, 0, 0] = 0.7, 0.25
    occ[7, 5, 3], anom[7, 5, 3] = 0.5, 0.75
    occ[3, 3, 3], anom[3, 3, 3] = 0.2, 0.99  # below the threshold: not predicted
    out = voxel_scores(occ, anom, GRID, occupancy_threshold=0.5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[-1.75, -0.75, -0.75, 0.25], [1.75, 1.75, 0.75, 0.75]])


def test_voxel_scores_matches_cell_center_for_random_grids() -> None:
    rng = np.random.default_rng(3)
    occ = rng.random(GRID.shape).astype(np.float32)
    anom = rng.random(GRID.shape).astype(np.float32)
    out = voxel_scores(occ, anom, GRID, occupancy_threshold=0.7)
    idx = np.argwhere(occ >= 0.7)
    np.testing.assert_allclose(out[:, :3], GRID.cell_center(idx), atol=1e-6)
    np.testing.assert_array_equal(out[:, 3], anom[tuple(idx.T)])


def blob(occ: np.ndarray, anom: np.ndarray, lo: tuple[int, int, int], hi: tuple[int, int, int], score: float) -> None:
    sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    occ[sl] = 0.9
    anom[sl] = score


def test_find_components_separates_two_blobs_and_measures_their_boxes() -> None:
    occ, anom = empty_volumes()
    blob(occ, anom, (0, 0, 0), (2, 2, 2), 0.8)  # 8 voxels
    blob(occ, anom, (5, 3, 1), (8, 4, 2), 0.95)  # 3 voxels
    anom[5, 3, 1] = 0.6  # mean differs from max
    comps = find_components(occ, anom, GRID, min_voxels=1)
    assert len(comps) == 2
    first, second = comps  # highest max_score first
    assert first.voxel_count == 3
    assert first.max_score == pytest.approx(0.95)
    assert first.mean_score == pytest.approx((0.6 + 0.95 + 0.95) / 3)
    assert first.box_min_m == pytest.approx((0.5, 0.5, -0.5))
    assert first.box_max_m == pytest.approx((2.0, 1.0, 0.0))
    assert first.size_m == pytest.approx((1.5, 0.5, 0.5))
    assert first.centroid_m == pytest.approx((1.25, 0.75, -0.25))
    assert first.range_m == pytest.approx(np.hypot(1.25, 0.75))
    assert second.voxel_count == 8
    assert second.box_min_m == pytest.approx((-2.0, -1.0, -1.0))
    assert second.box_max_m == pytest.approx((-1.0, 0.0, 0.0))
    assert second.box_center_m == pytest.approx((-1.5, -0.5, -0.5))


def test_find_components_ignores_free_or_normal_voxels_and_small_blobs() -> None:
    occ, anom = empty_volumes()
    blob(occ, anom, (0, 0, 0), (3, 1, 1), 0.9)
    occ[4, 4, 0], anom[4, 4, 0] = 0.9, 0.3  # occupied but normal
    occ[6, 4, 0], anom[6, 4, 0] = 0.1, 0.9  # anomalous but free
    occ[7, 5, 3], anom[7, 5, 3] = 0.9, 0.9  # a lone voxel, below min_voxels
    comps = find_components(occ, anom, GRID, anomaly_threshold=0.5, min_voxels=2)
    assert [c.voxel_count for c in comps] == [3]


def test_find_components_connectivity_decides_whether_diagonal_voxels_join() -> None:
    occ, anom = empty_volumes()
    occ[1, 1, 1] = occ[2, 2, 2] = 0.9
    anom[1, 1, 1] = anom[2, 2, 2] = 0.9
    assert [c.voxel_count for c in find_components(occ, anom, GRID, min_voxels=1, connectivity=26)] == [2]
    assert [c.voxel_count for c in find_components(occ, anom, GRID, min_voxels=1, connectivity=18)] == [1, 1]
    assert [c.voxel_count for c in find_components(occ, anom, GRID, min_voxels=1, connectivity=6)] == [1, 1]


def test_find_components_in_bev_joins_voxels_of_touching_columns_at_any_height() -> None:
    occ, anom = empty_volumes()
    occ[3, 3, 0] = occ[4, 3, 3] = 0.9
    anom[3, 3, 0] = anom[4, 3, 3] = 0.9
    assert len(find_components(occ, anom, GRID, min_voxels=1)) == 2
    (comp,) = find_components(occ, anom, GRID, min_voxels=1, bev=True, connectivity=8)
    assert comp.voxel_count == 2
    assert comp.box_min_m == pytest.approx((-0.5, 0.5, -1.0))
    assert comp.box_max_m == pytest.approx((0.5, 1.0, 1.0))


def test_find_components_keeps_the_highest_scoring_when_capped() -> None:
    occ, anom = empty_volumes()
    for i, score in enumerate([0.6, 0.9, 0.7, 0.8]):
        blob(occ, anom, (2 * i, 0, 0), (2 * i + 1, 1, 1), score)
    comps = find_components(occ, anom, GRID, min_voxels=1, max_components=2)
    assert [c.max_score for c in comps] == pytest.approx([0.9, 0.8])


@pytest.mark.parametrize(('bev', 'connectivity', 'min_voxels'), [(False, 6, 2), (True, 4, 1)])
def test_candidate_voxels_are_the_voxels_of_find_components_in_its_order(
    bev: bool, connectivity: int, min_voxels: int
) -> None:
    rng = np.random.default_rng(4)
    occ = rng.uniform(size=GRID.shape).astype(np.float32)
    anom = (rng.uniform(size=GRID.shape) ** 3).astype(np.float32)
    args = {'min_voxels': min_voxels, 'bev': bev, 'connectivity': connectivity}
    assert len(find_components(occ, anom, GRID, max_components=None, **args)) > 3  # the cap below drops some
    comps = find_components(occ, anom, GRID, max_components=3, **args)
    coords, component = component_candidates(occ, anom, GRID, **args).voxels(max_components=3)
    assert sorted(set(component.tolist())) == [0, 1, 2]
    for k, comp in enumerate(comps):
        cells = coords[component == k]
        assert len(cells) == comp.voxel_count
        assert anom[tuple(cells.T)].max() == pytest.approx(comp.max_score)
        assert GRID.mins + cells.min(axis=0) * GRID.cell_m == pytest.approx(comp.box_min_m)
    assert component_candidates(occ, anom, GRID, anomaly_threshold=1.0).voxels()[0].shape == (0, 3)


def test_find_components_rejects_unsupported_connectivity() -> None:
    occ, anom = empty_volumes()
    occ[0, 0, 0] = anom[0, 0, 0] = 1.0
    with pytest.raises(ConfigError, match='connectivity=8 is not supported in 3D'):
        find_components(occ, anom, GRID, connectivity=8)


def reference_labels(mask: np.ndarray, connectivity: int) -> np.ndarray:
    """Breadth-first flood fill, numbering components by first cell in C order (-1 = background)."""
    ndim = mask.ndim
    steps = [
        np.array(o)
        for o in np.ndindex(*([3] * ndim))
        if 0 < np.abs(np.array(o) - 1).sum() <= {4: 1, 8: 2, 6: 1, 18: 2, 26: 3}[connectivity]
    ]
    labels = np.full(mask.shape, -1)
    current = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start] >= 0:
            continue
        labels[start] = current
        queue = deque([np.array(start)])
        while queue:
            cell = queue.popleft()
            for step in steps:
                nb = cell + step - 1
                if np.all(nb >= 0) and np.all(nb < mask.shape) and mask[tuple(nb)] and labels[tuple(nb)] < 0:
                    labels[tuple(nb)] = current
                    queue.append(nb)
        current += 1
    return labels


@pytest.mark.parametrize(
    ('shape', 'connectivity'), [((9, 8, 5), 6), ((9, 8, 5), 18), ((9, 8, 5), 26), ((15, 12), 4), ((15, 12), 8)]
)
def test_label_components_matches_a_flood_fill_on_random_masks(shape: tuple[int, ...], connectivity: int) -> None:
    rng = np.random.default_rng(len(shape) * 100 + connectivity)
    for density in (0.1, 0.3, 0.5):
        mask = rng.random(shape) < density
        coords = np.argwhere(mask)
        labels, count = label_components(coords, connectivity)
        expected = reference_labels(mask, connectivity)
        np.testing.assert_array_equal(labels, expected[tuple(coords.T)])
        assert count == expected.max() + 1


def test_label_components_of_nothing_is_empty() -> None:
    labels, count = label_components(np.zeros((0, 3), np.int64), 26)
    assert labels.shape == (0,) and count == 0


# The BEV input of GRID, as the node's preprocessing makes it.
BEV_SPEC = InputSpec(grid=GRID, image_width=64, image_height=48, image_stride=16, bev_stride=2)


def cell_points(cell: tuple[int, int, int], n: int) -> np.ndarray:
    """``n`` LiDAR points (x, y, z, intensity) inside voxel ``cell`` of GRID."""
    centre = GRID.mins + (np.asarray(cell) + 0.5) * GRID.cell_m
    offsets = np.linspace(-0.2, 0.2, n)[:, None] * np.array([1.0, 0.5, -0.5])
    return np.c_[centre + offsets, np.full(n, 0.5)].astype(np.float32)


def supported_and_hallucinated() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A blob holding LiDAR returns and a higher-scoring one holding none, with ground returns below it."""
    occ, anom = empty_volumes()
    blob(occ, anom, (0, 0, 0), (2, 2, 2), 0.8)  # returns in two of its voxels
    blob(occ, anom, (5, 3, 1), (8, 4, 2), 0.95)  # filled in by the network: no return in its voxels
    points = np.concatenate([
        cell_points((0, 0, 0), 3),
        cell_points((0, 0, 3), 4),  # above the blob, same column: counted with it
        cell_points((1, 1, 1), 2),
        cell_points((5, 3, 0), 6),  # ground under the second blob, not in its voxels
    ])  # fmt: skip
    return occ, anom, points_to_bev(points, BEV_SPEC)


def test_the_bev_gives_back_every_column_point_count() -> None:
    counts = np.arange(0, 200_000, 7)
    log_density = (np.log1p(counts.astype(np.float64)) / np.log1p(64.0)).astype(np.float32)  # points_to_bev's channel
    assert np.array_equal(bev_column_points(log_density), counts)
    bev = points_to_bev(cell_points((2, 1, 0), 5), BEV_SPEC)
    assert bev_column_points(bev[GRID.nz])[2, 1] == 5 and bev_column_points(bev[GRID.nz]).sum() == 5


def test_a_component_counts_the_points_of_the_columns_where_its_voxels_hold_returns() -> None:
    occ, anom, bev = supported_and_hallucinated()
    candidates = component_candidates(occ, anom, GRID, min_voxels=1, lidar_bev=bev)
    # First voxel order: the blob at the origin first. Its columns (0, 0) and (1, 1) hold 3 + 4 and 2 points;
    # the other blob's voxels hold no return, so the ground in its columns does not count.
    assert candidates.counts.tolist() == [8, 3]
    assert candidates.points.tolist() == [9, 0]
    assert component_points(candidates.coords, candidates.counts, bev[None], GRID).tolist() == [9, 0]


def test_a_component_without_lidar_support_gets_no_marker_and_one_with_it_keeps_its_marker() -> None:
    occ, anom, bev = supported_and_hallucinated()
    every = find_components(occ, anom, GRID, min_voxels=1, min_points=0, lidar_bev=bev)
    assert [c.voxel_count for c in every] == [3, 8]  # no support rule: both, highest score first
    for min_points in (1, 9):
        (kept,) = find_components(occ, anom, GRID, min_voxels=1, min_points=min_points, lidar_bev=bev)
        assert kept == every[1]
    assert find_components(occ, anom, GRID, min_voxels=1, min_points=10, lidar_bev=bev) == []
    # The rule drops before the cap: the one marker allowed goes to the supported component.
    assert find_components(occ, anom, GRID, min_voxels=1, min_points=1, lidar_bev=bev, max_components=1) == [every[1]]
    coords, component = component_candidates(occ, anom, GRID, min_voxels=1, lidar_bev=bev).voxels(min_points=1)
    assert len(coords) == 8 and set(component.tolist()) == {0}
    assert {tuple(c) for c in coords} == {(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)}


def test_the_lidar_support_rule_needs_the_bev_input_of_the_grid() -> None:
    occ, anom, bev = supported_and_hallucinated()
    with pytest.raises(ConfigError, match='min_points=1 needs the frame.s BEV input'):
        find_components(occ, anom, GRID, min_voxels=1, min_points=1)
    with pytest.raises(ConfigError, match='min_points must be >= 0'):
        find_components(occ, anom, GRID, min_voxels=1, min_points=-1, lidar_bev=bev)
    with pytest.raises(GeometryError, match=r'lidar_bev has shape \(8, 6, 8\)'):
        find_components(occ, anom, GRID, min_voxels=1, min_points=1, lidar_bev=bev.transpose(0, 2, 1))
    # Without the rule, no BEV is needed: the components are those of every caller before it existed.
    assert find_components(occ, anom, GRID, min_voxels=1) == find_components(
        occ, anom, GRID, min_voxels=1, lidar_bev=bev
    )
