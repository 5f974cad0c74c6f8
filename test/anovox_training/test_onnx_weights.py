"""The eager torch model rebuilt from an exported ONNX: same outputs, errors that say why not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anovox_perception.backends import BackendOptions, OnnxRuntimeBackend, TorchBackend
from anovox_perception.core.calibration import Calibration, ScoreRule
from anovox_training.export.onnx_weights import OnnxWeightsError, eager_model_from_onnx, main
from anovox_training.export.run import export_model
from anovox_training.model import ModelConfig, build_model
from anovox_training.model.inputs import example_inputs


@pytest.fixture(scope='module')
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    model = build_model(ModelConfig.tiny())
    # Trained-looking batch norm statistics, so that folding them into the convolutions changes the weights.
    generator = torch.Generator().manual_seed(4)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.2)
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
    out = tmp_path_factory.mktemp('export')
    # A tuned score rule: the rebuilt model must compute it too (it comes from the card's calibration).
    calibration = Calibration(0.3, ScoreRule(semantic_weight=2.0, anomaly_temperature=3.0, score_smoothing=3))
    result = export_model(
        model, out, calibration=calibration, training_config={'model': model.config.to_dict()}, write_program=False
    )
    return result.onnx_path


def test_rebuilt_model_reproduces_the_onnx_and_runs_in_the_torch_backend(exported: Path, tmp_path: Path) -> None:
    model, parity = eager_model_from_onnx(exported)
    assert parity <= 1e-4
    assert main([str(exported), '--out', str(tmp_path)]) == 0
    copy = tmp_path / exported.name
    assert copy.with_suffix('.pt2').is_file() and copy.with_suffix('.json').is_file()
    inputs = {k: v.numpy() for k, v in example_inputs(model.input_spec, seed=7).items()}
    ours = TorchBackend.load(copy).run(inputs)
    theirs = OnnxRuntimeBackend.load(exported, BackendOptions(use_cuda=False)).run(inputs)
    for name, value in theirs.items():
        assert float(abs(ours[name] - value).max()) <= 1e-4


def test_a_card_without_the_model_config_cannot_be_rebuilt(tmp_path: Path) -> None:
    torch.manual_seed(0)
    result = export_model(
        build_model(ModelConfig.tiny()),
        tmp_path,
        calibration=Calibration(occupancy_threshold=0.5),
        training_config={'model': 'tiny'},
        write_program=False,
    )
    with pytest.raises(OnnxWeightsError, match='no training_config.model'):
        eager_model_from_onnx(result.onnx_path)
