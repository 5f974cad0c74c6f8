"""Checkpoints: written atomically with a checksum, rotated, loaded back into a ready model.

A checkpoint is a ``torch.save`` dict with ``model`` (state dict), ``optimizer``,
``scheduler``, ``epoch``, ``step``, ``config`` (the full training config dict; its
``model`` entry is the ``ModelConfig`` dict), ``input_spec`` (``InputSpec.to_dict()``),
``data_hash``, ``calibration`` (``Calibration.to_dict()``: occupancy threshold and score
rule, read by :func:`checkpoint_calibration`), ``rng_state`` and ``checksum``. Everything
in it loads with ``torch.load(weights_only=True)``: no pickled code.

``torch.load`` notices a truncated file but not flipped bytes inside a tensor (it
does not check the zip records' CRCs), so ``checksum`` holds a sha256 over every
other entry's content, verified on every read. Training keeps the checkpoint before
``last.pt`` as ``last.prev.pt`` (:func:`previous_path`) and resumes from it, with a
warning, when ``last.pt`` is missing or fails its checks (:func:`read_latest_checkpoint`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from anovox_perception.core.atomic_file import atomic_writer
from anovox_perception.core.calibration import Calibration, CalibrationError, read_calibration
from anovox_perception.core.errors import ConfigError, DataError
from anovox_training.model.config import ModelConfig
from anovox_training.model.detector import AnomalyDetector, build_model

__all__ = [
    'REQUIRED_KEYS',
    'checkpoint_calibration',
    'load_checkpoint',
    'model_config_of',
    'previous_path',
    'read_checkpoint',
    'read_latest_checkpoint',
    'remove_stale_temporaries',
    'save_checkpoint',
    'state_checksum',
]

REQUIRED_KEYS = ('model', 'config', 'input_spec')
CHECKSUM_KEY = 'checksum'


def _feed(digest: Any, value: Any) -> None:
    """Hash ``value`` by content, so the same state hashes the same after a save / load round trip."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f'T{tensor.dtype}{tuple(tensor.shape)};'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(f'D{len(value)};'.encode())
        for key in sorted(value, key=repr):
            digest.update(f'{key!r}:'.encode())
            _feed(digest, value[key])
    elif isinstance(value, list | tuple):  # torch.load may hand a tuple back as a list
        digest.update(f'L{len(value)};'.encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f'{type(value).__name__}={value!r};'.encode())


def state_checksum(state: Mapping[str, Any]) -> str:
    """sha256 (hex) of every entry of ``state`` but ``checksum``: tensor bytes, dtypes, shapes and values."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return digest.hexdigest()


def previous_path(path: str | Path) -> Path:
    """Where :func:`save_checkpoint` with ``keep_previous`` keeps the checkpoint it replaces: ``last.prev.pt``."""
    path = Path(path)
    return path.with_name(f'{path.stem}.prev{path.suffix}')


def _keep_previous(path: Path) -> None:
    """Make ``previous_path(path)`` the current ``path`` without ever leaving ``path`` absent."""
    if not path.is_file():
        return
    previous = previous_path(path)
    link = previous.with_name(f'.{previous.name}.link.tmp')
    link.unlink(missing_ok=True)
    try:
        os.link(path, link)  # a second name for the same file: no copy, and path stays in place
        os.replace(link, previous)
    except OSError:  # no hard links on this file system: move it (path is absent until the write ends)
        link.unlink(missing_ok=True)
        os.replace(path, previous)


def save_checkpoint(path: str | Path, state: Mapping[str, Any], *, keep_previous: bool = False) -> Path:
    """Write ``state`` (plus its ``checksum``) to ``path`` atomically (temporary file, fsync, rename).

    A crash mid-write leaves the previous checkpoint intact, never a truncated one.

    Args:
        path: Checkpoint file.
        state: The checkpoint dict; a ``checksum`` entry in it is recomputed.
        keep_previous: Keep the checkpoint being replaced as :func:`previous_path`, the
            fallback of :func:`read_latest_checkpoint` should the new one turn out unreadable.

    Raises:
        ConfigError: When ``state`` lacks one of :data:`REQUIRED_KEYS`.
    """
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        msg = f'save_checkpoint: state lacks {missing}; a checkpoint needs {list(REQUIRED_KEYS)}'
        raise ConfigError(msg)
    path = Path(path)
    if keep_previous:
        _keep_previous(path)
    payload = {k: v for k, v in state.items() if k != CHECKSUM_KEY}
    payload[CHECKSUM_KEY] = state_checksum(payload)
    with atomic_writer(path) as fh:
        torch.save(payload, fh)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    """The raw checkpoint dict (without its ``checksum``).

    Raises:
        DataError: When the file is missing, unreadable, fails its checksum or lacks required keys.
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
    stored = ckpt.pop(CHECKSUM_KEY, None)  # checkpoints written before checksums: the load checks only
    if stored is not None and stored != state_checksum(ckpt):
        msg = f'checkpoint {path} fails its checksum: its content changed after it was written (disk or copy error)'
        raise DataError(msg)
    return ckpt


def read_latest_checkpoint(
    path: str | Path, map_location: str | torch.device = 'cpu'
) -> tuple[dict[str, Any], Path] | None:
    """The checkpoint at ``path``, or else the one :func:`save_checkpoint` kept before it, with a warning.

    Args:
        path: The latest checkpoint (``last.pt``).
        map_location: Device for the tensors.

    Returns:
        ``(checkpoint, the file it came from)``; None when neither file exists.

    Raises:
        DataError: When a file exists but no usable checkpoint does (both fail their checks).
    """
    path = Path(path)
    previous = previous_path(path)
    if not path.is_file() and not previous.is_file():
        return None
    try:
        return read_checkpoint(path, map_location), path
    except DataError as err:
        problem = err
    if not previous.is_file():
        msg = f'{problem}; and there is no {previous.name} to fall back to'
        raise DataError(msg) from problem
    try:
        ckpt = read_checkpoint(previous, map_location)
    except DataError as err:
        msg = f'no usable checkpoint: {problem}; {err}'
        raise DataError(msg) from err
    warnings.warn(
        f'{problem}; using the previous checkpoint {previous} (step {ckpt.get("step", "?")}) instead',
        RuntimeWarning,
        stacklevel=2,
    )
    return ckpt, previous


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporary files a killed write of ``path`` (or of its previous copy) left behind.

    ``atomic_writer`` names them ``.<name>.<random>.tmp`` beside the target; only a
    process killed mid-write leaves one. Call it only while nothing writes ``path``.

    Returns:
        The files removed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed = []
    for name in (path.name, previous_path(path).name):
        for stale in path.parent.glob(f'.{name}.*tmp'):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                removed.append(stale)
    return removed


def model_config_of(config: Mapping[str, Any]) -> ModelConfig:
    """The ``ModelConfig`` inside a training config dict (its ``model`` entry).

    Raises:
        ConfigError: When the entry is missing or invalid.
    """
    if 'model' not in config:
        msg = "training config has no 'model' section"
        raise ConfigError(msg)
    return ModelConfig.from_dict(config['model'])


def checkpoint_calibration(ckpt: Mapping[str, Any], path: str | Path) -> Calibration:
    """The calibration of a checkpoint dict read from ``path`` (see ``anovox_perception.core.calibration``).

    Raises:
        DataError: The checkpoint has no calibration section (written before checkpoints carried
            one; the message names the upgrade command) or an invalid one.
    """
    try:
        return read_calibration(ckpt, f'checkpoint {path}', str(path))
    except CalibrationError as err:
        raise DataError(str(err)) from None


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = 'cpu'
) -> tuple[AnomalyDetector, dict[str, Any], dict[str, Any]]:
    """Rebuild the model of a checkpoint, with its weights and its calibration's score rule, in eval mode.

    The model is rebuilt without the ImageNet weights file (the checkpoint holds
    every weight), so a checkpoint loads on machines that lack that file.

    Args:
        path: Checkpoint file.
        map_location: Device for the tensors.

    Returns:
        ``(model, config_dict, checkpoint_dict)``.

    Raises:
        DataError: When the file is missing, unreadable, has no valid calibration, or its weights do
            not fit its config.
        ConfigError: When its config is invalid.
    """
    ckpt = read_checkpoint(path, map_location)
    calibration = checkpoint_calibration(ckpt, path)
    config = ckpt['config']
    cfg = model_config_of(config)
    model = build_model(ModelConfig.from_dict({**cfg.to_dict(), 'image_weights': None}), calibration.score_rule)
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
