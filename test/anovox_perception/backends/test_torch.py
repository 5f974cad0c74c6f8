"""torch eager backend: the exported program, a model factory, and parity with ONNX Runtime."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from anovox_perception.backends import BackendOptions, OnnxRuntimeBackend, TorchBackend
from anovox_perception.backends.torch import program_path_for
from anovox_perception.core.errors import BackendError, ModelCardError
from anovox_perception.core.model_card import ModelCard, card_path_for

PARITY_ATOL = 1e-4


class _Fixed(torch.nn.Module):
    """Outputs of the card's shapes: sigmoid of a mean of the BEV, or wrong shapes when asked."""

    def __init__(self, card: ModelCard, wrong_shape: bool = False) -> None:
        super().__init__()
        self.shapes = [spec.shape for spec in card.outputs.values()]
        self.wrong_shape = wrong_shape

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        level = torch.sigmoid(inputs[1].mean())
        shapes = [(1, 2)] * len(self.shapes) if self.wrong_shape else self.shapes
        return tuple(level * torch.ones(shape) for shape in shapes)


def test_program_beside_the_onnx_matches_onnx_runtime(tiny_export: Path, tiny_card: ModelCard, random_inputs) -> None:
    eager = TorchBackend.load(tiny_export)
    compiled = OnnxRuntimeBackend.load(tiny_export)
    assert eager.device == 'cpu' and eager.source.endswith('anovox_tiny.pt2')
    for seed in (0, 1):
        inputs = random_inputs(tiny_card, seed=seed)
        ours, ref = compiled.run(inputs), eager.run(inputs)
        for name in tiny_card.outputs:
            np.testing.assert_allclose(ours[name], ref[name], rtol=0, atol=PARITY_ATOL)


def test_model_factory_supplies_the_eager_model(tiny_export: Path, tiny_card: ModelCard, random_inputs) -> None:
    backend = TorchBackend.load(tiny_export, BackendOptions(model_factory=lambda card: _Fixed(card)))
    outputs = backend.run(random_inputs(tiny_card))
    assert {k: v.shape for k, v in outputs.items()} == {k: v.shape for k, v in tiny_card.outputs.items()}


def test_factory_model_with_other_output_shapes_is_rejected(tiny_export: Path) -> None:
    options = BackendOptions(model_factory=lambda card: _Fixed(card, wrong_shape=True))
    with pytest.raises(ModelCardError, match=r"torch model from model_factory .* output 'occupancy' shape \[1, 2\]"):
        TorchBackend.load(tiny_export, options)


def test_failing_factory_is_reported(tiny_export: Path) -> None:
    def broken(card: ModelCard) -> torch.nn.Module:
        raise FileNotFoundError('last.pt')

    with pytest.raises(BackendError, match=r'model_factory failed for .*anovox_tiny.onnx: FileNotFoundError: last.pt'):
        TorchBackend.load(tiny_export, BackendOptions(model_factory=broken))


def _copy_without_program(tiny_export: Path, folder: Path) -> Path:
    target = folder / tiny_export.name
    shutil.copy(tiny_export, target)
    shutil.copy(card_path_for(tiny_export), card_path_for(target))
    return target


def test_missing_program_says_how_to_get_one(tiny_export: Path, tmp_path: Path) -> None:
    target = _copy_without_program(tiny_export, tmp_path)
    with pytest.raises(BackendError, match=r'no torch.export program .*anovox_tiny.pt2 .*model_factory'):
        TorchBackend.load(target)


def test_truncated_program_gives_an_error_naming_it(tiny_export: Path, tmp_path: Path) -> None:
    target = _copy_without_program(tiny_export, tmp_path)
    data = program_path_for(tiny_export).read_bytes()
    program_path_for(target).write_bytes(data[: len(data) // 2])
    with pytest.raises(BackendError, match=r'cannot load .*anovox_tiny.pt2 \(corrupt or truncated\?\)'):
        TorchBackend.load(target)
