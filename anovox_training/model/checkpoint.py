"""Checkpoints: written atomically, loaded back into a ready model.

A checkpoint is a ``torch.save`` dict with ``model`` (state dict), ``optimizer``,
``scheduler``, ``epoch``, ``step``, ``config`` (the full training config dict; its
``model`` entry is the ``ModelConfig`` dict), ``input_spec`` (``InputSpec.to_dict()``),
``data_hash`` and ``rng_state``. Everything in it loads with
``torch.load(weights_only=True)``: no pickled code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from anovox_perception.atomic_file import atomic_writer
from anovox_perception.errors import ConfigError, DataError
from anovox_training.model.config import ModelConfig
from anovox_training.model.detector import AnomalyDetector, build_model

__all__ = ['REQUIRED_KEYS', 'load_checkpoint', 'model_config_of', 'read_checkpoint', 'save_checkpoint']

REQUIRED_KEYS = ('model', 'config', 'input_spec')


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    A crash mid-write leaves the previous checkpoint intact, never a truncated one.

    Raises:
        ConfigError: When ``state`` lacks one of :data:`REQUIRED_KEYS`.
    """
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        msg = f'save_checkpoint: state lacks {missing}; a checkpoint needs {list(REQUIRED_KEYS)}'
        raise ConfigError(msg)
    path = Path(path)
    with atomic_writer(path) as fh:
        torch.save(dict(state), fh)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    """The raw checkpoint dict.

    Raises:
        DataError: When the file is missing, unreadable or lacks required keys.
    """
    path = Path(path)
    if not path.is_file():
        msg = f'checkpoint {path} does not exist; train one with python -m anovox_training.train'
        raise DataError(msg)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many unrelated types for corrupt files
        msg = f'checkpoint {path} cannot be read ({type(err).__name__}: {err}); it is truncated or not a checkpoint'
        raise DataError(msg) from err
    if not isinstance(ckpt, dict):
        msg = f'checkpoint {path} holds a {type(ckpt).__name__}, expected a dict'
        raise DataError(msg)
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        msg = f'checkpoint {path} lacks {missing}'
        raise DataError(msg)
    return ckpt


def model_config_of(config: Mapping[str, Any]) -> ModelConfig:
    """The ``ModelConfig`` inside a training config dict (its ``model`` entry).

    Raises:
        ConfigError: When the entry is missing or invalid.
    """
    if 'model' not in config:
        msg = "training config has no 'model' section"
        raise ConfigError(msg)
    return ModelConfig.from_dict(config['model'])


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = 'cpu'
) -> tuple[AnomalyDetector, dict[str, Any], dict[str, Any]]:
    """Rebuild the model of a checkpoint, with its weights, in eval mode.

    The model is rebuilt without the ImageNet weights file (the checkpoint holds
    every weight), so a checkpoint loads on machines that lack that file.

    Args:
        path: Checkpoint file.
        map_location: Device for the tensors.

    Returns:
        ``(model, config_dict, checkpoint_dict)``.

    Raises:
        DataError: When the file is missing, unreadable, or its weights do not fit its config.
        ConfigError: When its config is invalid.
    """
    ckpt = read_checkpoint(path, map_location)
    config = ckpt['config']
    cfg = model_config_of(config)
    model = build_model(ModelConfig.from_dict({**cfg.to_dict(), 'image_weights': None}))
    try:
        model.load_state_dict(ckpt['model'])
    except RuntimeError as err:
        msg = f'checkpoint {path}: weights do not fit its model config ({err})'
        raise DataError(msg) from err
    spec = cfg.input_spec().to_dict()
    if ckpt['input_spec'] != spec:
        msg = f'checkpoint {path}: stored input_spec differs from the one its model config implies'
        raise DataError(msg)
    model.to(map_location).eval()
    return model, config, ckpt
