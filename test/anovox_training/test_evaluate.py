"""Evaluation: the AnoVox protocol on hand-made frames, and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_data import make_split

from anovox_perception.errors import ConfigError
from anovox_perception.geometry import GridSpec
from anovox_training.cache import CachedFrame
from anovox_training.evaluate import VariantAccumulator, main, parse_groups
from anovox_training.metrics import binary_metrics
from anovox_training.model import ModelConfig, build_model, save_checkpoint
from anovox_training.targets import SparseTargets

torch.set_num_threads(1)
GRID = GridSpec(x_min_m=0.0, x_max_m=2.0, y_min_m=0.0, y_max_m=2.0, z_min_m=0.0, z_max_m=1.0)  # 4 x 4 x 2


def _frame(index, label, anomalies=None):
    return CachedFrame(
        scenario='s',
        frame_id=0,
        inputs={},
        targets=SparseTargets(index=np.array(index, dtype=np.int64), label=np.array(label, dtype=np.uint8)),
        anomalies=np.zeros((0, 7)) if anomalies is None else np.array(anomalies, dtype=np.float64),
    )


def test_only_predicted_ground_truth_voxels_are_scored_and_coverage_counts_the_rest():
    occupancy = np.zeros(GRID.shape, np.float32).ravel()
    anomaly = np.zeros(GRID.shape, np.float32).ravel()
    # Ground truth: cells 0..4 road, 5 and 6 anomaly (home), 7 an ignored agent (113).
    occupancy[[0, 1, 2, 3, 5, 6, 7]] = 0.9  # cell 4 is missed
    anomaly[:8] = [0.1, 0.2, 0.3, 0.8, 0.9, 0.7, 0.6, 0.99]
    anomaly[20] = 1.0  # predicted but not in the ground truth: not evaluated
    occupancy[20] = 0.9
    acc = VariantAccumulator(GRID, occupancy_threshold=0.5)
    frame = _frame(range(8), [1, 1, 1, 1, 1, 29, 29, 113], anomalies=[[0.3, 1.3, 0.3, 0.5, 0.5, 0.5, 29]])
    acc.add(frame, occupancy.reshape(GRID.shape), anomaly.reshape(GRID.shape))
    acc.add(_frame([0, 1], [1, 1]), occupancy.reshape(GRID.shape), anomaly.reshape(GRID.shape))
    result = acc.result()
    expected = binary_metrics([0.1, 0.2, 0.3, 0.8, 0.7, 0.6], [0, 0, 0, 0, 1, 1])
    only = result['Anomalies_Only']
    assert only['voxels'] == 6 and only['coverage'] == pytest.approx(6 / 7)
    assert only['AP'] == pytest.approx(expected['AP']) and only['AUROC'] == pytest.approx(expected['AUROC'])
    included = result['Normality_Included']
    assert included['voxels'] == 8 and included['coverage'] == pytest.approx(8 / 9)
    assert set(result['by_category']) == {'home'} and set(result['by_size']) == {'small'}
    assert result['by_category']['home']['AP'] == pytest.approx(expected['AP'])


def test_frames_without_anomalies_leave_anomalies_only_empty():
    acc = VariantAccumulator(GRID, occupancy_threshold=0.5)
    ones = np.ones(GRID.shape, np.float32)
    acc.add(_frame([0, 1], [1, 2]), ones, ones * 0.2)
    result = acc.result()
    assert result['Anomalies_Only']['voxels'] == 0 and result['Anomalies_Only']['coverage'] is None
    assert result['Normality_Included']['AUROC'] is None and result['Normality_Included']['AP'] == 0.0


@pytest.mark.slow
def test_the_cli_writes_metrics_json_in_the_report_shape_with_table_and_plots(tmp_path, capsys):
    data = make_split(tmp_path / 'test', 'test', scenarios=1, frames=3, seed=11)
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    ckpt = {
        'model': build_model(cfg).state_dict(),
        'config': {'model': cfg.to_dict(), 'data': {'cache_dir': str(tmp_path / 'cache')}},
        'input_spec': cfg.input_spec().to_dict(),
        'occupancy_threshold': 0.01,
    }
    fusion = save_checkpoint(tmp_path / 'fusion.pt', ckpt)
    camera_cfg = ModelConfig.tiny(modality='camera').to_dict()
    camera = save_checkpoint(tmp_path / 'camera.pt', {**ckpt, 'config': {**ckpt['config'], 'model': camera_cfg}})
    out = tmp_path / 'out'
    argv = ['--checkpoint', str(fusion), '--camera-only', str(camera), '--data', str(data), '--out', str(out)]
    assert main([*argv, '--quiet', '--threads', '1', '--group', 'held_out=animal,airplane,falling']) == 0
    report = json.loads((out / 'metrics.json').read_text())
    assert set(report) == {'split', 'frames', 'scenarios', 'variants'}
    assert report['split'] == 'test' and report['frames'] == 3 and report['scenarios'] == 1
    assert list(report['variants']) == ['fusion', 'lidar_only', 'camera_only', 'geometric']
    for variant in report['variants'].values():
        assert set(variant) == {
            'Anomalies_Only',
            'Normality_Included',
            'by_category',
            'by_group',
            'by_size',
            'false_positives_at_fpr95',
        }
        # The test split holds only these categories: the group is there exactly when a category is.
        assert set(variant['by_group']) == ({'held_out'} if variant['by_category'] else set())
        for subset in ('Anomalies_Only', 'Normality_Included'):
            assert set(variant[subset]) == {'AUROC', 'AP', 'FPR95', 'F1', 'PPV', 'voxels', 'coverage'}
            for key in ('AUROC', 'AP', 'FPR95', 'F1', 'PPV', 'coverage'):
                value = variant[subset][key]
                assert value is None or 0.0 <= value <= 1.0
    assert report['variants']['fusion']['Normality_Included']['voxels'] > 0
    for name in ('metrics.md', 'roc.png', 'pr.png'):
        assert (out / name).stat().st_size > 0
    assert 'By group (AP / AUROC / FPR95):' in (out / 'metrics.md').read_text()
    assert '| fusion | Anomalies_Only |' in capsys.readouterr().out


def test_the_cli_reports_a_missing_checkpoint_as_an_error(tmp_path, capsys):
    assert main(['--checkpoint', str(tmp_path / 'x.pt'), '--data', str(tmp_path), '--out', str(tmp_path)]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_the_cli_refuses_an_even_score_smoothing_window(tmp_path, capsys):
    argv = ['--checkpoint', str(tmp_path / 'x.pt'), '--data', str(tmp_path), '--out', str(tmp_path)]
    assert main([*argv, '--score-smoothing', '4']) == 2
    assert '--score-smoothing must be an odd integer >= 1' in capsys.readouterr().err


def test_false_positives_at_fpr95_are_split_by_ground_truth_class():
    occupancy = np.full(GRID.shape, 0.9, np.float32).ravel()
    anomaly = np.zeros(GRID.shape, np.float32).ravel()
    # road 0..3, pole 4..5, vehicle 6, anomaly 7..8; both anomalies are above t = 0.60, not both above 0.61.
    anomaly[:9] = [0.1, 0.65, 0.3, 0.8, 0.7, 0.2, 0.5, 0.9, 0.605]
    occupancy[3] = 0.1  # not predicted: not a false positive, not counted
    acc = VariantAccumulator(GRID, occupancy_threshold=0.5)
    frame = _frame(range(9), [1, 1, 1, 1, 6, 6, 14, 30, 30], anomalies=[[0.3, 1.3, 0.3, 0.5, 0.5, 0.5, 30]])
    acc.add(frame, occupancy.reshape(GRID.shape), anomaly.reshape(GRID.shape))
    fp = acc.result()['false_positives_at_fpr95']
    assert fp['threshold'] == pytest.approx(0.60)
    assert fp['by_class'] == {
        'road': {'voxels': 3, 'above': 1, 'share': 0.5, 'rate': pytest.approx(1 / 3)},
        'pole': {'voxels': 2, 'above': 1, 'share': 0.5, 'rate': 0.5},
        'vehicle': {'voxels': 1, 'above': 0, 'share': 0.0, 'rate': 0.0},
    }


def test_a_category_group_pools_its_categories_and_leaves_the_other_anomalies_out():
    occupancy = np.full(GRID.shape, 0.9, np.float32).ravel()
    anomaly = np.zeros(GRID.shape, np.float32).ravel()
    # Frame 1: road 0..2, animal 3, home 4 (a training category: not in the group).
    anomaly[:5] = [0.1, 0.5, 0.3, 0.4, 0.95]
    groups = {'held_out': frozenset({'animal', 'airplane'})}
    acc = VariantAccumulator(GRID, occupancy_threshold=0.5, groups=groups)
    shape = GRID.shape
    acc.add(_frame(range(5), [1, 1, 1, 30, 29]), occupancy.reshape(shape), anomaly.reshape(shape))
    # Frame 2: road 0..1, airplane 2; frame 3: home only (no group member: adds nothing).
    second = anomaly.copy()
    second[:3] = [0.2, 0.6, 0.7]
    acc.add(_frame(range(3), [1, 1, 33]), occupancy.reshape(shape), second.reshape(shape))
    acc.add(_frame(range(2), [1, 29]), occupancy.reshape(shape), second.reshape(shape))
    result = acc.result()
    expected = binary_metrics([0.1, 0.5, 0.3, 0.4, 0.2, 0.6, 0.7], [0, 0, 0, 1, 0, 0, 1])
    held_out = result['by_group']['held_out']
    assert held_out['voxels'] == 7 and held_out['coverage'] == 1.0
    assert held_out['AP'] == pytest.approx(expected['AP']) and held_out['AUROC'] == pytest.approx(expected['AUROC'])
    assert 'by_group' not in VariantAccumulator(GRID, occupancy_threshold=0.5).result()


@pytest.mark.parametrize(
    ('items', 'message'),
    [
        (['held_out'], 'expected NAME=CATEGORY'),
        (['held_out='], 'expected NAME=CATEGORY'),
        (['held_out=animal,cats'], r"unknown categories \['cats'\]"),
        (['a=animal', 'a=falling'], "the name 'a' is given twice"),
    ],
)
def test_malformed_category_groups_are_refused(items, message):
    with pytest.raises(ConfigError, match=message):
        parse_groups(items)
    assert parse_groups(['held_out=animal, airplane']) == {'held_out': frozenset({'animal', 'airplane'})}
