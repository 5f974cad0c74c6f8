"""Fixtures of the backend tests: the real tiny detector, exported once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from anovox_perception.core.model_card import ModelCard, load_card


@pytest.fixture(scope='session')
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``anovox_tiny.onnx`` (+ .json, .pt2) of the tiny detector with seeded random weights."""
    from anovox_perception.core.calibration import Calibration
    from anovox_training.export.run import export_model
    from anovox_training.model import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig.tiny())
    untuned = Calibration(occupancy_threshold=0.5)
    return export_model(model, tmp_path_factory.mktemp('tiny'), calibration=untuned, name='anovox_tiny').onnx_path


@pytest.fixture(scope='session')
def tiny_card(tiny_export: Path) -> ModelCard:
    return load_card(tiny_export)


@pytest.fixture
def random_inputs() -> Callable[..., dict[str, np.ndarray]]:
    """``random_inputs(card, seed=0)``: inputs of the card's shapes, values in [0, 1)."""

    def make(card: ModelCard, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {name: rng.random(spec.shape, dtype=np.float32) for name, spec in card.inputs.items()}

    return make
