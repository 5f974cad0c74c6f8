"""make demo pieces that need no ROS processes: model check, metrics of published voxels, rendering."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import anovox_perception.core.package_data as package_data
from anovox_perception.core.geometry import CameraModel, GridSpec, anovox_voxel_center
from anovox_perception.core.postprocess import voxel_scores
from anovox_training.data.cache import CachedFrame
from anovox_training.data.targets import sparse_targets
from anovox_training.evaluate.run import VariantAccumulator
from anovox_training.integration import demo
from anovox_training.integration.demo_render import box_corners, render_frame, write_gif
from anovox_training.integration.node_eval import FrameTruth, evaluate_published, metrics_report
from anovox_training.integration.node_run import FrameOutput, output_topics

GRID = GridSpec(x_min_m=-4.0, x_max_m=12.0, y_min_m=-8.0, y_max_m=8.0, z_min_m=-3.0, z_max_m=1.0)


def test_the_demo_without_a_trained_model_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(package_data, 'model_search_dirs', lambda: [tmp_path / 'models'])
    assert demo.main(['--out', str(tmp_path / 'demo_out')]) == 2
    err = capsys.readouterr().err
    assert 'no trained model to run' in err and 'make model' in err
    assert not (tmp_path / 'demo_out' / 'summary.json').exists()


def random_frame(seed: int) -> tuple[np.ndarray, np.ndarray, FrameTruth]:
    """Model grids and ground truth of one frame: some anomaly voxels, mostly normal ones."""
    rng = np.random.default_rng(seed)
    occupancy = rng.uniform(size=GRID.shape).astype(np.float32)
    anomaly = rng.uniform(size=GRID.shape).astype(np.float32)
    cells = np.argwhere(rng.uniform(size=GRID.shape) < 0.05)
    labels = np.where(rng.uniform(size=len(cells)) < 0.1, 30, 1)  # animal or road
    voxels = np.concatenate([GRID.to_anovox(cells), labels[:, None]], axis=1).astype(np.uint16)
    anomalies = np.array([[5.0, 0.0, -1.0, 0.8, 0.5, 0.6, 30.0]])
    return occupancy, anomaly, FrameTruth('s', seed, voxels, anomalies)


def test_metrics_of_published_voxels_equal_those_of_the_full_model_grids():
    threshold = 0.6
    outputs, truths = [], {}
    reference = VariantAccumulator(GRID, occupancy_threshold=threshold)
    for seed in range(3):
        occupancy, anomaly, truth = random_frame(seed)
        stamp = 1_000 + seed
        truths[stamp] = truth
        # What the node publishes: the occupied voxels' centres with their scores.
        outputs.append(FrameOutput(stamp, 'lidar', voxel_scores(occupancy, anomaly, GRID, threshold)))
        frame = CachedFrame('s', seed, {}, sparse_targets(truth.voxels, GRID), truth.anomalies)
        reference.add(frame, occupancy, anomaly)
    published = evaluate_published(outputs, truths, GRID)
    expected = reference.result()
    assert expected['Anomalies_Only']['voxels'] > 0
    for subset in ('Anomalies_Only', 'Normality_Included'):
        for key, value in expected[subset].items():
            assert published[subset][key] == pytest.approx(value, abs=1e-9), (subset, key)
    assert published['by_category'].keys() == {'animal'}
    report = metrics_report(published, frames=3, scenarios=1)
    assert report == {'split': 'test', 'frames': 3, 'scenarios': 1, 'variants': {'fusion': published}}


def test_frames_without_ground_truth_are_left_out():
    occupancy, anomaly, truth = random_frame(0)
    out = FrameOutput(5, 'lidar', voxel_scores(occupancy, anomaly, GRID, 0.5))
    result = evaluate_published([out], {6: truth}, GRID)
    assert result['Normality_Included']['voxels'] == 0


def test_box_corners_span_the_box():
    corners = box_corners((1.0, 2.0, 3.0), (2.0, 4.0, 6.0))
    np.testing.assert_array_equal(corners.min(axis=0), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(corners.max(axis=0), [2.0, 4.0, 6.0])
    assert len({tuple(c) for c in corners}) == 8


def test_rendered_frames_and_the_gif_are_written(tmp_path):
    camera = CameraModel.from_fov(96, 64, 90.0)
    t_cam_lidar = np.eye(4)
    t_cam_lidar[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]
    grid = np.full((GRID.ny, GRID.nx), -1, dtype=np.int8)
    grid[10:14, 20:24] = 90
    output = FrameOutput(
        1, 'lidar', np.zeros((0, 4), np.float32), grid, (GRID.x_min_m, GRID.y_min_m), 0.5,
        boxes=[((6.0, 0.0, -1.0), (1.0, 1.0, 1.0), 'anomaly 0.90 | 1.0x1.0x1.0 m | 6.0 m')],
    )  # fmt: skip
    truth = np.concatenate([GRID.to_anovox(np.array([[20, 16, 4]])), [[30]]], axis=1).astype(np.uint16)
    assert np.allclose(anovox_voxel_center(truth), GRID.cell_center(np.array([[20, 16, 4]])))
    rgb = np.full((64, 96, 3), 120, dtype=np.uint8)
    pngs = [
        render_frame(tmp_path / f'f{i}.png', rgb if i else None, camera, t_cam_lidar, output, truth, f'frame {i}')
        for i in range(2)
    ]
    gif = write_gif(pngs, tmp_path / 'demo.gif', width_px=320)
    with Image.open(pngs[1]) as img:
        assert img.width > 500
    with Image.open(gif) as img:
        assert img.width == 320 and img.n_frames == 2


def test_output_topics_are_the_node_private_outputs():
    assert output_topics() == {
        'score_grid': '/anovox_detector/output/score_grid',
        'voxel_scores': '/anovox_detector/output/voxel_scores',
        'markers': '/anovox_detector/output/markers',
    }
