"""Choosing the score rule on validation after training: ``semantic_weight`` and ``anomaly_temperature``.

Neither changes a weight; both only change how the exported anomaly score
combines head outputs (``model/head.py``), so they are picked after training
from one pass of the network over the validation frames:

1. ``semantic_weight`` = the smallest candidate whose Anomalies_Only AP is within
   :data:`AP_TOLERANCE` of the best (the semantic cue lifts every score, which
   costs F1 and PPV on the fixed thresholds, so it must earn its place);
2. ``anomaly_temperature`` = among the candidates whose FPR95 is within
   :data:`FPR95_TOLERANCE` of the lowest, the one with the best F1 (then the
   smallest). Temperature scaling keeps the ranking (AP and AUROC do not move)
   but decides how the scores spread over AnoVox's 0.01 threshold grid.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from anovox_perception.preprocess import INPUT_NAMES, InputSpec
from anovox_training.cache import load_cached
from anovox_training.data.labels import is_anomaly
from anovox_training.metrics import binary_metrics
from anovox_training.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from anovox_training.model.detector import AnomalyDetector
from anovox_training.targets import EVAL_IGNORED_LABELS

__all__ = [
    'AP_TOLERANCE',
    'FPR95_TOLERANCE',
    'ValidationVoxels',
    'choose',
    'collect_voxels',
    'score',
    'tune_checkpoints',
]

# Differences below these are validation noise, not a reason to give up F1 or simplicity.
AP_TOLERANCE = 0.01
FPR95_TOLERANCE = 0.01
_IGNORED = np.zeros(256, dtype=bool)
_IGNORED[sorted(EVAL_IGNORED_LABELS)] = True


@dataclass(frozen=True)
class ValidationVoxels:
    """Head outputs at the evaluated voxels of the validation frames that contain an anomaly.

    Attributes:
        anomaly_logit: (N,) float64 anomaly logits.
        max_softmax: (N,) float64 normal-class max-softmax.
        positive: (N,) bool anomaly labels.
    """

    anomaly_logit: np.ndarray
    max_softmax: np.ndarray
    positive: np.ndarray


def score(voxels: ValidationVoxels, semantic_weight: float, temperature: float) -> np.ndarray:
    """The exported score rule (``head.anomaly_score``) in float64 numpy."""
    p = 1.0 / (1.0 + np.exp(-voxels.anomaly_logit / temperature))
    return 1.0 - (1.0 - p) * voxels.max_softmax**semantic_weight


@torch.inference_mode()
def collect_voxels(
    model: AnomalyDetector, paths: Sequence[Path], spec: InputSpec, occupancy_threshold: float
) -> ValidationVoxels | None:
    """Run the model over cached frames; keep the evaluated voxels of Anomalies_Only frames (None if none)."""
    logits_out, msp_out, labels_out = [], [], []
    for start in range(0, len(paths), 4):
        frames = [load_cached(p, spec) for p in paths[start : start + 4]]
        batch = [torch.from_numpy(np.concatenate([f.inputs[n] for f in frames])) for n in INPUT_NAMES]
        logits = model.logits(*batch)
        occupancy = torch.sigmoid(logits.occupancy).permute(0, 2, 3, 1).numpy()
        anomaly = logits.anomaly.permute(0, 2, 3, 1).numpy()
        msp = torch.softmax(logits.semantic, dim=1).amax(dim=1).permute(0, 2, 3, 1).numpy()
        for i, frame in enumerate(frames):
            keep = ~_IGNORED[frame.targets.label]
            index, label = frame.targets.index[keep], frame.targets.label[keep]
            positive = is_anomaly(label)
            if not positive.any():
                continue
            predicted = occupancy[i].reshape(-1)[index] >= occupancy_threshold
            logits_out.append(anomaly[i].reshape(-1)[index][predicted])
            msp_out.append(msp[i].reshape(-1)[index][predicted])
            labels_out.append(positive[predicted])
    if not labels_out or not np.concatenate(labels_out).any():
        return None
    return ValidationVoxels(
        anomaly_logit=np.concatenate(logits_out).astype(np.float64),
        max_softmax=np.concatenate(msp_out).astype(np.float64),
        positive=np.concatenate(labels_out),
    )


def choose(
    voxels: ValidationVoxels, weights: Sequence[float], temperatures: Sequence[float], current: tuple[float, float]
) -> tuple[float, float, dict[str, dict[str, float]]]:
    """Pick ``(semantic_weight, temperature)`` as the module docstring says; also return every tried metric."""
    weight, temperature = current
    tried: dict[str, dict[str, float]] = {}
    if weights:
        ap = {}
        for w in weights:
            m = binary_metrics(score(voxels, w, temperature), voxels.positive)
            tried[f'w={w:g},T={temperature:g}'] = m
            ap[w] = m['AP']
        weight = min(w for w in weights if ap[w] >= max(ap.values()) - AP_TOLERANCE)
    if temperatures:
        fpr95, f1 = {}, {}
        for t in temperatures:
            m = binary_metrics(score(voxels, weight, t), voxels.positive)
            tried[f'w={weight:g},T={t:g}'] = m
            fpr95[t] = m['FPR95'] if np.isfinite(m['FPR95']) else 1.0
            f1[t] = m['F1']
        good = [t for t in temperatures if fpr95[t] <= min(fpr95.values()) + FPR95_TOLERANCE]
        temperature = max(good, key=lambda t: (f1[t], -t))
    return weight, temperature, tried


def tune_checkpoints(
    checkpoints: Sequence[Path],
    val_paths: Sequence[Path],
    spec: InputSpec,
    weights: Sequence[float],
    temperatures: Sequence[float],
) -> tuple[float, float] | None:
    """Tune on the first existing checkpoint (best.pt first) and write the choice into each one.

    Returns:
        The chosen ``(semantic_weight, anomaly_temperature)``, or None when there was
        nothing to tune on (no checkpoint, or no anomaly among the validation voxels).
    """
    existing = [p for p in checkpoints if p.is_file()]
    if not existing or not (weights or temperatures):
        return None
    model, config, ckpt = load_checkpoint(existing[0])
    voxels = collect_voxels(model, val_paths, spec, float(ckpt.get('occupancy_threshold', 0.5)))
    if voxels is None:
        return None
    current = (config['model']['semantic_weight'], config['model']['anomaly_temperature'])
    weight, temperature, tried = choose(voxels, weights, temperatures, current)
    for key, m in tried.items():
        print(f'score rule {key}: AP={m["AP"]:.4f} FPR95={m["FPR95"]:.4f} F1={m["F1"]:.4f}', file=sys.stderr)
    print(f'score rule chosen on validation: semantic_weight={weight:g} anomaly_temperature={temperature:g}')
    for path in existing:
        state = read_checkpoint(path)
        state['config']['model']['semantic_weight'] = float(weight)
        state['config']['model']['anomaly_temperature'] = float(temperature)
        state['score_tuning'] = tried
        save_checkpoint(path, state)
    return weight, temperature
