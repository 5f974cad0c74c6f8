"""Score-rule tuning: weight by AP, temperature by FPR95 then F1, smoothing window and LiDAR gate by AP; the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_data import make_split, tiny_config

from anovox_perception.core.calibration import ChosenOn
from anovox_training.calibrate.operating_point import ANOMALY_THRESHOLDS, MIN_COMPONENT_POINTS
from anovox_training.calibrate.score_tuning import (
    AP_TOLERANCE,
    ValidationVoxels,
    choose,
    choose_smoothing,
    choose_support,
    main,
    score,
)
from anovox_training.data.cache import SampleCache, data_hash, evenly_spread, frame_refs
from anovox_training.data.dataset import resolve_scenarios
from anovox_training.model.checkpoint import checkpoint_calibration, model_config_of, read_checkpoint
from anovox_training.train.trainer import train


def _voxels() -> ValidationVoxels:
    rng = np.random.default_rng(0)
    positive = np.zeros(4000, dtype=bool)
    positive[:200] = True
    # Over-confident logits: negatives far below zero, positives spread from -12 to +12.
    logit = np.where(positive, rng.uniform(-12, 12, 4000), rng.normal(-14, 3, 4000))
    # The semantic cue is pure noise here, so weighting it in can only hurt the ranking.
    msp = rng.uniform(0.2, 1.0, 4000)
    return ValidationVoxels(anomaly_logit=logit, max_softmax=msp, positive=positive)


def test_score_matches_the_exported_rule():
    v = ValidationVoxels(np.array([0.0, 2.0]), np.array([0.5, 1.0]), np.array([True, False]))
    np.testing.assert_allclose(score(v, 1.0, 1.0), [0.75, 1 / (1 + np.exp(-2))])
    np.testing.assert_allclose(score(v, 0.0, 2.0), [0.5, 1 / (1 + np.exp(-1))])


def test_choice_prefers_the_uninformative_cue_off_and_a_temperature_that_spreads_the_scores():
    weight, temperature, tried = choose(_voxels(), [0.0, 1.0], [1.0, 4.0], current=(1.0, 1.0))
    assert weight == 0.0
    assert tried['w=0,T=1']['AP'] >= tried['w=1,T=1']['AP']
    # T = 1 leaves the hardest positives below 0.01 (FPR95 1.0); T = 4 brings them onto the grid.
    assert tried['w=0,T=1']['FPR95'] == 1.0 and tried['w=0,T=4']['FPR95'] < 1.0
    assert temperature == 4.0
    assert tried['w=0,T=4']['AP'] == pytest.approx(tried['w=0,T=1']['AP'])  # same ranking


def test_empty_candidate_lists_keep_the_current_rule():
    assert choose(_voxels(), [], [], current=(0.5, 3.0))[:2] == (0.5, 3.0)


def test_smoothing_choice_takes_the_largest_window_within_the_ap_tolerance_of_the_best():
    positive = np.array([True, True, False, False, False])
    ranked = np.array([0.9, 0.8, 0.3, 0.2, 0.1])  # AP 1
    mixed = np.array([0.9, 0.2, 0.3, 0.25, 0.1])  # one positive below two negatives: AP 0.75
    size, tried = choose_smoothing({1: mixed, 3: ranked, 5: mixed}, positive)
    assert size == 3 and tried[3]['AP'] == 1.0 and tried[5]['AP'] < 1.0 - AP_TOLERANCE
    assert choose_smoothing({1: ranked, 3: ranked, 5: mixed}, positive)[0] == 3  # a tie goes to the larger


def test_lidar_gate_choice_takes_the_tightest_gate_within_the_ap_tolerance_and_no_gate_as_the_loosest():
    positive = np.array([True, True, False, False, False])
    ranked = np.array([0.9, 0.8, 0.3, 0.2, 0.1])  # AP 1
    mixed = np.array([0.9, 0.2, 0.3, 0.25, 0.1])  # AP 0.75
    side, tried = choose_support({0: ranked, 1: mixed, 3: ranked, 9: ranked}, positive)
    assert side == 3 and tried[1]['AP'] < 1.0 - AP_TOLERANCE
    assert choose_support({0: ranked, 1: mixed, 3: mixed}, positive)[0] == 0  # every gate costs AP: none
    assert choose_support({0: mixed, 1: ranked, 5: ranked}, positive)[0] == 1


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
    """A tiny run whose training did not tune its score rule (empty candidate lists)."""
    root = tmp_path_factory.mktemp('tuning')
    train_dir = make_split(root / 'train', 'train', scenarios=1, frames=4, seed=21)
    val_dir = make_split(root / 'val', 'val', scenarios=2, frames=2, seed=22)
    config = tiny_config(root, train_dir, val_dir, epochs=1)
    config['model']['grid'] = {**config['model']['grid'], 'x_max_m': 28.0, 'y_min_m': -8.0, 'y_max_m': 8.0}
    for key in ('semantic_weights', 'anomaly_temperatures', 'score_smoothings', 'lidar_supports'):
        config['eval'][key] = []
    torch.set_num_threads(1)
    train(config)
    return root / 'run', val_dir


@pytest.mark.slow
def test_cli_tunes_a_trained_run_and_writes_the_choice_into_every_checkpoint(trained_run, capsys):
    run, val_dir = trained_run
    best, last = run / 'best.pt', run / 'last.pt'
    args = ['--checkpoint', str(best), '--checkpoint', str(last), '--data', str(val_dir), '--threads', '1']
    before = {p: checkpoint_calibration(read_checkpoint(p), p) for p in (best, last)}
    assert all(c.score_rule_chosen_on.configured for c in before.values())  # written, not chosen, by training
    tune = ['--semantic-weights', '0', '--temperatures', '1', '2', '--smoothings', '1', '3']
    tune += ['--lidar-supports', '0', '3']
    code = main([*args, *tune])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out
    assert 'score_smoothing=' in out
    states = {p: read_checkpoint(p) for p in (best, last)}
    after = {p: checkpoint_calibration(state, p) for p, state in states.items()}
    rule = after[best].score_rule
    assert rule == after[last].score_rule
    assert rule.semantic_weight == 0.0 and rule.anomaly_temperature in (1.0, 2.0) and rule.score_smoothing in (1, 3)
    assert rule.lidar_support in (0, 3)
    frames = _cached_val_frames(states[best]['config'], val_dir)
    for path, calibration in after.items():
        # Each keeps its own threshold; the rule records the folders and frames it was chosen on.
        assert calibration.occupancy_threshold == before[path].occupancy_threshold
        assert calibration.score_rule_chosen_on == ChosenOn(('val',), data_hash(frames))
    tried = states[best]['score_tuning']
    prefix = f'w=0,T={rule.anomaly_temperature:g}'
    assert {f'{prefix},smoothing={k}' for k in (1, 3)} <= set(tried)
    # The gate is scored on the smoothed score the rule chose.
    assert {f'{prefix},smoothing={rule.score_smoothing},lidar_support={k}' for k in (0, 3)} <= set(tried)
    # Then the operating point, on the same frames scored by that rule, into both.
    assert after[best].operating_point == after[last].operating_point
    assert after[best].operating_point_chosen_on == ChosenOn(('val',), data_hash(frames))
    record = states[best]['operating_point_tuning']
    assert record['chosen'] == after[best].operating_point.to_dict()
    assert len(record['tried']) == len(ANOMALY_THRESHOLDS) * len(MIN_COMPONENT_POINTS)
    assert 'operating point chosen on validation' in out


def _cached_val_frames(config, val_dir):
    spec = model_config_of(config).input_spec()
    refs = evenly_spread(frame_refs(resolve_scenarios([val_dir])), config['eval']['tune_max_frames'])
    return SampleCache(config['data']['cache_dir'], spec).ensure(refs)


@pytest.mark.parametrize(
    ('extra', 'message'),
    [
        (['--smoothings', '4'], 'odd integers >= 1'),
        (['--lidar-supports', '2'], '--lidar-supports must be 0 (no gate) or odd integers'),
        (['--temperatures', '0'], 'must be > 0'),
        (['--semantic-weights', '-1'], 'must be >= 0'),
        (['--threads', '0'], '--threads must be >= 1'),
        (['--max-frames', '0'], '--max-frames must be >= 1'),
    ],
)
def test_cli_refuses_bad_candidates(tmp_path, capsys, extra, message):
    assert main(['--checkpoint', str(tmp_path / 'x.pt'), '--data', str(tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_cli_names_a_missing_checkpoint(tmp_path, capsys):
    assert main(['--checkpoint', str(tmp_path / 'missing.pt'), '--data', str(tmp_path)]) == 2
    assert 'missing.pt does not exist' in capsys.readouterr().err
