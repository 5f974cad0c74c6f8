"""Warm start: begin training from the weights of another checkpoint.

Typical use: train the fusion model from its LiDAR-only variant, so the LiDAR
stream starts where that model ended and the camera branch learns what the
LiDAR misses (``train.init_from``). Every tensor whose name and shape match is
copied (parameters and batch-norm statistics); the rest keep their fresh
initialisation. When the source has no fusion stage but the model has one, the
fusion stage starts near the identity, so the warm-started model begins with
(almost) the source's outputs instead of a random camera contribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from anovox_perception.core.errors import ConfigError
from anovox_training.model.checkpoint import read_checkpoint
from anovox_training.model.detector import AnomalyDetector

__all__ = ['WarmStart', 'warm_start']


@dataclass(frozen=True)
class WarmStart:
    """What a warm start copied: tensor names loaded, kept fresh (absent in the source), shape-mismatched."""

    source: Path
    loaded: tuple[str, ...]
    fresh: tuple[str, ...]
    mismatched: tuple[str, ...]
    fusion_identity: bool

    def summary(self) -> str:
        text = (
            f'warm start from {self.source}: {len(self.loaded)} tensors loaded, '
            f'{len(self.fresh)} fresh, {len(self.mismatched)} of another shape kept fresh'
        )
        if self.mismatched:
            text += f' ({", ".join(self.mismatched[:5])}{", ..." if len(self.mismatched) > 5 else ""})'
        if self.fusion_identity:
            text += '; fusion stage starts near the identity'
        return text


def warm_start(model: AnomalyDetector, path: str | Path) -> WarmStart:
    """Copy the matching weights of the checkpoint at ``path`` into ``model`` (in place).

    Raises:
        DataError: When the checkpoint is missing or unreadable.
        ConfigError: When no tensor of it fits the model (another preset or grid).
    """
    path = Path(path)
    source = read_checkpoint(path)['model']
    target = model.state_dict()
    loaded, mismatched = [], []
    for name, tensor in source.items():
        if name not in target:
            continue
        if target[name].shape != tensor.shape:
            mismatched.append(name)
            continue
        loaded.append(name)
    if not loaded:
        msg = (
            f'train.init_from: no weight of {path} fits this model ({len(mismatched)} of another shape); '
            'warm-start from a checkpoint of the same preset and grid'
        )
        raise ConfigError(msg)
    with torch.no_grad():
        for name in loaded:
            target[name].copy_(source[name])
    fusion_identity = model.fusion is not None and not any(name.startswith('fusion.') for name in source)
    if fusion_identity:
        model.fusion.start_near_identity()
    fresh = tuple(name for name in target if name not in source)
    return WarmStart(path, tuple(loaded), fresh, tuple(mismatched), fusion_identity)
