"""Evaluation: the AnoVox protocol on hand-made frames, and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_data import make_split

from anovox_perception.core.calibration import Calibration
from anovox_perception.core.errors import ConfigError
from anovox_perception.core.geometry import GridSpec
from anovox_training.data.cache import CachedFrame
from anovox_training.data.targets import SparseTargets
from anovox_training.evaluate.metrics import binary_metrics
from anovox_training.evaluate.run import VariantAccumulator, main, parse_groups
from anovox_training.model import ModelConfig, build_model, save_checkpoint

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
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.7, 0.6], np.float32)
    expected = binary_metrics(scores, [0, 0, 0, 0, 1, 1])
    only = result['Anomalies_Only']
    assert only['voxels'] == 6 and only['coverage'] == pytest.approx(6 / 7)
    assert {k: only[k] for k in expected} == expected  # exact, not within a histogram's resolution
    included = result['Normality_Included']
    assert included['voxels'] == 8 and included['coverage'] == pytest.approx(8 / 9)
    assert set(result['by_category']) == {'home'} and set(result['by_size']) == {'small'}
    assert result['by_category']['home']['AP'] == expected['AP']
    assert result['mean_category_ap'] == expected['AP'] and result['ap_small'] == expected['AP']


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
        'calibration': Calibration(occupancy_threshold=0.01).to_dict(),
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
            'mean_category_ap',
            'ap_small',
            'by_category',
            'by_group',
            'by_size',
            'objects',
            'false_positives_at_fpr95',
        }
        # The test split holds only these categories: the group is there exactly when a category is.
        assert set(variant['by_group']) == ({'held_out'} if variant['by_category'] else set())
        for subset in ('Anomalies_Only', 'Normality_Included'):
            assert set(variant[subset]) == {'AUROC', 'AP', 'FPR95', 'F1', 'PPV', 'specificity', 'voxels', 'coverage'}
            for key in ('AUROC', 'AP', 'FPR95', 'F1', 'PPV', 'specificity', 'coverage'):
                value = variant[subset][key]
                assert value is None or 0.0 <= value <= 1.0
        objects = variant['objects']
        assert objects['frames'] == 3 and objects['anomaly_threshold'] == 0.5 and objects['min_component_voxels'] == 3
        assert objects['false_alarms'] + objects['ignored_components'] <= objects['components']
        assert sum(m['instances'] for m in objects['by_category'].values()) == objects['instances']
    assert report['variants']['fusion']['Normality_Included']['voxels'] > 0
    for name in ('metrics.md', 'roc.png', 'pr.png'):
        assert (out / name).stat().st_size > 0
    table = (out / 'metrics.md').read_text()
    assert '| Variant | Mean category AP | AP small | Object recall | False alarms / frame |' in table
    # Breakdowns appear when they have rows.
    variants = report['variants'].values()
    assert ('By group (AP / AUROC / FPR95):' in table) == any(v['by_group'] for v in variants)
    has_objects = any(v['objects']['by_category'] for v in variants)
    assert ('Object recall by category (detected / objects):' in table) == has_objects
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


def test_mean_category_ap_averages_the_categories_and_ap_small_reads_objects_under_a_metre():
    occupancy = np.full(GRID.shape, 0.9, np.float32).ravel()
    anomaly = np.zeros(GRID.shape, np.float32).ravel()
    anomaly[:4] = [0.1, 0.6, 0.3, 0.5]
    acc = VariantAccumulator(GRID, occupancy_threshold=0.5)
    shape = GRID.shape
    # Frame 1: a 0.8 m animal (small) at cell 3; frame 2: a 3 m airplane (large) at cell 3.
    animal = _frame(range(4), [1, 1, 1, 30], anomalies=[[0.3, 1.3, 0.3, 0.8, 0.5, 0.5, 30]])
    airplane = _frame(range(4), [1, 1, 33, 33], anomalies=[[0.3, 1.3, 0.3, 3.0, 1.0, 1.0, 33]])
    acc.add(animal, occupancy.reshape(shape), anomaly.reshape(shape))
    acc.add(airplane, occupancy.reshape(shape), anomaly.reshape(shape))
    result = acc.result()
    ap_animal = binary_metrics(anomaly[:4], [0, 0, 0, 1])['AP']
    ap_airplane = binary_metrics(anomaly[:4], [0, 0, 1, 1])['AP']
    assert ap_animal != ap_airplane
    assert result['by_category']['animal']['AP'] == ap_animal
    assert result['mean_category_ap'] == pytest.approx((ap_animal + ap_airplane) / 2, abs=1e-15)
    assert result['ap_small'] == ap_animal and result['by_size']['large']['AP'] == ap_airplane
    only_large = VariantAccumulator(GRID, occupancy_threshold=0.5)
    only_large.add(airplane, occupancy.reshape(shape), anomaly.reshape(shape))
    assert only_large.result()['ap_small'] is None
    assert VariantAccumulator(GRID, occupancy_threshold=0.5).result()['mean_category_ap'] is None


def test_pooled_metrics_stay_exact_when_all_scores_share_one_tiny_interval():
    # Positives one float32 step above the negatives: a 1e-5 histogram saw a single tied bin.
    occupancy = np.full(GRID.shape, 0.9, np.float32)
    anomaly = np.full(GRID.shape, 0.5, np.float32)
    anomaly.reshape(-1)[[5, 6]] = np.nextafter(np.float32(0.5), np.float32(1))
    acc = VariantAccumulator(GRID, occupancy_threshold=0.5)
    for _ in range(3):
        acc.add(_frame(range(10), [1, 1, 1, 1, 1, 29, 29, 1, 1, 1]), occupancy, anomaly)
    only = acc.result()['Anomalies_Only']
    assert only['AP'] == 1.0 and only['AUROC'] == 1.0 and only['voxels'] == 30


def test_binned_accumulation_keeps_the_threshold_figures_exact():
    rng = np.random.default_rng(2)
    exact, binned = VariantAccumulator(GRID, 0.5), VariantAccumulator(GRID, 0.5, n_bins=10_000)
    occupancy = np.full(GRID.shape, 0.9, np.float32)
    for _ in range(5):
        anomaly = rng.uniform(size=GRID.shape).astype(np.float32)
        labels = np.where(rng.uniform(size=20) < 0.3, 30, 1)
        for acc in (exact, binned):
            acc.add(_frame(range(20), labels), occupancy, anomaly)
    e, b = exact.result()['Normality_Included'], binned.result()['Normality_Included']
    assert e['AP'] > 0
    assert {k: b[k] for k in ('FPR95', 'F1', 'PPV', 'voxels')} == {k: e[k] for k in ('FPR95', 'F1', 'PPV', 'voxels')}
    assert b['AP'] == pytest.approx(e['AP'], abs=1e-3)


def test_objects_are_counted_on_every_frame_at_the_variant_occupancy_threshold():
    shape = GRID.shape
    occupancy = np.full(shape, 0.9, np.float32)
    anomaly = np.zeros(shape, np.float32)
    anomaly.reshape(-1)[[0, 1, 2]] = 0.9  # one component of 3 voxels on the animal
    acc = VariantAccumulator(GRID, occupancy_threshold=0.5)
    acc.add(_frame(range(6), [30, 30, 30, 1, 1, 1], anomalies=[[0.3, 0.3, 0.3, 0.5, 0.5, 0.5, 30]]), occupancy, anomaly)
    acc.add(_frame(range(6), [1, 1, 1, 1, 1, 1]), occupancy, anomaly)  # the same blob on road: a false alarm
    objects = acc.result()['objects']
    assert objects['frames'] == 2 and objects['recall'] == 1.0 and objects['false_alarms_per_frame'] == 0.5
    assert objects['by_category'] == {'animal': {'instances': 1, 'detected': 1, 'recall': 1.0}}
    assert objects['by_size'] == {'small': {'instances': 1, 'detected': 1, 'recall': 1.0}}
    higher = VariantAccumulator(GRID, occupancy_threshold=0.95)  # nothing is occupied: nothing found
    higher.add(_frame(range(6), [30, 30, 30, 1, 1, 1]), occupancy, anomaly)
    assert higher.result()['objects']['recall'] == 0.0
