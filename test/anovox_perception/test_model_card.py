"""Model card: validation, loading from ONNX metadata or the sidecar, graph hash, I/O checks."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from anovox_perception.core.calibration import Calibration, ChosenOn, OperatingPoint, ScoreRule
from anovox_perception.core.errors import ModelCardError
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.model_card import (
    CARD_METADATA_KEY,
    ModelCard,
    card_path_for,
    load_card,
    verify_onnx_against_card,
)
from anovox_perception.core.onnx_file import read_onnx_file
from anovox_perception.core.preprocess import InputSpec

SPEC = InputSpec(grid=GridSpec(-4.0, 12.0, -8.0, 8.0, -3.0, 1.0), image_width=96, image_height=64)


def _graph() -> onnx.ModelProto:
    """y = sigmoid(x * w) with a 4 KiB weight, so the file has an initialiser to skip and corrupt."""
    weight = numpy_helper.from_array(np.linspace(-1, 1, 1024, dtype=np.float32).reshape(1, 1024), 'w')
    graph = helper.make_graph(
        [helper.make_node('Mul', ['x', 'w'], ['xw']), helper.make_node('Sigmoid', ['xw'], ['y'])],
        'card_test',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 1024])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 1024])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    return model


def _card_dict(digest: str) -> dict[str, Any]:
    return {
        'name': 'card_test',
        'version': '0.1.0',
        'input_spec': SPEC.to_dict(),
        'camera': {'width': 768, 'height': 512, 'fx': 384.0, 'fy': 384.0, 'cx': 384.0, 'cy': 256.0},
        'T_cam_lidar': [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]],
        'classes': ['road', 'vehicle'],
        'inputs': {'x': {'shape': [1, 1024], 'dtype': 'float32'}},
        'outputs': {'y': {'shape': [1, 1024], 'dtype': 'float32'}},
        'calibration': Calibration(
            0.3,
            ScoreRule(0.5, 2.0, 5),
            ChosenOn(('val',), 'ab12'),
            operating_point=OperatingPoint(0.65, 3),
            operating_point_chosen_on=ChosenOn(('val', 'val_large'), 'cd34'),
        ).to_dict(),
        'training_config': {'epochs': 1},
        'data_hash': 'none',
        'onnx_sha256': digest,
    }


def _write(tmp_path: Path, *, metadata: bool = True, sidecar: bool = True) -> tuple[Path, dict[str, Any]]:
    """Write card_test.onnx the way the exporter does: hash first, then add the card."""
    model = _graph()
    card = _card_dict(hashlib.sha256(model.SerializeToString()).hexdigest())
    if metadata:
        entry = model.metadata_props.add()
        entry.key, entry.value = CARD_METADATA_KEY, json.dumps(card)
    path = tmp_path / 'card_test.onnx'
    path.write_bytes(model.SerializeToString())
    if sidecar:
        card_path_for(path).write_text(json.dumps(card))
    return path, card


def test_card_round_trips_through_json() -> None:
    card = ModelCard.from_dict(_card_dict('0' * 64))
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert again.to_dict() == _card_dict('0' * 64)
    assert list(card.inputs) == ['x'] and card.inputs['x'].shape == (1, 1024)
    np.testing.assert_array_equal(card.T_cam_lidar_array[3], [0, 0, 0, 1])


def test_card_builds_the_input_spec_it_carries() -> None:
    assert ModelCard.from_dict(_card_dict('0' * 64)).make_input_spec() == SPEC


def test_card_says_whether_the_model_reads_lidar_intensity_absent_meaning_use() -> None:
    assert ModelCard.from_dict(_card_dict('0' * 64)).lidar_intensity == 'use'
    data = _card_dict('0' * 64)
    data['input_spec'] = {**SPEC.to_dict(), 'lidar_intensity': 'ignore'}
    card = ModelCard.from_dict(data)
    assert card.lidar_intensity == 'ignore' and card.make_input_spec().lidar_intensity == 'ignore'
    data['input_spec'] = {**SPEC.to_dict(), 'lidar_intensity': 'maybe'}
    with pytest.raises(ModelCardError, match="field 'input_spec'.*lidar_intensity must be one of"):
        ModelCard.from_dict(data)


def test_the_shipped_model_card_predates_lidar_intensity_and_reads_as_use() -> None:
    card = load_card(Path(__file__).resolve().parents[2] / 'models' / 'anovox_base.json')
    assert 'lidar_intensity' not in card.input_spec and card.lidar_intensity == 'use'


def test_load_card_reads_the_onnx_metadata_without_a_sidecar(tmp_path: Path) -> None:
    path, card = _write(tmp_path, sidecar=False)
    assert load_card(path, verify=True).to_dict() == card


def test_load_card_falls_back_to_the_sidecar_json(tmp_path: Path) -> None:
    path, card = _write(tmp_path, metadata=False)
    assert load_card(path, verify=True).to_dict() == card
    assert load_card(card_path_for(path)).to_dict() == card


def test_load_card_without_metadata_or_sidecar_names_the_file_and_the_key(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, metadata=False, sidecar=False)
    with pytest.raises(
        ModelCardError, match=rf'card_test.onnx has no model card: no ONNX metadata key .*{CARD_METADATA_KEY}'
    ):
        load_card(path)


def test_graph_hash_is_the_sha256_of_the_model_serialised_without_its_card(tmp_path: Path) -> None:
    path, card = _write(tmp_path)
    info = read_onnx_file(path, hash_graph=True, exclude_keys=[CARD_METADATA_KEY])
    assert info.graph_sha256 == card['onnx_sha256']
    assert info.graph_sha256 != hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(info.metadata) == {CARD_METADATA_KEY}


def test_verify_rejects_an_onnx_file_whose_weights_changed(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01  # inside the weight's raw bytes
    path.write_bytes(bytes(data))
    load_card(path)  # the card itself still parses
    with pytest.raises(ModelCardError, match=r'card_test.onnx does not match .*modified or corrupted'):
        load_card(path, verify=True)
    with pytest.raises(ModelCardError, match=r'does not match model card'):
        verify_onnx_against_card(path, load_card(path))


@pytest.mark.parametrize('keep', [0.5, 0.97])
def test_truncated_onnx_file_error_names_the_file(tmp_path: Path, keep: float) -> None:
    path, _ = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelCardError, match=r'card_test.onnx is truncated'):
        load_card(path)


@pytest.mark.parametrize(
    ('content', 'problem'),
    [(b'', 'is empty'), (b'\x0f\x0f\x0f\x0f', 'not a valid ONNX'), (b'\x08\x08', 'has no graph')],
)
def test_files_that_are_not_onnx_models_give_a_clear_error(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / 'broken.onnx'
    path.write_bytes(content)
    with pytest.raises(ModelCardError, match=rf'broken.onnx.*{problem}'):
        load_card(path)


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelCardError, match=r'nothing.onnx does not exist'):
        load_card(tmp_path / 'nothing.onnx')


def test_missing_and_unknown_fields_are_listed() -> None:
    data = _card_dict('0' * 64)
    del data['classes']
    data['colour'] = 'red'
    with pytest.raises(
        ModelCardError, match=r"model card x.json: missing fields \['classes'\], unknown fields \['colour'\]"
    ):
        ModelCard.from_dict(data, source='x.json')


@pytest.mark.parametrize(
    ('field', 'value', 'problem'),
    [
        ('name', 'has space', 'does not match'),
        ('version', '', 'non-empty string'),
        ('input_spec', [], 'JSON object'),
        ('input_spec', {'image_width': 100, 'image_stride': 16}, 'not a multiple of image_stride'),
        ('input_spec', {'grid': {'cell_m': 0.5}, 'colour': 1}, 'unknown keys'),
        ('camera', {'width': 0, 'height': 5, 'fx': 1.0, 'fy': 1.0, 'cx': 0.0, 'cy': 0.0}, 'image size'),
        ('T_cam_lidar', [[1, 0, 0], [0, 1, 0], [0, 0, 1]], '4x4'),
        ('T_cam_lidar', [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], 'not a rotation'),
        ('T_cam_lidar', [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], 'last row'),
        ('classes', ['road', 'road'], 'unique'),
        ('classes', [], 'non-empty list'),
        ('inputs', {'x': {'shape': [1, -1], 'dtype': 'float32'}}, 'static shapes'),
        ('inputs', {'x': {'shape': [1, 4], 'dtype': 'float64'}}, 'float64'),
        ('inputs', {'x': [1, 4]}, 'expected'),
        ('outputs', {}, 'at least one tensor'),
        ('outputs', {'x': {'shape': [1, 4], 'dtype': 'float32'}}, 'also inputs'),
        ('onnx_sha256', 'abc', 'does not match'),
    ],
)
def test_invalid_fields_are_rejected_naming_the_field(field: str, value: Any, problem: str) -> None:
    data = copy.deepcopy(_card_dict('0' * 64))
    data[field] = value
    with pytest.raises(ModelCardError, match=rf"model card card.json: field '{field}.*{problem}"):
        ModelCard.from_dict(data, source='card.json')


def test_the_card_carries_its_calibration_typed() -> None:
    card = ModelCard.from_dict(_card_dict('0' * 64), source='card.json')
    assert card.calibration == Calibration(
        0.3,
        ScoreRule(0.5, 2.0, 5),
        ChosenOn(('val',), 'ab12'),
        operating_point=OperatingPoint(anomaly_threshold=0.65, min_component_points=3),
        operating_point_chosen_on=ChosenOn(('val', 'val_large'), 'cd34'),
    )
    assert card.calibration.score_rule_chosen_on.configured and not card.calibration.threshold_chosen_on.configured
    assert Calibration.from_dict(card.to_dict()['calibration']) == card.calibration
    assert Calibration.from_dict(json.loads(json.dumps(card.calibration.to_dict()))) == card.calibration


def test_a_score_rule_written_before_the_lidar_gate_existed_reads_as_no_gate_and_a_gate_round_trips() -> None:
    old = {'semantic_weight': 0.5, 'anomaly_temperature': 2.0, 'score_smoothing': 5}
    assert ScoreRule.from_dict(old) == ScoreRule(0.5, 2.0, 5, 0)
    gated = ScoreRule(0.5, 2.0, 5, lidar_support=3)
    assert gated.to_dict() == {**old, 'lidar_support': 3}
    assert ScoreRule.from_dict(json.loads(json.dumps(gated.to_dict()))) == gated


def test_a_calibration_without_the_operating_point_names_the_upgrade_command() -> None:
    data = _card_dict('0' * 64)
    for key in ('operating_point', 'operating_point_chosen_on'):
        del data['calibration'][key]
    with pytest.raises(
        ModelCardError,
        match=(
            r'x.json: its calibration has no operating point .* '
            r'python -m anovox_training.export.upgrade_calibration x.json'
        ),
    ):
        ModelCard.from_dict(data, source='x.json')
    # Only one of the two is not a file of the previous version: an invalid section.
    data = _card_dict('0' * 64)
    del data['calibration']['operating_point_chosen_on']
    with pytest.raises(ModelCardError, match=r"missing keys \['operating_point_chosen_on'\]"):
        ModelCard.from_dict(data, source='x.json')


def test_a_card_without_calibration_names_the_file_and_the_upgrade_command(tmp_path: Path) -> None:
    data = _card_dict('0' * 64)
    del data['calibration']
    with pytest.raises(
        ModelCardError,
        match=(
            r'model card x.json has no calibration section .* '
            r'python -m anovox_training.export.upgrade_calibration x.json'
        ),
    ):
        ModelCard.from_dict(data, source='x.json')
    path, card = _write(tmp_path)
    card = {k: v for k, v in card.items() if k != 'calibration'}
    model = onnx.load(str(path))
    model.metadata_props[0].value = json.dumps(card)
    onnx.save(model, str(path))
    with pytest.raises(ModelCardError, match=rf'upgrade_calibration {path}$'):
        load_card(path)


@pytest.mark.parametrize(
    ('change', 'problem'),
    [
        ({'occupancy_threshold': 1.5}, r'occupancy_threshold must be a number in \[0, 1\], got 1.5'),
        ({'occupancy_threshold': True}, r'occupancy_threshold must be a number'),
        ({'score_rule': {'semantic_weight': -1, 'anomaly_temperature': 1, 'score_smoothing': 1}}, 'semantic_weight'),
        ({'score_rule': {'semantic_weight': 0, 'anomaly_temperature': 0, 'score_smoothing': 1}}, 'anomaly_temperature'),
        ({'score_rule': {'semantic_weight': 0, 'anomaly_temperature': 1, 'score_smoothing': 4}}, 'odd integer'),
        (
            {'score_rule': {'semantic_weight': 0, 'anomaly_temperature': 1, 'score_smoothing': 1, 'lidar_support': 4}},
            r'lidar_support must be 0 \(no gate\) or an odd integer',
        ),
        (
            {'score_rule': {'semantic_weight': 0, 'anomaly_temperature': 1}},
            r"score_rule: missing keys \['score_smoothing'\]",
        ),
        ({'threshold_chosen_on': {'folders': [], 'data_hash': 'ab12'}}, 'threshold_chosen_on: folders .* disagree'),
        (
            {'score_rule_chosen_on': {'folders': 'val', 'data_hash': 'ab12'}},
            'score_rule_chosen_on: folders must be a list',
        ),
        ({'operating_point': {'anomaly_threshold': 1.2, 'min_component_points': 0}}, r'anomaly_threshold must be'),
        ({'operating_point': {'anomaly_threshold': 0.5, 'min_component_points': -1}}, 'min_component_points must'),
        ({'operating_point': {'anomaly_threshold': 0.5, 'min_component_points': 2.5}}, 'min_component_points must'),
        ({'operating_point': {'anomaly_threshold': 0.5}}, r"operating_point: missing keys \['min_component_points'\]"),
        ({'colour': 'red'}, r"unknown keys \['colour'\]"),
    ],
)
def test_an_invalid_calibration_is_refused_naming_the_key(change: dict[str, Any], problem: str) -> None:
    data = _card_dict('0' * 64)
    data['calibration'] = {**data['calibration'], **change}
    with pytest.raises(ModelCardError, match=rf'model card card.json: calibration.*{problem}'):
        ModelCard.from_dict(data, source='card.json')


def test_the_shipped_card_records_the_threshold_the_runtime_used_and_the_tuned_score_rule() -> None:
    # The values the previous version read from training_config: 0.2 calibrated on val, and the model's rule.
    card = load_card(Path(__file__).resolve().parents[2] / 'models' / 'anovox_base.onnx', verify=True)
    assert card.calibration.occupancy_threshold == 0.2
    assert card.calibration.score_rule == ScoreRule(semantic_weight=0.0, anomaly_temperature=1.0, score_smoothing=7)
    assert card.calibration.threshold_chosen_on.folders == ('val',)
    assert card.calibration.score_rule_chosen_on.folders == ('val', 'val_large')
    # Its operating point is the node's before calibrations carried one: anomaly threshold 0.5, no support rule.
    assert card.calibration.operating_point == OperatingPoint(anomaly_threshold=0.5, min_component_points=0)
    assert card.calibration.operating_point_chosen_on.configured
    assert 'occupancy_threshold' not in card.training_config
    assert not {'semantic_weight', 'anomaly_temperature', 'score_smoothing'} & set(card.training_config['model'])


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / 'bad.json'
    path.write_text('{"name": ')
    with pytest.raises(ModelCardError, match=r'bad.json: not valid JSON'):
        load_card(path)


def test_check_io_accepts_matching_io_and_lists_every_mismatch() -> None:
    card = ModelCard.from_dict(_card_dict('0' * 64))
    card.check_io({'x': ((1, 1024), 'float32')}, {'y': ((1, 1024), 'float32')}, where='engine e')
    with pytest.raises(
        ModelCardError,
        match=r"engine e does not match model card 'card_test': input 'x' shape \['batch', 1024\].*dtype",
    ):
        card.check_io({'x': (('batch', 1024), 'float16')}, {'y': ((1, 1024), 'float32')}, where='engine e')
    with pytest.raises(ModelCardError, match=r"output names \['z'\] != card \['y'\]"):
        card.check_io({'x': ((1, 1024), 'float32')}, {'z': ((1, 1024), 'float32')}, where='engine e')
