"""ONNX export of the detector: file contents, model card, TensorRT operator check, parity, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from tiny_data import make_split

import anovox_perception
from anovox_perception.core.calibration import Calibration, ChosenOn, ScoreRule
from anovox_perception.core.model_card import CARD_METADATA_KEY, load_card
from anovox_perception.core.onnx_file import read_onnx_file
from anovox_perception.core.preprocess import build_inputs, points_to_bev
from anovox_training.data.cache import SampleCache, frame_refs
from anovox_training.data.dataset import resolve_scenarios
from anovox_training.data.reader import ScenarioReader
from anovox_training.export.onnx_passes import drop_unit_pow, drop_unused_constants, fuse_max_softmax
from anovox_training.export.run import ExportError, ExportResult, export_model, main
from anovox_training.export.trt_ops import SOURCE, TENSORRT_SUPPORTED_OPS, check_tensorrt_compatible
from anovox_training.model import INPUT_NAMES, ModelConfig, build_model, save_checkpoint
from anovox_training.model.inputs import example_inputs
from anovox_training.train.augment import intensity_channel

PARITY_ATOL = 1e-4
# A model that was never calibrated: the default score rule and threshold, chosen on no data.
UNTUNED = Calibration(occupancy_threshold=0.5)


@pytest.fixture(scope='module')
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig.tiny())


@pytest.fixture(scope='module')
def exported(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    return export_model(
        tiny_model,
        tmp_path_factory.mktemp('export'),
        calibration=UNTUNED,
        training_config={'model': 'tiny', 'epochs': 3},
        data_hash='abc123',
    )


def test_export_writes_onnx_card_and_program(exported: ExportResult) -> None:
    assert exported.onnx_path.name == 'anovox_tiny.onnx'
    assert exported.card_path.name == 'anovox_tiny.json'
    assert exported.program_path is not None and exported.program_path.name == 'anovox_tiny.pt2'
    assert all(p.is_file() for p in (exported.onnx_path, exported.card_path, exported.program_path))


def test_exported_graph_passes_the_checker_with_opset_17_and_static_shapes(exported: ExportResult) -> None:
    model = onnx.load(str(exported.onnx_path))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')] == [17]
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        assert all(d.HasField('dim_value') and d.dim_value > 0 for d in dims), value.name
    assert [i.name for i in model.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in model.graph.output] == ['occupancy', 'anomaly']


def test_exported_graph_uses_only_operators_tensorrt_parses(exported: ExportResult) -> None:
    model = onnx.load(str(exported.onnx_path))
    assert check_tensorrt_compatible(model) == []
    assert {n.op_type for n in model.graph.node} <= TENSORRT_SUPPORTED_OPS
    assert 'onnx-tensorrt' in SOURCE and 'operators.md' in SOURCE


def test_a_model_with_a_voxel_refiner_exports_for_tensorrt_with_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig.tiny(voxel_refine=8))
    with torch.no_grad():  # the output layer starts at zero; give it weights so parity means something
        model.head.refiner.out.weight.normal_(std=0.5)
    result = export_model(model, tmp_path, calibration=UNTUNED, write_program=False)
    graph = onnx.load(str(result.onnx_path))
    assert check_tensorrt_compatible(graph) == []
    assert any(
        n.op_type == 'Conv' and len(onnx.helper.get_attribute_value(a)) == 3
        for n in graph.graph.node
        for a in n.attribute
        if a.name == 'kernel_shape'
    )  # the 3D convolutions
    assert max(result.parity_max_abs_diff.values()) < PARITY_ATOL
    assert result.card.to_dict()['training_config']['model']['voxel_refine'] == 8


def test_the_graph_computes_the_score_rule_of_the_calibration_it_carries(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig.tiny())
    rule = ScoreRule(semantic_weight=2.0, anomaly_temperature=3.0, score_smoothing=5, lidar_support=3)
    calibration = Calibration(0.3, rule, ChosenOn(('val',), 'ab12'), ChosenOn(('val', 'val_large'), 'cd34'))
    result = export_model(model, tmp_path, calibration=calibration, write_program=False)
    graph = onnx.load(str(result.onnx_path))
    assert check_tensorrt_compatible(graph) == []
    assert {'AveragePool', 'MaxPool'} <= {n.op_type for n in graph.graph.node}
    assert max(result.parity_max_abs_diff.values()) < PARITY_ATOL
    assert result.card.calibration == calibration == load_card(result.onnx_path).calibration
    # The same weights with that rule in torch give what ONNX Runtime computes.
    reference = build_model(ModelConfig.tiny(), rule).eval()
    reference.load_state_dict(model.state_dict())
    inputs = reference.example_inputs()
    session = ort.InferenceSession(str(result.onnx_path), providers=['CPUExecutionProvider'])
    (anomaly,) = session.run(['anomaly'], {k: v.numpy() for k, v in inputs.items()})
    with torch.no_grad():
        np.testing.assert_allclose(anomaly, reference(*inputs.values())[1].numpy(), rtol=0, atol=PARITY_ATOL)


def test_card_in_metadata_equals_the_sidecar_and_describes_the_model(exported: ExportResult, tiny_model) -> None:
    metadata = {p.key: p.value for p in onnx.load(str(exported.onnx_path)).metadata_props}
    from_metadata = json.loads(metadata[CARD_METADATA_KEY])
    assert from_metadata == json.loads(exported.card_path.read_text())
    card = load_card(exported.onnx_path, verify=True)
    assert card == exported.card
    assert card.name == 'anovox_tiny' and card.version == anovox_perception.__version__
    assert card.classes == ModelConfig.tiny().classes
    assert card.make_input_spec() == tiny_model.input_spec
    assert card.training_config == {'model': 'tiny', 'epochs': 3} and card.data_hash == 'abc123'
    assert card.camera.width == 768 and card.camera.fx == pytest.approx(384.0)
    shapes = {name: tuple(t.shape) for name, t in tiny_model.example_inputs().items()}
    assert {n: s.shape for n, s in card.inputs.items()} == shapes
    assert card.outputs['anomaly'].shape == (1, *ModelConfig.tiny().grid.shape)
    assert read_onnx_file(exported.onnx_path, hash_graph=True, exclude_keys=[CARD_METADATA_KEY]).graph_sha256 == (
        card.onnx_sha256
    )


def test_onnx_runtime_matches_pytorch_on_inputs_unseen_at_export(exported: ExportResult, tiny_model) -> None:
    session = ort.InferenceSession(str(exported.onnx_path), providers=['CPUExecutionProvider'])
    assert max(exported.parity_max_abs_diff.values()) <= PARITY_ATOL
    for seed in (3, 4):
        inputs = example_inputs(tiny_model.input_spec, seed=seed)
        inputs['camera_valid'][:] = float(seed % 2)  # LiDAR-only run too
        ours = session.run(None, {k: v.numpy() for k, v in inputs.items()})
        with torch.inference_mode():
            ref = tiny_model(*inputs.values())
        for value, expected in zip(ours, ref, strict=True):
            assert value.min() >= 0.0 and value.max() <= 1.0
            np.testing.assert_allclose(value, expected.numpy(), rtol=0, atol=PARITY_ATOL)


@pytest.mark.parametrize('opset', [16, 21])
def test_opsets_outside_17_to_20_are_refused(tiny_model, tmp_path: Path, opset: int) -> None:
    with pytest.raises(ExportError, match=rf'opset {opset} is not supported: use 17..20'):
        export_model(tiny_model, tmp_path, calibration=UNTUNED, opset=opset)


def _model(nodes: list, opset: int = 17, output_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info('y', output_type, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])


@pytest.mark.parametrize(
    ('nodes', 'opset', 'problem'),
    [
        ([helper.make_node('Unique', ['x'], ['y'])], 17, 'operator Unique is not supported'),
        ([helper.make_node('MyOp', ['x'], ['y'], domain='com.example')], 17, "custom domain 'com.example'"),
        ([helper.make_node('Resize', ['x', '', 's'], ['y'], mode='cubic')], 17, "Resize mode 'cubic'"),
        ([helper.make_node('MaxPool', ['x'], ['y'], kernel_shape=[2])], 17, 'only 2D or 3D pooling'),
        ([helper.make_node('Relu', ['x'], ['y'])], 21, 'opset 21 is outside 9..20'),
    ],
)
def test_tensorrt_check_names_each_unsupported_construct(nodes: list, opset: int, problem: str) -> None:
    problems = check_tensorrt_compatible(_model(nodes, opset))
    assert len(problems) == 1 and problem in problems[0]


def test_tensorrt_check_looks_inside_subgraphs_and_at_io_types() -> None:
    body = helper.make_graph(
        [helper.make_node('NonMaxSuppression', [], ['a']), helper.make_node('Det', ['a'], ['b'])],
        'body',
        [],
        [helper.make_tensor_value_info('b', TensorProto.FLOAT, None)],
    )
    nodes = [helper.make_node('If', ['c'], ['y'], then_branch=body, else_branch=body)]
    problems = check_tensorrt_compatible(_model(nodes, output_type=TensorProto.DOUBLE))
    assert sum('operator Det' in p for p in problems) == 2
    assert any("graph I/O 'y' is float64" in p for p in problems)


class _MaxSoftmax(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x * 3.0, dim=1).amax(dim=1)


def test_max_softmax_rewrite_is_exact_and_removes_the_softmax(tmp_path: Path) -> None:
    x = torch.randn(1, 9, 6, 5, 4, generator=torch.Generator().manual_seed(0)) * 4
    path = tmp_path / 'msp.onnx'
    with pytest.warns(DeprecationWarning):
        torch.onnx.export(_MaxSoftmax(), (x,), str(path), dynamo=False, opset_version=17, input_names=['x'])
    model = onnx.load(str(path))
    assert fuse_max_softmax(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert 'Softmax' not in {n.op_type for n in model.graph.node}
    assert check_tensorrt_compatible(model) == []
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    (ours,) = session.run(None, {'x': x.numpy()})
    np.testing.assert_allclose(ours, _MaxSoftmax()(x).numpy(), rtol=0, atol=1e-6)
    assert fuse_max_softmax(model) == 0  # nothing left to rewrite


def test_cli_exports_a_checkpoint_with_its_data_hash(tiny_model, tmp_path: Path, capsys) -> None:
    config = {'model': ModelConfig.tiny().to_dict(), 'train': {'epochs': 2}}
    checkpoint = save_checkpoint(
        tmp_path / 'last.pt',
        {
            'model': tiny_model.state_dict(),
            'config': config,
            'input_spec': tiny_model.input_spec.to_dict(),
            'data_hash': 'feedbeef',
            'calibration': Calibration(0.35, ScoreRule(0.5, 2.0, 3), ChosenOn(('val',), 'ab12')).to_dict(),
        },
    )
    out = tmp_path / 'models'
    assert main(['--checkpoint', str(checkpoint), '--out', str(out), '--name', 'demo', '--no-program']) == 0
    assert 'parity ONNX Runtime vs PyTorch' in capsys.readouterr().out
    card = load_card(out / 'demo.onnx', verify=True)
    # The card carries the checkpoint's calibration: the node's threshold, the graph's score rule.
    assert card.data_hash == 'feedbeef' and card.training_config == config
    assert card.calibration == Calibration(0.35, ScoreRule(0.5, 2.0, 3), ChosenOn(('val',), 'ab12'))
    assert not (out / 'demo.pt2').exists()


def test_cli_reports_a_missing_checkpoint(tmp_path: Path, capsys) -> None:
    assert main(['--checkpoint', str(tmp_path / 'none.pt'), '--out', str(tmp_path)]) == 1
    assert 'none.pt does not exist' in capsys.readouterr().err


def test_unit_pow_becomes_identity_and_its_constant_is_dropped() -> None:
    nodes = [
        helper.make_node('Constant', [], ['one'], value=helper.make_tensor('one', TensorProto.FLOAT, [], [1.0])),
        helper.make_node('Constant', [], ['two'], value=helper.make_tensor('two', TensorProto.FLOAT, [], [2.0])),
        helper.make_node('Pow', ['x', 'one'], ['p']),
        helper.make_node('Pow', ['p', 'two'], ['y']),
    ]
    model = _model(nodes)
    assert drop_unit_pow(model) == 1
    assert drop_unused_constants(model) == 1
    assert [n.op_type for n in model.graph.node] == ['Constant', 'Identity', 'Pow']
    x = np.linspace(-2, 2, 3 * 64, dtype=np.float32).reshape(1, 3, 8, 8)
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider']).run(None, {'x': x})
    np.testing.assert_allclose(y, x**2, rtol=1e-6)


def test_a_model_that_ignores_intensity_says_so_in_its_card_and_the_node_builds_its_cached_training_inputs(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    config = ModelConfig.tiny(lidar_intensity='ignore')
    card = load_card(
        export_model(build_model(config), tmp_path / 'model', calibration=UNTUNED, write_program=False).onnx_path
    )
    assert card.input_spec['lidar_intensity'] == 'ignore' and card.lidar_intensity == 'ignore'
    (ref,) = frame_refs(resolve_scenarios(make_split(tmp_path / 'data', 'train', scenarios=1, frames=1, seed=7)))
    cache = SampleCache(tmp_path / 'cache', config.input_spec())
    assert cache.dir != SampleCache(tmp_path / 'cache', ModelConfig.tiny().input_spec()).dir
    cache.ensure([ref])
    training = cache.load(ref).inputs
    frame = ScenarioReader(ref.scenario_dir).read(ref.frame_id)
    # What the node computes: preprocessing with the card's input spec (anovox_perception.core.detector).
    runtime = build_inputs(card.make_input_spec(), frame.rgb, frame.points, frame.camera, frame.T_cam_lidar)
    for name in INPUT_NAMES:
        np.testing.assert_allclose(training[name], runtime[name], rtol=0, atol=1e-6, err_msg=name)
    channel = intensity_channel(config.grid)
    assert not runtime['bev'][0, channel].any()
    assert points_to_bev(frame.points, ModelConfig.tiny().input_spec())[channel].any()  # the frame has intensity
