"""Training: bit-for-bit resume, data order, camera dropout, calibration, non-finite loss."""

from __future__ import annotations

import copy
import csv

import numpy as np
import pytest
import torch
from tiny_data import make_split, tiny_config

from anovox_perception.core.calibration import Calibration, ChosenOn, ScoreRule
from anovox_perception.core.errors import DataError
from anovox_training.data.cache import data_hash
from anovox_training.model import load_checkpoint
from anovox_training.model.checkpoint import checkpoint_calibration, model_config_of
from anovox_training.train.config import training_config
from anovox_training.train.losses import DetectorLoss
from anovox_training.train.trainer import (
    THRESHOLD_GRID,
    CachedDataset,
    DistContext,
    TrainingError,
    _camera_dropout,
    _prepare_data,
    calibrate_threshold,
    epoch_batches,
    train,
)

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny')
    return make_split(root / 'train', 'train', scenarios=1, frames=6, seed=3)


def _states(path):
    ckpt = torch.load(path, weights_only=True)
    return ckpt['model'], ckpt['optimizer'], ckpt['step']


def test_resumed_training_ends_with_the_same_weights_as_an_uninterrupted_run(data, tmp_path):
    # 6 frames, batch 2 -> 3 steps per epoch, 2 epochs; the interruption falls mid-epoch.
    # Mirroring on: its per-step choices must repeat after the resume too.
    whole = tiny_config(tmp_path / 'whole', data, mirror=0.5)
    last = train(whole)
    interrupted = tiny_config(tmp_path / 'split', data, stop_at_step=2, mirror=0.5)
    first = train(interrupted)
    assert _states(first)[2] == 2
    resumed = copy.deepcopy(interrupted)
    resumed['train']['stop_at_step'] = None
    second = train(resumed, resume=True)
    model_a, optim_a, step_a = _states(last)
    model_b, optim_b, step_b = _states(second)
    assert step_a == step_b == 6
    for key in model_a:
        torch.testing.assert_close(model_a[key], model_b[key], rtol=0, atol=0, msg=key)
    for (_, a), (_, b) in zip(sorted(optim_a['state'].items()), sorted(optim_b['state'].items()), strict=True):
        torch.testing.assert_close(a['exp_avg'], b['exp_avg'], rtol=0, atol=0)
    with (tmp_path / 'split' / 'run' / 'train_log.csv').open() as fh:
        steps = [int(row['step']) for row in csv.DictReader(fh)]
    assert steps == [1, 2, 3, 4, 5, 6]  # one row per step, none duplicated by the resume


def test_checkpoint_records_config_spec_and_data_hash_and_reloads(data, tmp_path):
    path = train(tiny_config(tmp_path, data, epochs=1))
    model, config, ckpt = load_checkpoint(path)
    assert config['model']['name'] == 'tiny' and ckpt['input_spec'] == model.input_spec.to_dict()
    assert len(ckpt['data_hash']) == 16 and ckpt['epoch'] == 1
    # Without validation data nothing is chosen: the configured threshold and score rule.
    assert checkpoint_calibration(ckpt, path) == Calibration(0.5, ScoreRule(), ChosenOn(), ChosenOn())
    with (tmp_path / 'run' / 'train_log.csv').open() as fh:
        row = next(csv.DictReader(fh))
    for term in ('occupancy', 'semantic', 'anomaly', 'outlier_exposure', 'samples_per_s'):
        assert np.isfinite(float(row[term]))
    assert float(row['occupancy']) > 0 and float(row['semantic']) > 0


def test_a_non_finite_loss_stops_training_with_the_step_in_the_message(data, tmp_path, monkeypatch):
    original = DetectorLoss.forward

    def broken(self, logits, labels):
        total, terms = original(self, logits, labels)
        return total * float('nan'), terms

    monkeypatch.setattr(DetectorLoss, 'forward', broken)
    with pytest.raises(TrainingError, match='non-finite loss at step 0'):
        train(tiny_config(tmp_path, data))


def test_epoch_batches_are_seeded_permutations_split_evenly_over_ranks():
    a = epoch_batches(10, 2, seed=1, epoch=0)
    assert a == epoch_batches(10, 2, seed=1, epoch=0) and a != epoch_batches(10, 2, seed=1, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(10))
    r0, r1 = (epoch_batches(11, 2, seed=1, epoch=0, rank=r, world=2) for r in (0, 1))
    assert len(r0) == len(r1) == 2  # 11 frames, 2 ranks x 2 per step: 8 used, same count per rank
    assert not {i for b in r0 for i in b} & {i for b in r1 for i in b}


def test_camera_dropout_is_deterministic_per_step_and_drops_about_the_requested_share():
    valid = torch.ones(1000, 1)
    a = _camera_dropout(valid, 0.3, seed=0, step=5, rank=0)
    assert torch.equal(a, _camera_dropout(valid, 0.3, seed=0, step=5, rank=0))
    assert not torch.equal(a, _camera_dropout(valid, 0.3, seed=0, step=6, rank=0))
    assert 0.25 < 1 - a.mean().item() < 0.35
    assert torch.equal(_camera_dropout(valid, 0.0, seed=0, step=5, rank=0), valid)


def test_calibration_picks_the_highest_threshold_that_reaches_the_coverage():
    occupancy = np.array([0.9] * 90 + [0.35] * 6 + [0.01] * 4)
    assert calibrate_threshold(occupancy, 0.9) == 0.5
    assert calibrate_threshold(occupancy, 0.95) == 0.3
    assert calibrate_threshold(occupancy, 1.0) == 0.01 == THRESHOLD_GRID[-1]


@pytest.mark.slow
def test_validation_keeps_the_best_checkpoint_and_tunes_the_score_rule(tmp_path_factory, tmp_path):
    root = tmp_path_factory.mktemp('tiny_val')
    train_dir = make_split(root / 'train', 'train', scenarios=1, frames=4, seed=21)
    val_dir = make_split(root / 'val', 'val', scenarios=2, frames=2, seed=22)
    config = tiny_config(tmp_path, train_dir, val_dir, epochs=1)
    # A grid reaching 30 m ahead, so the validation anomalies fall inside it.
    config['model']['grid'] = {**config['model']['grid'], 'x_max_m': 28.0, 'y_min_m': -8.0, 'y_max_m': 8.0}
    config['eval']['semantic_weights'] = [0.0, 2.0]
    config['eval']['anomaly_temperatures'] = [1.0, 4.0]
    config['eval']['score_smoothings'] = [1, 3]
    config['eval']['lidar_supports'] = [0, 3]
    train(config)
    best = torch.load(tmp_path / 'run' / 'best.pt', weights_only=True)
    calibration = checkpoint_calibration(best, 'best.pt')
    rule = calibration.score_rule
    weight, temperature = rule.semantic_weight, rule.anomaly_temperature
    assert weight in (0.0, 2.0) and temperature in (1.0, 4.0) and rule.score_smoothing in (1, 3)
    assert {'w=0,T=1', 'w=2,T=1', f'w={weight:g},T=4'} <= set(best['score_tuning'])
    assert {f'w={weight:g},T={temperature:g},smoothing={k}' for k in (1, 3)} <= set(best['score_tuning'])
    gated = {f'w={weight:g},T={temperature:g},smoothing={rule.score_smoothing},lidar_support={k}' for k in (0, 3)}
    assert gated <= set(best['score_tuning']) and rule.lidar_support in (0, 3)
    assert calibration.occupancy_threshold in THRESHOLD_GRID
    # Both were chosen on the validation frames (no data.tune), whose cached samples the hash identifies.
    val_paths = _prepare_data(training_config(config), model_config_of(config).input_spec(), DistContext()).val
    assert (
        calibration.threshold_chosen_on == calibration.score_rule_chosen_on == ChosenOn(('val',), data_hash(val_paths))
    )
    # The model config is the architecture only; the model loads with the chosen rule.
    assert not {'semantic_weight', 'anomaly_temperature', 'score_smoothing'} & set(best['config']['model'])
    assert load_checkpoint(tmp_path / 'run' / 'best.pt')[0].score_rule == rule
    with (tmp_path / 'run' / 'val_log.csv').open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and float(rows[0]['Anomalies_Only_coverage']) >= 0


def test_the_score_rule_frames_come_from_data_tune_or_else_from_validation(data, tmp_path_factory, tmp_path):
    root = tmp_path_factory.mktemp('tiny_tune')
    val_dir = make_split(root / 'val', 'val', scenarios=1, frames=2, seed=22)
    more_dir = make_split(root / 'val_more', 'val', scenarios=2, frames=2, seed=23)
    config = tiny_config(tmp_path, data, val_dir)
    spec = model_config_of(config).input_spec()
    paths = _prepare_data(training_config(config), spec, DistContext())
    assert len(paths.train) == 6 and len(paths.val) == 2 and paths.tune == paths.val
    # A larger split for the one-off score-rule choice, capped by eval.tune_max_frames; validation unchanged.
    config['data']['tune'] = [str(val_dir), str(more_dir)]
    config['eval']['tune_max_frames'] = 5
    paths = _prepare_data(training_config(config), spec, DistContext())
    assert len(paths.val) == 2 and len(paths.tune) == 5 and len(set(paths.tune)) == 5
    assert all(p.is_file() for p in paths.tune)  # cached before tuning needs them
    config['data']['tune'] = [str(root / 'missing')]
    with pytest.raises(DataError, match='missing does not exist'):
        _prepare_data(training_config(config), spec, DistContext())


def test_sigterm_saves_a_checkpoint_and_resume_finishes_the_run(data, tmp_path, monkeypatch):
    import os
    import signal

    from anovox_training.train import trainer as train_module

    original = train_module._camera_dropout

    def dropout_then_signal(valid, p, seed, step, rank):
        if step == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler preempting the job
        return original(valid, p, seed, step, rank)

    monkeypatch.setattr(train_module, '_camera_dropout', dropout_then_signal)
    config = tiny_config(tmp_path, data)
    with pytest.raises(train_module.TrainingInterrupted, match='interrupted by a signal at step 2'):
        train(config)
    assert _states(tmp_path / 'run' / 'last.pt')[2] == 2
    monkeypatch.setattr(train_module, '_camera_dropout', original)
    assert _states(train(config, resume=True))[2] == 6


def test_a_warm_started_run_begins_from_the_source_weights_and_a_resume_does_not_reload_them(data, tmp_path):
    lidar = train(tiny_config(tmp_path / 'lidar', data, epochs=1), resume=False)
    source = torch.load(lidar, weights_only=True)['model']
    # lr 0: the weights stay where the warm start put them (batch norm statistics still move).
    config = tiny_config(tmp_path / 'fusion', data, epochs=1, lr=0.0, init_from=str(lidar))
    config['model']['modality'] = 'fusion'
    weights = torch.load(train(config), weights_only=True)['model']
    convs = [k for k in source if k.endswith('.weight') and source[k].dim() == 4]
    assert convs
    for key in convs:
        torch.testing.assert_close(weights[key], source[key], rtol=0, atol=0, msg=key)
    fresh = train(tiny_config(tmp_path / 'fresh', data, epochs=1, lr=0.0))
    assert not torch.equal(torch.load(fresh, weights_only=True)['model'][convs[0]], source[convs[0]])
    # A resume continues from last.pt, whatever init_from names.
    config['train']['init_from'] = str(tmp_path / 'missing.pt')
    config['train']['epochs'] = 2
    resumed = torch.load(train(config, resume=True), weights_only=True)['model']
    torch.testing.assert_close(resumed[convs[0]], source[convs[0]], rtol=0, atol=0)


def test_a_model_that_ignores_intensity_trains_on_a_zero_intensity_channel_and_records_it(data, tmp_path):
    from anovox_training.train.augment import intensity_channel

    config = tiny_config(tmp_path, data, epochs=1, intensity_aug=1.0, intensity_drop=0.0)
    config['model']['lidar_intensity'] = 'ignore'
    model, _, ckpt = load_checkpoint(train(config))
    assert ckpt['input_spec']['lidar_intensity'] == 'ignore' and model.input_spec.lidar_intensity == 'ignore'
    spec = model_config_of(config).input_spec()
    paths = _prepare_data(training_config(config), spec, DistContext())
    channel = intensity_channel(spec.grid)
    assert all(not CachedDataset(paths.train, spec)[i]['bev'][channel].any() for i in range(len(paths.train)))
