"""ONNX Runtime backend on the exported tiny detector: loading, checks, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from anovox_perception.backends import BackendOptions, OnnxRuntimeBackend
from anovox_perception.backends.base import Backend
from anovox_perception.backends.onnxruntime import make_session_options
from anovox_perception.core.calibration import Calibration
from anovox_perception.core.errors import BackendError, ModelCardError
from anovox_perception.core.model_card import CARD_METADATA_KEY, ModelCard, card_path_for
from anovox_perception.core.onnx_file import read_onnx_file


@pytest.fixture(scope='module')
def backend(tiny_export: Path) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend.load(tiny_export, BackendOptions(intra_op_threads=1))


def test_loaded_backend_runs_on_cpu_and_returns_probabilities(backend, tiny_card: ModelCard, random_inputs) -> None:
    assert isinstance(backend, Backend)
    assert backend.device == 'cpu' and backend.name == 'onnxruntime'
    outputs = backend.run(random_inputs(tiny_card))
    assert list(outputs) == ['occupancy', 'anomaly']
    for name, value in outputs.items():
        assert value.shape == tiny_card.outputs[name].shape and value.dtype == np.float32
        assert value.min() >= 0.0 and value.max() <= 1.0


def test_same_inputs_give_the_same_outputs(backend, tiny_card: ModelCard, random_inputs) -> None:
    first = backend.run(random_inputs(tiny_card, seed=1))
    second = backend.run(random_inputs(tiny_card, seed=1))
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_wrong_inputs_are_rejected_naming_each_problem(backend, tiny_card: ModelCard, random_inputs) -> None:
    inputs = random_inputs(tiny_card)
    inputs['bev'] = inputs['bev'][:, :4]
    inputs['camera_valid'] = inputs['camera_valid'].astype(np.float64)
    del inputs['cell_rays']
    inputs['extra'] = np.zeros(1, np.float32)
    with pytest.raises(
        BackendError, match=r"missing inputs \['cell_rays'\]; unexpected inputs \['extra'\]; input 'bev'"
    ):
        backend.run(inputs)
    with pytest.raises(BackendError, match=r"input 'camera_valid' has dtype float64, model expects float32"):
        backend.run({**random_inputs(tiny_card), 'camera_valid': inputs['camera_valid']})


@pytest.mark.parametrize('level', ['disable', 'basic', 'extended', 'all'])
def test_session_options_carry_threads_and_optimisation_level(level: str) -> None:
    import onnxruntime as ort

    options = make_session_options(BackendOptions(intra_op_threads=2, inter_op_threads=1, graph_optimization=level))
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry('session.intra_op.allow_spinning') == '0'
    names = {'disable': 'ORT_DISABLE_ALL', 'basic': 'ORT_ENABLE_BASIC', 'extended': 'ORT_ENABLE_EXTENDED'}
    assert options.graph_optimization_level == getattr(ort.GraphOptimizationLevel, names.get(level, 'ORT_ENABLE_ALL'))


def test_truncated_onnx_file_gives_an_error_naming_it(tiny_export: Path, tmp_path: Path) -> None:
    broken = tmp_path / 'anovox_tiny.onnx'
    broken.write_bytes(tiny_export.read_bytes()[: tiny_export.stat().st_size // 2])
    shutil.copy(card_path_for(tiny_export), card_path_for(broken))
    with pytest.raises(ModelCardError, match=r'anovox_tiny.onnx is truncated'):
        OnnxRuntimeBackend.load(broken)


def test_modified_weights_are_caught_before_loading(tiny_export: Path, tmp_path: Path) -> None:
    changed = tmp_path / 'anovox_tiny.onnx'
    data = bytearray(tiny_export.read_bytes())
    data[len(data) // 2] ^= 0x40
    changed.write_bytes(bytes(data))
    with pytest.raises(ModelCardError, match=r'anovox_tiny.onnx does not match .*modified or corrupted'):
        OnnxRuntimeBackend.load(changed)


def _write_with_card(path: Path, model: onnx.ModelProto, card: dict) -> Path:
    card['onnx_sha256'] = read_onnx_file(_save(path, model), hash_graph=True).graph_sha256
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_METADATA_KEY, json.dumps(card)
    return _save(path, model)


def _save(path: Path, model: onnx.ModelProto) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _card(shape: list[int]) -> dict:
    return {
        'name': 'small',
        'version': '0.1.0',
        'input_spec': {},
        'camera': {'width': 8, 'height': 6, 'fx': 4.0, 'fy': 4.0, 'cx': 4.0, 'cy': 3.0},
        'T_cam_lidar': np.eye(4).tolist(),
        'classes': ['a', 'b'],
        'inputs': {'x': {'shape': shape, 'dtype': 'float32'}},
        'outputs': {'y': {'shape': shape, 'dtype': 'float32'}},
        'calibration': Calibration(occupancy_threshold=0.5).to_dict(),
        'training_config': {},
        'data_hash': 'none',
        'onnx_sha256': '',
    }


def _graph(op: str = 'Sigmoid') -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, ['x'], ['y'])],
        'small',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    return model


def test_graph_whose_io_differs_from_its_card_is_rejected(tmp_path: Path) -> None:
    path = _write_with_card(tmp_path / 'small.onnx', _graph(), _card([1, 5]))
    with pytest.raises(
        ModelCardError, match=r"ONNX Runtime session of .*small.onnx does not match .*input 'x' shape \[1, 4\]"
    ):
        OnnxRuntimeBackend.load(path)


def test_graph_onnx_runtime_cannot_load_gives_an_error_naming_the_file(tmp_path: Path) -> None:
    path = _write_with_card(tmp_path / 'small.onnx', _graph('NoSuchOperator'), _card([1, 4]))
    with pytest.raises(BackendError, match=r'ONNX Runtime cannot load .*small.onnx'):
        OnnxRuntimeBackend.load(path)


def test_small_graph_runs_with_verification_off(tmp_path: Path) -> None:
    path = _write_with_card(tmp_path / 'small.onnx', _graph(), _card([1, 4]))
    backend = OnnxRuntimeBackend.load(path, BackendOptions(verify_model=False, graph_optimization='basic'))
    out = backend.run({'x': np.array([[-100.0, 0.0, 1.0, 100.0]], np.float32)})
    np.testing.assert_allclose(out['y'], [[0.0, 0.5, 1 / (1 + np.exp(-1.0)), 1.0]], atol=1e-6)
    backend.close()
