"""Training config: the shipped YAML validates; bad keys, types and ranges fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from anovox_perception.core.calibration import ScoreRule
from anovox_perception.core.errors import ConfigError
from anovox_training.model import ModelConfig
from anovox_training.train.config import (
    DEFAULTS,
    TrainingConfig,
    configured_score_rule,
    load_config,
    parse_overrides,
    resolve_config,
    training_config,
)
from anovox_training.train.trainer import get_args_parser, main

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_yaml_sets_every_default_key_and_resolves_to_the_base_model():
    import yaml

    raw = yaml.safe_load((REPO / 'config' / 'train.yaml').read_text())
    for section, values in DEFAULTS.items():
        if isinstance(values, dict) and section != 'model':
            assert set(raw[section]) == set(values), section
    config = load_config(REPO / 'config' / 'train.yaml')
    assert ModelConfig.from_dict(config['model']) == ModelConfig.base()


def test_overrides_parse_yaml_scalars_into_nested_keys():
    assert parse_overrides(['train.lr=1e-3', 'model.preset=tiny', 'data.val=[]', 'train.stop_at_step=null']) == {
        'train': {'lr': '1e-3', 'stop_at_step': None},  # YAML 1.1 keeps it a string; validation converts
        'model': {'preset': 'tiny'},
        'data': {'val': []},
    }
    with pytest.raises(ConfigError, match='expected key.path=value'):
        parse_overrides(['train.lr'])


def test_cli_overrides_reach_the_resolved_config():
    overrides = ['model.preset=tiny', 'model.modality=lidar', 'train.epochs=7', 'train.lr=1e-3']
    config = load_config(REPO / 'config' / 'train.yaml', overrides)
    assert config['train']['epochs'] == 7 and config['train']['lr'] == 1e-3
    assert config['model']['modality'] == 'lidar' and config['model']['name'] == 'tiny'


@pytest.mark.parametrize(
    ('user', 'message'),
    [
        ({'train': {'lrate': 1}}, r"unknown key 'train.lrate'"),
        ({'train': {'lr': 'fast'}}, r'train.lr must be a number'),
        ({'train': {'epochs': 1.5}}, r'train.epochs must be an integer'),
        ({'train': {'camera_dropout': 1.5}}, r'train.camera_dropout=1.5 is out of range \[0.0, 1.0\]'),
        ({'train': {'progress': 'yes'}}, r'train.progress must be true or false'),
        ({'train': {'mirror': -0.1}}, r'train.mirror=-0.1 is out of range \[0.0, 1.0\]'),
        (
            {'train': {'mirror': 0.5}, 'model': {'grid': {'y_min_m': -40.0, 'y_max_m': 30.0}}},
            r'model: train.mirror needs a grid symmetric in y',
        ),
        ({'train': {'init_from': 3}}, r'train.init_from must be a checkpoint path or null, got 3'),
        ({'eval': {'score_smoothings': [1, 4]}}, r'eval.score_smoothings must be a list of odd integers >= 1'),
        ({'eval': {'score_smoothings': 3}}, r'eval.score_smoothings must be a list of odd integers >= 1'),
        ({'eval': {'lidar_supports': [0, 2]}}, r'eval.lidar_supports must be a list of 0 \(no gate\) or odd'),
        ({'eval': {'lidar_supports': [True]}}, r'eval.lidar_supports must be a list of 0 \(no gate\) or odd'),
        ({'eval': {'lidar_support': -1}}, r'eval.lidar_support must be 0 \(no gate\) or an odd integer'),
        ({'eval': {'anomaly_temperatures': [0]}}, r'eval.anomaly_temperatures must be a list of numbers > 0'),
        ({'eval': {'semantic_weight': -1}}, r'eval.semantic_weight must be a number >= 0, got -1'),
        ({'eval': {'anomaly_temperature': 0}}, r'eval.anomaly_temperature must be a number > 0, got 0'),
        ({'eval': {'score_smoothing': 4}}, r'eval.score_smoothing must be an odd integer >= 1 \(1: none\), got 4'),
        (
            {'model': {'score_smoothing': 5}},
            r'model: ModelConfig: score_smoothing is not a model key any more: .* set eval.score_smoothing',
        ),
        ({'data': {'train': []}}, r'data.train must be a path or a non-empty list'),
        ({'data': {'tune': [3]}}, r'data.tune must be a list of paths, got \[3\]'),
        ({'eval': {'tune_max_frames': 0}}, r'eval.tune_max_frames=0 is out of range'),
        ({'eval': {'max_false_alarms_per_frame': -0.5}}, r'eval.max_false_alarms_per_frame=-0.5 is out of range'),
        ({'model': {'preset': 'huge'}}, r"model.preset must be one of \['base', 'tiny'\]"),
        ({'model': {'modality': 'radar'}}, r'model: ModelConfig.modality must be one of'),
        ({'train': 3}, r'train must be a mapping'),
        ({'data': {'on_bad_frame': 'ignore'}}, r"data.on_bad_frame must be one of \['skip', 'stop'\], got 'ignore'"),
        ({'train': {'intensity_aug': 2}}, r'train.intensity_aug=2.0 is out of range \[0.0, 1.0\]'),
        ({'train': {'intensity_drop': -1}}, r'train.intensity_drop=-1.0 is out of range \[0.0, 1.0\]'),
        (
            {'model': {'lidar_intensity': 'half'}},
            r"model: ModelConfig.lidar_intensity must be one of \('use', 'ignore'\)",
        ),
    ],
)
def test_invalid_configs_fail_with_the_key_and_file_named(user, message):
    with pytest.raises(ConfigError, match=f'^cfg.yaml: {message}'):
        resolve_config(user, where='cfg.yaml')


def test_the_score_rule_is_set_under_eval_and_a_model_override_names_the_new_key(capsys):
    config = load_config(REPO / 'config' / 'train.yaml', ['eval.score_smoothing=5', 'eval.semantic_weight=0'])
    assert configured_score_rule(config) == ScoreRule(semantic_weight=0.0, anomaly_temperature=1.0, score_smoothing=5)
    assert configured_score_rule(load_config(REPO / 'config' / 'train.yaml')) == ScoreRule()
    assert main(['--config', str(REPO / 'config' / 'train.yaml'), '--set', 'model.semantic_weight=2']) == 2
    assert 'semantic_weight is not a model key any more' in capsys.readouterr().err


def test_the_cli_reports_config_errors_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('train: {epochs: 0}\n')
    assert main(['--config', str(bad)]) == 2
    assert 'train.epochs=0 is out of range' in capsys.readouterr().err
    assert get_args_parser().parse_args(['--config', 'x', '--set', 'a=1', '--resume']).resume


def test_a_relative_warm_start_checkpoint_is_taken_from_the_base_folder(tmp_path):
    config = resolve_config({'train': {'init_from': 'runs/lidar/last.pt'}}, base_dir=tmp_path)
    assert config['train']['init_from'] == str(tmp_path / 'runs/lidar/last.pt')
    assert resolve_config({}, base_dir=tmp_path)['train']['init_from'] is None


@pytest.mark.parametrize(
    'overrides',
    [[], ['model.preset=tiny', 'train.stop_at_step=7', 'train.init_from=runs/lidar/last.pt', 'data.tune=[d/val]']],
    ids=['shipped', 'overridden'],
)
def test_the_typed_config_gives_back_the_resolved_dict_key_for_key(overrides):
    import json

    resolved = load_config(REPO / 'config' / 'train.yaml', overrides)
    typed = training_config(resolved)
    assert isinstance(typed, TrainingConfig) and isinstance(typed.model, ModelConfig)
    assert typed.model == ModelConfig.from_dict(resolved['model'])
    assert typed.data.train == tuple(resolved['data']['train']) and typed.eval.score_rule == ScoreRule()
    assert typed.train.stop_at_step == resolved['train']['stop_at_step']
    # Equal values, types and key order: what checkpoints store and recipe ids hash is unchanged.
    assert json.dumps(typed.to_dict()) == json.dumps(resolved)


def test_settings_apply_after_the_file_and_before_the_overrides():
    config = load_config(
        REPO / 'config' / 'train.yaml',
        ['train.epochs=5'],
        [{'train': {'epochs': 3, 'lr': 0.01}, 'model': {'preset': 'tiny'}}, {'train': {'epochs': 4}}],
    )
    assert config['train']['epochs'] == 5 and config['train']['lr'] == 0.01 and config['model']['name'] == 'tiny'
    with pytest.raises(ConfigError, match=r"train.yaml \(settings\): unknown key 'train.epoch'"):
        load_config(REPO / 'config' / 'train.yaml', settings=[{'train': {'epoch': 3}}])


def test_a_typed_config_needs_exactly_the_keys_of_a_resolved_config():
    resolved = load_config(REPO / 'config' / 'train.yaml')
    del resolved['eval']['min_coverage']
    resolved['eval']['min_cover'] = 0.9
    with pytest.raises(ConfigError, match=r"eval has missing keys \['min_coverage'\] and unknown keys \['min_cover'\]"):
        training_config(resolved)
    with pytest.raises(ConfigError, match=r"the top level has missing keys \['loss'\]"):
        training_config({k: v for k, v in load_config(REPO / 'config' / 'train.yaml').items() if k != 'loss'})
    broken = load_config(REPO / 'config' / 'train.yaml')
    broken['model']['modality'] = 'radar'
    with pytest.raises(ConfigError, match='training config: model: .*modality must be one of'):
        training_config(broken)
