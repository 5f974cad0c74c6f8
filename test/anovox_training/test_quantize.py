"""INT8 variants: valid model cards the backends accept, and metrics on a validation split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_data import make_split

from anovox_perception.backends import BackendOptions, OnnxRuntimeBackend
from anovox_perception.core.calibration import Calibration
from anovox_perception.core.errors import AnovoxError
from anovox_perception.core.model_card import load_card
from anovox_training.export.quantize import main, quantize_model
from anovox_training.export.run import export_model
from anovox_training.model import ModelConfig, build_model
from anovox_training.model.inputs import example_inputs


@pytest.fixture(scope='module')
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model(ModelConfig.tiny())
    out = tmp_path_factory.mktemp('export')
    calibration = Calibration(occupancy_threshold=0.4)
    config = {'model': model.config.to_dict()}
    return export_model(model, out, calibration=calibration, training_config=config, write_program=False).onnx_path


@pytest.mark.parametrize('weights', ['s8', 'u8'])
def test_quantised_model_has_its_own_verified_card_and_stays_near_the_fp32_outputs(
    exported: Path, tmp_path: Path, weights: str
) -> None:
    path = quantize_model(exported, tmp_path, weights)
    source, card = load_card(exported), load_card(path, verify=True)
    assert path.name == f'{source.name}_int8_{weights}.onnx' and card.name == f'{source.name}_int8_{weights}'
    assert card.onnx_sha256 != source.onnx_sha256 and card.input_spec == source.input_spec
    assert card.training_config['quantization'] == f'onnxruntime quantize_dynamic, {weights}'
    assert card.calibration == source.calibration and card.calibration.occupancy_threshold == 0.4
    inputs = {k: v.numpy() for k, v in example_inputs(card.make_input_spec(), seed=2).items()}
    ours = OnnxRuntimeBackend.load(path, BackendOptions(use_cuda=False)).run(inputs)
    fp32 = OnnxRuntimeBackend.load(exported, BackendOptions(use_cuda=False)).run(inputs)
    for name, value in fp32.items():
        assert ours[name].shape == value.shape and np.all((ours[name] >= 0) & (ours[name] <= 1))
        assert float(np.abs(ours[name] - value).max()) < 0.5


def test_unknown_weight_type_is_refused(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(AnovoxError, match="weight type 'i4' is not one of"):
        quantize_model(exported, tmp_path, 'i4')


@pytest.mark.slow
def test_cli_reports_the_metrics_of_every_model_on_the_validation_frames(exported: Path, tmp_path: Path) -> None:
    val = make_split(tmp_path / 'val', 'val', scenarios=1, frames=2, seed=101)
    out = tmp_path / 'q'
    assert main([str(exported), '--out', str(out), '--weights', 'u8', '--val-data', str(val)]) == 0
    report = json.loads((out / 'quantize.json').read_text())
    assert set(report['models']) == {'fp32', 'int8_u8'} and report['validation_data'] == [str(val)]
    for metrics in report['validation'].values():
        assert metrics['frames'] == 2 and metrics['scenarios'] == 1
        assert set(metrics) >= {'AP', 'AUROC', 'FPR95', 'coverage'}
