"""Upgrading files of the previous version: the calibration section from the fields it read, nothing else changes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from anovox_perception.core.calibration import UNRECORDED, Calibration, ChosenOn, OperatingPoint, ScoreRule
from anovox_perception.core.errors import DataError, ModelCardError
from anovox_perception.core.model_card import CARD_METADATA_KEY, card_path_for, load_card
from anovox_training.export.run import export_model
from anovox_training.export.run import main as export_main
from anovox_training.export.upgrade_calibration import main, upgrade_card_dict, upgrade_checkpoint_dict
from anovox_training.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
from anovox_training.model.checkpoint import checkpoint_calibration, read_checkpoint
from anovox_training.model.config import SCORE_RULE_KEYS

torch.set_num_threads(1)
RULE = ScoreRule(semantic_weight=0.0, anomaly_temperature=2.0, score_smoothing=3)
# The score rule as the previous versions kept it in the model config (no LiDAR gate then).
OLD_RULE_KEYS = {k: v for k, v in RULE.to_dict().items() if k in SCORE_RULE_KEYS}
OLD_EVAL = {'occupancy_threshold': 0.5, 'calibrate_occupancy': True, 'semantic_weights': [0.0, 1.0]}


def _old_training_config(model: dict, threshold: float | None) -> dict:
    """A training config as the previous exporter put it into the card."""
    config = {
        'data': {'train': ['data/synth/train'], 'val': ['data/synth/val'], 'tune': ['data/synth/val_large']},
        'eval': dict(OLD_EVAL),
        'model': {**model, **OLD_RULE_KEYS},
    }
    if threshold is not None:
        config['occupancy_threshold'] = threshold
    return config


@pytest.fixture
def old_model(tmp_path: Path) -> Path:
    """An exported model whose card has the previous layout (no calibration; threshold and rule elsewhere)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig.tiny())
    export_model(model, tmp_path, calibration=Calibration(0.2, RULE), name='old', write_program=False)
    path = tmp_path / 'old.onnx'
    proto = onnx.load(str(path))
    entry = next(e for e in proto.metadata_props if e.key == CARD_METADATA_KEY)
    card = json.loads(entry.value)
    del card['calibration']
    card['training_config'] = _old_training_config(card['training_config']['model'], 0.2)
    entry.value = json.dumps(card)
    path.write_bytes(proto.SerializeToString())
    card_path_for(path).write_text(json.dumps(card, indent=2) + '\n')
    return path


def test_an_upgraded_model_keeps_its_graph_and_gets_the_threshold_and_rule_it_ran_with(old_model: Path, capsys) -> None:
    with pytest.raises(ModelCardError, match=rf'no calibration section .*upgrade_calibration {old_model}$'):
        load_card(old_model)
    graph = [bytes(n.SerializeToString()) for n in onnx.load(str(old_model)).graph.node]
    assert main([str(old_model)]) == 0
    assert 'upgraded' in capsys.readouterr().out
    card = load_card(old_model, verify=True)  # the graph hash still matches
    assert card == load_card(card_path_for(old_model))
    assert [bytes(n.SerializeToString()) for n in onnx.load(str(old_model)).graph.node] == graph
    assert card.calibration == Calibration(
        0.2, RULE, ChosenOn(('val',), UNRECORDED), ChosenOn(('val_large',), UNRECORDED)
    )
    assert 'occupancy_threshold' not in card.training_config
    assert ModelConfig.from_dict(card.training_config['model']) == ModelConfig.tiny()
    assert card.training_config['eval'] == OLD_EVAL  # the training settings stay as recorded
    # Running it again changes nothing.
    before = old_model.read_bytes()
    assert main([str(old_model)]) == 0 and old_model.read_bytes() == before
    assert 'its calibration is complete' in capsys.readouterr().out


def test_the_folders_can_be_named_when_the_config_does_not_say(old_model: Path) -> None:
    assert main([str(old_model), '--score-rule-chosen-on', 'val', 'val_large']) == 0
    assert load_card(old_model).calibration.score_rule_chosen_on.folders == ('val', 'val_large')


@pytest.mark.parametrize(
    ('copied', 'evaluation', 'threshold', 'calibrated'),
    [
        (0.2, OLD_EVAL, 0.2, True),  # the exporter's copy of the calibrated threshold wins
        (None, {**OLD_EVAL, 'occupancy_threshold': 0.4}, 0.4, False),  # else the configured one
        (None, {}, 0.5, False),  # else what the runtime fell back to
        (0.3, {**OLD_EVAL, 'calibrate_occupancy': False}, 0.3, False),
    ],
)
def test_a_card_gets_the_occupancy_threshold_the_previous_runtime_read(copied, evaluation, threshold, calibrated):
    config = _old_training_config(ModelConfig.tiny().to_dict(), copied)
    config['eval'] = evaluation
    calibration = Calibration.from_dict(upgrade_card_dict({'name': 'x', 'training_config': config})['calibration'])
    assert calibration.occupancy_threshold == threshold
    assert calibration.threshold_chosen_on == (ChosenOn(('val',), UNRECORDED) if calibrated else ChosenOn())
    # No candidate lists: the rule was the configured one.
    assert calibration.score_rule_chosen_on.configured == (not evaluation.get('semantic_weights'))


def _old_checkpoint(model: torch.nn.Module, **extra) -> dict:
    config = {
        'model': {**model.config.to_dict(), **OLD_RULE_KEYS},
        'data': {'train': ['t'], 'val': ['data/val'], 'tune': [], 'cache_dir': 'c'},
        'eval': dict(OLD_EVAL, val_every_epochs=1),
        'train': {'epochs': 2},
    }
    return {'model': model.state_dict(), 'config': config, 'input_spec': model.input_spec.to_dict(), **extra}


def test_an_old_checkpoint_upgrades_loads_with_its_rule_and_exports_the_same_graph(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig.tiny(), RULE).eval()
    path = save_checkpoint(
        tmp_path / 'best.pt', _old_checkpoint(model, epoch=1, occupancy_threshold=0.3, score_tuning={})
    )
    with pytest.raises(DataError, match=rf'has no calibration section .*upgrade_calibration {path}'):
        load_checkpoint(path)
    assert main([str(path)]) == 0
    ckpt = read_checkpoint(path)
    assert 'occupancy_threshold' not in ckpt
    assert checkpoint_calibration(ckpt, path) == Calibration(
        0.3, RULE, ChosenOn(('val',), UNRECORDED), ChosenOn(('val',), UNRECORDED)
    )
    loaded, _, _ = load_checkpoint(path)
    assert loaded.score_rule == RULE
    # Exported, it computes what the previous model computed.
    assert export_main(['--checkpoint', str(path), '--out', str(tmp_path / 'out'), '--no-program']) == 0
    onnx_path = tmp_path / 'out' / 'anovox_tiny.onnx'
    assert load_card(onnx_path).calibration == checkpoint_calibration(ckpt, path)
    inputs = model.example_inputs()
    session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    ours = session.run(['occupancy', 'anomaly'], {k: v.numpy() for k, v in inputs.items()})
    with torch.no_grad():
        for got, want in zip(ours, model(*inputs.values()), strict=True):
            np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-4)


def test_a_checkpoint_saved_before_any_validation_or_choice_records_configured_values() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig.tiny())
    state = upgrade_checkpoint_dict(_old_checkpoint(model, epoch=0, occupancy_threshold=0.5))
    calibration = Calibration.from_dict(state['calibration'])
    assert calibration.threshold_chosen_on.configured and calibration.score_rule_chosen_on.configured
    assert calibration.occupancy_threshold == 0.5


def test_files_of_other_kinds_are_refused(tmp_path: Path, capsys) -> None:
    other = tmp_path / 'notes.txt'
    other.write_text('x')
    assert main([str(other)]) == 1
    assert 'expected an .onnx model, a .json model card or a .pt checkpoint' in capsys.readouterr().err
    assert main([str(tmp_path / 'missing.json')]) == 1
    assert 'no such model card' in capsys.readouterr().err


def test_the_shipped_model_was_upgraded_from_the_fields_the_runtime_read() -> None:
    card = load_card(Path(__file__).resolve().parents[2] / 'models' / 'anovox_base.onnx', verify=True)
    previous = copy.deepcopy(card.to_dict())
    del previous['calibration']
    previous['training_config']['occupancy_threshold'] = 0.2
    rule = card.calibration.score_rule.to_dict()
    previous['training_config']['model'].update({k: rule[k] for k in SCORE_RULE_KEYS})
    redone = upgrade_card_dict(previous, score_rule_folders=['val', 'val_large'])
    assert redone['calibration'] == card.calibration.to_dict()


# The node's marker rule before calibrations carried an operating point, configured (chosen on no data).
PREVIOUS_MARKER_RULE = OperatingPoint(anomaly_threshold=0.5, min_component_points=0)


def _without_operating_point(section: dict) -> dict:
    return {k: v for k, v in section.items() if k not in ('operating_point', 'operating_point_chosen_on')}


def test_a_calibration_without_the_operating_point_gets_the_rule_the_node_used(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    chosen = Calibration(0.2, RULE, ChosenOn(('val',), 'ab12'), ChosenOn(('val', 'val_large'), 'cd34'))
    export_model(build_model(ModelConfig.tiny()), tmp_path, calibration=chosen, name='m', write_program=False)
    path = tmp_path / 'm.onnx'
    proto = onnx.load(str(path))
    entry = next(e for e in proto.metadata_props if e.key == CARD_METADATA_KEY)
    card = json.loads(entry.value)
    card['calibration'] = _without_operating_point(card['calibration'])
    entry.value = json.dumps(card)
    path.write_bytes(proto.SerializeToString())
    card_path_for(path).write_text(json.dumps(card, indent=2) + '\n')
    graph = proto.graph.SerializeToString()
    with pytest.raises(ModelCardError, match=rf'calibration has no operating point .*upgrade_calibration {path}$'):
        load_card(path)
    assert main([str(path)]) == 0
    upgraded = load_card(path, verify=True)  # still names the same graph
    assert onnx.load(str(path)).graph.SerializeToString() == graph
    assert load_card(card_path_for(path)) == upgraded
    # Everything chosen before stays; the operating point is the one the node used, recorded as configured.
    assert upgraded.calibration == Calibration(
        0.2,
        RULE,
        ChosenOn(('val',), 'ab12'),
        ChosenOn(('val', 'val_large'), 'cd34'),
        operating_point=PREVIOUS_MARKER_RULE,
        operating_point_chosen_on=ChosenOn(),
    )
    capsys.readouterr()
    assert main([str(path)]) == 0 and 'its calibration is complete' in capsys.readouterr().out


def test_a_checkpoint_calibrated_without_the_operating_point_is_refused_then_upgraded(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig.tiny(), RULE)
    chosen = Calibration(0.3, RULE, ChosenOn(('val',), 'ab12'), ChosenOn(('val',), 'ab12'))
    state = _old_checkpoint(model, epoch=1, calibration=_without_operating_point(chosen.to_dict()))
    state['config']['model'] = model.config.to_dict()
    path = save_checkpoint(tmp_path / 'best.pt', state)
    with pytest.raises(DataError, match=rf'calibration has no operating point .*upgrade_calibration {path}'):
        load_checkpoint(path)
    assert main([str(path)]) == 0
    upgraded = read_checkpoint(path)
    assert checkpoint_calibration(upgraded, path) == Calibration(
        0.3, RULE, ChosenOn(('val',), 'ab12'), ChosenOn(('val',), 'ab12'), PREVIOUS_MARKER_RULE, ChosenOn()
    )
    assert upgraded['config'] == state['config'] and upgraded['epoch'] == 1
    # A checkpoint of the version before the section gets the same operating point with the rest.
    old = upgrade_checkpoint_dict(_old_checkpoint(model, epoch=0, occupancy_threshold=0.5))
    assert Calibration.from_dict(old['calibration']).operating_point == PREVIOUS_MARKER_RULE


def test_the_shipped_model_runs_at_the_operating_point_the_node_used_before() -> None:
    card = load_card(Path(__file__).resolve().parents[2] / 'models' / 'anovox_base.onnx', verify=True)
    previous = copy.deepcopy(card.to_dict())
    previous['calibration'] = _without_operating_point(previous['calibration'])
    assert upgrade_card_dict(previous)['calibration'] == card.calibration.to_dict()
    assert card.calibration.operating_point == PREVIOUS_MARKER_RULE
    assert card.calibration.operating_point_chosen_on.configured
