"""The fusion detector: inputs, backbones, fusion, head, assembled by ``build_model``."""

from __future__ import annotations

from anovox_training.model.checkpoint import load_checkpoint, save_checkpoint
from anovox_training.model.config import MODALITIES, NORMAL_CLASSES, ModelConfig
from anovox_training.model.detector import INPUT_NAMES, OUTPUT_NAMES, AnomalyDetector, build_model

__all__ = [
    'INPUT_NAMES',
    'MODALITIES',
    'NORMAL_CLASSES',
    'OUTPUT_NAMES',
    'AnomalyDetector',
    'ModelConfig',
    'build_model',
    'load_checkpoint',
    'save_checkpoint',
]
