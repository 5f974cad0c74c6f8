"""anovox-real-check: the shipped model on the real KITTI frame, end to end, and its bag path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from anovox_perception.core.calibration import OperatingPoint
from anovox_perception.core.detector import Detector, DetectorConfig, FrameResult
from anovox_perception.core.errors import ConfigError, DataError
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.model_card import CARD_METADATA_KEY
from anovox_perception.core.sync import SyncedPair
from anovox_training.data.kitti import KittiFolder
from anovox_training.data.kitti_bag import rig_parameters
from anovox_training.evaluate.real_check import (
    check_real_frames,
    fpr95_threshold,
    frame_summary,
    lidar_evidence,
    load_fpr95_threshold,
    main,
    real_metrics,
    score_distribution,
)

ROOT = Path(__file__).resolve().parents[2]
FRAME_DIR = ROOT / 'real' / 'kitti_000008'
MODEL = ROOT / 'models' / 'anovox_base.onnx'
METRICS = ROOT / 'models' / 'anovox_base.metrics.json'


def check_frame_invariants(frame: dict, anomaly_threshold: float) -> None:
    occupied = frame['occupied_voxels']
    assert occupied > 0 and frame['camera_used']
    assert frame['markers'] == 2 * frame['components'] == 2 * len(frame['component_list'])  # a box and a text each
    assert 0 <= frame['above_threshold'] <= occupied
    assert frame['share_above_fpr95_threshold'] == pytest.approx(frame['above_threshold'] / occupied)
    scores = frame['scores']
    assert sum(scores['histogram']['counts']) == occupied
    assert len(scores['histogram']['edges']) == len(scores['histogram']['counts']) + 1
    quantiles = list(scores['quantiles'].values())
    assert scores['min'] <= quantiles[0] and quantiles == sorted(quantiles) and quantiles[-1] <= scores['max'] <= 1.0
    for component in frame['component_list']:
        assert component['max_score'] > anomaly_threshold and component['voxels'] >= 1
    # The LiDAR-evidence groups split the occupied voxels, and those above the threshold, without overlap.
    groups = frame['lidar_evidence'].values()
    assert sum(g['occupied_voxels'] for g in groups) == occupied
    assert sum(g['above_threshold'] for g in groups) == frame['above_threshold']


def test_lidar_evidence_groups_voxels_by_the_returns_under_them() -> None:
    grid = GridSpec(x_min_m=0.0, x_max_m=4.0, y_min_m=0.0, y_max_m=4.0, z_min_m=0.0, z_max_m=2.0, cell_m=0.5)
    # Voxel centres: one holding a return, one above it (same column), one in an empty column.
    voxels = np.array([[0.25, 0.25, 0.25, 0.9], [0.25, 0.25, 1.25, 0.1], [2.25, 2.25, 0.25, 0.8]], np.float32)
    result = FrameResult(
        stamp_ns=0, frame_id='lidar', grid=grid, occupancy=np.zeros(grid.shape, np.float32),
        anomaly=np.zeros(grid.shape, np.float32), score_grid=np.zeros(grid.shape[1::-1], np.int8),
        voxel_scores=voxels, components=[], markers=[],
    )  # fmt: skip
    points = np.array([[0.3, 0.4, 0.1, 1.0], [0.1, 0.1, 0.4, 1.0], [9.0, 9.0, 0.0, 1.0], [np.nan, 0.0, 0.0, 1.0]])
    groups = lidar_evidence(result, points, threshold=0.5)
    assert groups == {
        'return_in_voxel': {'occupied_voxels': 1, 'above_threshold': 1, 'share_above_fpr95_threshold': 1.0},
        'return_in_column': {'occupied_voxels': 1, 'above_threshold': 0, 'share_above_fpr95_threshold': 0.0},
        'no_return_in_column': {'occupied_voxels': 1, 'above_threshold': 1, 'share_above_fpr95_threshold': 1.0},
    }
    assert frame_summary(result, 0.5)  # without points: no breakdown, no error
    assert 'lidar_evidence' not in frame_summary(result, 0.5)


def test_cli_writes_summary_picture_and_an_agreeing_bag(tmp_path, capsys):
    out = tmp_path / 'real_out'
    code = main([str(FRAME_DIR), '--model', str(MODEL), '--metrics', str(METRICS), '--out', str(out), '--via-bag'])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    threshold = load_fpr95_threshold(METRICS)
    assert summary['threshold'] == threshold and summary['layout'] == 'frame'
    assert summary['model_name'] == 'anovox_base' and summary['via_bag_agrees'] is True
    frame = summary['frames']['kitti_000008']
    check_frame_invariants(frame, summary['anomaly_threshold'])
    assert frame['via_bag']['agrees'] and frame['via_bag']['max_score_difference'] == 0.0
    totals = summary['totals']
    for key in ('markers', 'components', 'occupied_voxels', 'above_threshold', 'share_above_fpr95_threshold'):
        assert totals[key] == frame[key]
    assert totals['frames'] == 1 and totals['frames_with_markers'] == int(frame['markers'] > 0)
    with Image.open(out / frame['picture']) as picture:
        assert picture.format == 'PNG' and picture.width > 600
    assert (out / 'bags' / 'kitti_000008' / 'metadata.yaml').is_file()
    assert (out / 'bags' / 'kitti_000008.params.yaml').is_file()
    stdout = capsys.readouterr().out
    assert f'kitti_000008: {frame["markers"]} markers' in stdout and 'bag path agrees' in stdout


def test_cli_reads_the_threshold_beside_the_model_by_default(tmp_path):
    assert main([str(FRAME_DIR), '--model', str(MODEL), '--out', str(tmp_path), '--no-render']) == 0
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['threshold'] == load_fpr95_threshold(METRICS)
    assert not (tmp_path / 'frames').exists()


def test_share_matches_detector_process_with_the_frames_rig():
    frame = KittiFolder(FRAME_DIR).read('kitti_000008')
    values = {'model_path': str(MODEL), 'backend': 'onnxruntime', **rig_parameters(frame)}
    detector = Detector(DetectorConfig.from_parameters(values))
    try:
        result = detector.process(SyncedPair(1, frame.points, frame.rgb, 1))
    finally:
        detector.close()
    scores = result.voxel_scores[:, 3]
    report = check_real_frames(MODEL, FRAME_DIR, 0.3, render=False)
    entry = real_metrics(report)['kitti_000008']
    assert entry == {
        'markers': 2 * len(result.components),
        'share_above_fpr95_threshold': float((scores > 0.3).mean()),
        'occupied_voxels': len(scores),
        'lidar_evidence': lidar_evidence(result, frame.points, 0.3),
    }


def _model_at(tmp_path: Path, operating_point: OperatingPoint) -> Path:
    """The shipped model with another operating point in its card's calibration (same graph)."""
    model = onnx.load(str(MODEL))
    entry = next(e for e in model.metadata_props if e.key == CARD_METADATA_KEY)
    card = json.loads(entry.value)
    card['calibration']['operating_point'] = operating_point.to_dict()
    entry.value = json.dumps(card)
    path = tmp_path / 'anovox_base.onnx'
    onnx.save(model, str(path))
    return path


def test_markers_are_made_at_the_operating_point_of_the_models_calibration(tmp_path):
    shipped = check_real_frames(MODEL, FRAME_DIR, 0.5, render=False)
    assert (shipped['anomaly_threshold'], shipped['min_component_points']) == (0.5, 0)  # the shipped calibration
    strict = check_real_frames(_model_at(tmp_path, OperatingPoint(0.9, 20)), FRAME_DIR, 0.5, render=False)
    assert (strict['anomaly_threshold'], strict['min_component_points']) == (0.9, 20)
    frame, before = strict['frames']['kitti_000008'], shipped['frames']['kitti_000008']
    check_frame_invariants(frame, 0.9)
    assert frame['components'] <= before['components']
    assert frame['occupied_voxels'] == before['occupied_voxels']  # the occupancy threshold did not move


def test_share_falls_as_the_threshold_rises():
    shares = [
        check_real_frames(MODEL, FRAME_DIR, t, render=False)['totals']['share_above_fpr95_threshold']
        for t in (0.0, 0.09, 1.0)
    ]
    assert shares[0] > shares[1] > shares[2] == 0.0


def test_frames_of_a_folder_are_independent_scenes(tmp_path):
    for name in ('first', 'second'):
        shutil.copytree(FRAME_DIR, tmp_path / name)
    report = check_real_frames(MODEL, tmp_path, 0.09, render=False, via_bag=True)
    first, second = report['frames']['first'], report['frames']['second']
    assert first == second  # no marker track, delete or drop carries over from one frame to the next
    assert report['via_bag_agrees'] and report['totals']['markers'] == 2 * first['markers']


def test_bad_threshold_and_missing_metrics_are_reported(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r'threshold must be in \[0, 1\], got 1.5'):
        check_real_frames(MODEL, FRAME_DIR, 1.5)
    code = main([str(FRAME_DIR), '--model', str(MODEL), '--metrics', str(tmp_path / 'none.json'), '--out', 'x'])
    assert code == 1
    assert 'none.json: cannot read the metrics' in capsys.readouterr().err
    assert main([str(tmp_path), '--model', str(MODEL), '--threshold', '0.1', '--out', str(tmp_path / 'o')]) == 1
    assert 'no KITTI frames found' in capsys.readouterr().err


def test_fpr95_threshold_is_read_from_the_variant_and_checked():
    report = {'variants': {'fusion': {'false_positives_at_fpr95': {'threshold': 0.12}}, 'lidar_only': {}}}
    assert fpr95_threshold(report) == 0.12
    with pytest.raises(DataError, match=r"no variant 'camera_only' in \"variants\" \(has \['fusion', 'lidar_only'\]\)"):
        fpr95_threshold(report, 'camera_only')
    with pytest.raises(DataError, match=r'lidar_only.false_positives_at_fpr95.threshold is None'):
        fpr95_threshold(report, 'lidar_only')


def test_score_distribution_counts_every_score_once():
    scores = np.array([0.0, 0.04, 0.05, 0.5, 0.99, 1.0])
    dist = score_distribution(scores)
    counts = dist['histogram']['counts']
    assert sum(counts) == len(scores) and counts[0] == 2 and counts[1] == 1 and counts[10] == 1 and counts[-1] == 2
    assert dist['min'] == 0.0 and dist['max'] == 1.0 and dist['quantiles']['p50'] == pytest.approx(0.275)
    empty = score_distribution(np.zeros(0))
    assert empty['mean'] is None and sum(empty['histogram']['counts']) == 0


def test_ignore_intensity_runs_the_frame_as_a_cloud_without_intensity_on_both_paths(tmp_path):
    code = main([str(FRAME_DIR), '--model', str(MODEL), '--threshold', '0.3', '--out', str(tmp_path)]
                + ['--no-render', '--via-bag', '--ignore-intensity'])  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['lidar_intensity_used'] is False and summary['via_bag_agrees'] is True
    frame = KittiFolder(FRAME_DIR).read('kitti_000008')
    values = {'model_path': str(MODEL), 'backend': 'onnxruntime', **rig_parameters(frame)}
    detector = Detector(DetectorConfig.from_parameters(values))
    try:
        result = detector.process(SyncedPair(1, frame.points[:, :3], frame.rgb, 1))
    finally:
        detector.close()
    scores = result.voxel_scores[:, 3]
    entry = summary['frames']['kitti_000008']
    assert entry['occupied_voxels'] == len(scores)
    assert entry['share_above_fpr95_threshold'] == pytest.approx(float((scores > 0.3).mean()))
