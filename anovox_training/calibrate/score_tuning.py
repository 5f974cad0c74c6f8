"""Choosing the score rule on validation after training (weight, temperature, smoothing, LiDAR gate).

After it, on the same frames, :mod:`anovox_training.calibrate.operating_point` chooses the node's
operating point (anomaly threshold and LiDAR support of a marker) by object-level false alarms.

None changes a weight; each only changes how the exported anomaly score
combines head outputs (``model/head.py``), so they are picked after training
from passes of the network over the validation frames:

1. ``semantic_weight`` = the smallest candidate whose Anomalies_Only AP is within
   :data:`AP_TOLERANCE` of the best (the semantic cue lifts every score, which
   costs F1 and PPV on the fixed thresholds, so it must earn its place);
2. ``anomaly_temperature`` = among the candidates whose FPR95 is within
   :data:`FPR95_TOLERANCE` of the lowest, the one with the best F1 (then the
   smallest). Temperature scaling keeps the ranking (AP and AUROC do not move)
   but decides how the scores spread over AnoVox's 0.01 threshold grid.
3. ``score_smoothing`` = the largest window whose Anomalies_Only AP is within
   :data:`AP_TOLERANCE` of the best, scored exactly as exported with the chosen
   weight and temperature (a second pass: smoothing needs the neighbours on the
   grid). Among windows validation cannot tell apart, the larger one: on an
   80-scenario validation split the categories never seen in training gained with
   the window up to 7-9 cells while the training categories lost
   (``models/README.md``), and unseen objects are what the detector is for;
   validation's category is one training never sees.
4. ``lidar_support`` = the tightest LiDAR-support gate (``head.gate_by_lidar``: a
   voxel keeps its score only with a return in the cube of that side around it;
   0, no gate, counts as the loosest) whose Anomalies_Only AP is within
   :data:`AP_TOLERANCE` of the best, scored as exported with the rule chosen so far.
   Among gates validation cannot tell apart, the one that claims least without
   LiDAR evidence: on a real street the occupancy head fills in far more voxels where
   no ray returned than on the synthetic frames (``models/README.md``), and a frame
   of ours cannot say how much, so validation only bounds what the gate may cost.
   The camera-only variant has no LiDAR input: its gate candidates are dropped.

The choice goes into each checkpoint's ``calibration`` (``score_rule`` and
``score_rule_chosen_on``: the folders and the hash of the frames it was chosen on);
the occupancy threshold it was scored at is the checkpoint's calibrated one.

Re-tune trained checkpoints (e.g. after a new score option) from the command line:

    python -m anovox_training.calibrate.score_tuning --checkpoint runs/fusion/best.pt \
        --checkpoint runs/fusion/last.pt --data data/synth/val data/synth/val_large
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anovox_perception.core.calibration import ChosenOn, ScoreRule, is_smoothing_window, is_support_window
from anovox_perception.core.errors import AnovoxError, ConfigError
from anovox_perception.core.preprocess import INPUT_NAMES, InputSpec
from anovox_training.calibrate.operating_point import tune_operating_point
from anovox_training.data.cache import CachedFrame, SampleCache, data_hash, evenly_spread, frame_refs, load_cached
from anovox_training.data.dataset import resolve_scenarios
from anovox_training.data.labels import is_anomaly
from anovox_training.data.targets import EVAL_IGNORED_LABELS
from anovox_training.evaluate.metrics import binary_metrics
from anovox_training.model.checkpoint import (
    checkpoint_calibration,
    load_checkpoint,
    model_config_of,
    read_checkpoint,
    save_checkpoint,
)
from anovox_training.model.detector import AnomalyDetector
from anovox_training.model.head import HeadLogits
from anovox_training.train.config import DEFAULTS

__all__ = [
    'AP_TOLERANCE',
    'FPR95_TOLERANCE',
    'ValidationVoxels',
    'choose',
    'choose_smoothing',
    'choose_support',
    'collect_exported',
    'collect_voxels',
    'main',
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


def _validation_batches(
    model: AnomalyDetector, paths: Sequence[Path], spec: InputSpec
) -> Iterator[tuple[list[CachedFrame], HeadLogits, torch.Tensor]]:
    for start in range(0, len(paths), 4):
        frames = [load_cached(p, spec) for p in paths[start : start + 4]]
        batch = [torch.from_numpy(np.concatenate([f.inputs[n] for f in frames])) for n in INPUT_NAMES]
        yield frames, *model.decode(*batch)


def _evaluated(frame: CachedFrame, occupancy: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Flat grid indices and anomaly labels of a frame's evaluated voxels (None: not an Anomalies_Only frame)."""
    keep = ~_IGNORED[frame.targets.label]
    index, label = frame.targets.index[keep], frame.targets.label[keep]
    positive = is_anomaly(label)
    if not positive.any():
        return None
    predicted = occupancy.reshape(-1)[index] >= threshold
    return index[predicted], positive[predicted]


@torch.inference_mode()
def collect_voxels(
    model: AnomalyDetector, paths: Sequence[Path], spec: InputSpec, occupancy_threshold: float
) -> ValidationVoxels | None:
    """Run the model over cached frames; keep the evaluated voxels of Anomalies_Only frames (None if none)."""
    logits_out, msp_out, labels_out = [], [], []
    for frames, logits, _ in _validation_batches(model, paths, spec):
        occupancy = torch.sigmoid(logits.occupancy).permute(0, 2, 3, 1).numpy()
        anomaly = logits.anomaly.permute(0, 2, 3, 1).numpy()
        msp = torch.softmax(logits.semantic, dim=1).amax(dim=1).permute(0, 2, 3, 1).numpy()
        for i, frame in enumerate(frames):
            evaluated = _evaluated(frame, occupancy[i], occupancy_threshold)
            if evaluated is None:
                continue
            index, positive = evaluated
            logits_out.append(anomaly[i].reshape(-1)[index])
            msp_out.append(msp[i].reshape(-1)[index])
            labels_out.append(positive)
    if not labels_out or not np.concatenate(labels_out).any():
        return None
    return ValidationVoxels(
        anomaly_logit=np.concatenate(logits_out).astype(np.float64),
        max_softmax=np.concatenate(msp_out).astype(np.float64),
        positive=np.concatenate(labels_out),
    )


@torch.inference_mode()
def collect_exported(
    model: AnomalyDetector,
    paths: Sequence[Path],
    spec: InputSpec,
    occupancy_threshold: float,
    variants: Mapping[int, Mapping[str, int]],
) -> tuple[dict[int, np.ndarray], np.ndarray] | None:
    """Exported scores (the model's weight and temperature) per rule variant at the evaluated voxels.

    Args:
        variants: Candidate -> the ``VoxelHead.probabilities`` overrides that score it
            (``score_smoothing``, ``lidar_support``).

    Returns:
        ``({candidate: (N,) scores}, (N,) anomaly labels)`` over the Anomalies_Only frames, or None
        if there is no anomaly among them.
    """
    scores_out: dict[int, list[np.ndarray]] = {key: [] for key in variants}
    labels_out = []
    for frames, logits, bev in _validation_batches(model, paths, spec):
        occupancy = torch.sigmoid(logits.occupancy).permute(0, 2, 3, 1).numpy()
        by_key = {key: model.head.probabilities(logits, bev, **kw)[1].numpy() for key, kw in variants.items()}
        for i, frame in enumerate(frames):
            evaluated = _evaluated(frame, occupancy[i], occupancy_threshold)
            if evaluated is None:
                continue
            index, positive = evaluated
            for key in variants:
                scores_out[key].append(by_key[key][i].reshape(-1)[index].astype(np.float64))
            labels_out.append(positive)
    if not labels_out or not np.concatenate(labels_out).any():
        return None
    return {key: np.concatenate(v) for key, v in scores_out.items()}, np.concatenate(labels_out)


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


def choose_smoothing(scores: dict[int, np.ndarray], positive: np.ndarray) -> tuple[int, dict[int, dict[str, float]]]:
    """The largest window within :data:`AP_TOLERANCE` of the best AP, and every tried window's metrics."""
    tried = {size: binary_metrics(values, positive) for size, values in scores.items()}
    best_ap = max(m['AP'] for m in tried.values())
    return max(size for size, m in tried.items() if m['AP'] >= best_ap - AP_TOLERANCE), tried


def choose_support(scores: dict[int, np.ndarray], positive: np.ndarray) -> tuple[int, dict[int, dict[str, float]]]:
    """The tightest gate within :data:`AP_TOLERANCE` of the best AP (0, no gate, the loosest), and each's metrics."""
    tried = {side: binary_metrics(values, positive) for side, values in scores.items()}
    best_ap = max(m['AP'] for m in tried.values())
    near = [side for side, m in tried.items() if m['AP'] >= best_ap - AP_TOLERANCE]
    return min(near, key=lambda side: side if side else math.inf), tried


def tune_checkpoints(
    checkpoints: Sequence[Path],
    val_paths: Sequence[Path],
    spec: InputSpec,
    weights: Sequence[float],
    temperatures: Sequence[float],
    smoothings: Sequence[int] = (),
    supports: Sequence[int] = (),
    *,
    sources: Sequence[str | Path],
    max_false_alarms_per_frame: float | None = None,
) -> ScoreRule | None:
    """Tune on the first existing checkpoint (best.pt first) and write the choice into each one's calibration.

    Then, scored by the rule written, the node's operating point is chosen on the same frames and
    written too (:func:`anovox_training.calibrate.operating_point.tune_operating_point`).

    Args:
        checkpoints: Checkpoint files; the missing ones are left out.
        val_paths: Cached samples of the frames to choose on.
        spec: Their input spec.
        weights, temperatures, smoothings, supports: Candidates (empty: keep the checkpoint's value).
        sources: The dataset folders ``val_paths`` come from, recorded with the choice.
        max_false_alarms_per_frame: The operating point's bound (None: the checkpoint config's).

    Returns:
        The chosen score rule, or None when there was nothing to tune it on (no checkpoint, no
        candidates, or no anomaly among the validation voxels).

    Raises:
        DataError: A checkpoint has no valid calibration.
    """
    existing = [p for p in checkpoints if p.is_file()]
    if not existing:
        return None
    rule = None
    if weights or temperatures or smoothings or supports:
        candidates = _Candidates(tuple(weights), tuple(temperatures), tuple(smoothings), tuple(supports))
        rule = _tune_score_rule(existing, val_paths, spec, candidates, sources)
    tune_operating_point(
        existing, val_paths, spec, sources=sources, max_false_alarms_per_frame=max_false_alarms_per_frame
    )
    return rule


@dataclass(frozen=True)
class _Candidates:
    """Candidate values of each score-rule term (empty: keep the checkpoint's)."""

    weights: tuple[float, ...]
    temperatures: tuple[float, ...]
    smoothings: tuple[int, ...]
    supports: tuple[int, ...]


def _tune_score_rule(
    existing: Sequence[Path],
    val_paths: Sequence[Path],
    spec: InputSpec,
    candidates: _Candidates,
    sources: Sequence[str | Path],
) -> ScoreRule | None:
    """The score-rule part of :func:`tune_checkpoints`: choose on ``existing[0]``, write into each."""
    model, _, ckpt = load_checkpoint(existing[0])
    if model.config.modality == 'camera':
        # The camera-only variant reads no LiDAR, so there is nothing to gate its scores by.
        candidates = replace(candidates, supports=())
    current = checkpoint_calibration(ckpt, existing[0])
    threshold = current.occupancy_threshold
    rule = current.score_rule
    tried: dict[str, dict[str, float]] = {}
    if candidates.weights or candidates.temperatures:
        voxels = collect_voxels(model, val_paths, spec, threshold)
        if voxels is None:
            return None
        weight, temperature, tried = choose(
            voxels, candidates.weights, candidates.temperatures, (rule.semantic_weight, rule.anomaly_temperature)
        )
        rule = replace(rule, semantic_weight=float(weight), anomaly_temperature=float(temperature))
    prefix = f'w={rule.semantic_weight:g},T={rule.anomaly_temperature:g}'
    # Smoothing is chosen before the gate (off meanwhile), which then only removes claims from the smoothed score.
    terms = (
        ('score_smoothing', 'smoothing', candidates.smoothings, choose_smoothing, {'lidar_support': 0}),
        ('lidar_support', 'lidar_support', candidates.supports, choose_support, {}),
    )
    for term, label, values, chooser, fixed in terms:
        if not values:
            continue
        model.set_score_rule(replace(rule, **fixed))
        collected = collect_exported(model, val_paths, spec, threshold, {k: {**fixed, term: k} for k in values})
        if collected is None:
            return None
        chosen, by_value = chooser(*collected)
        # The gate's candidates were scored on the smoothing already in the rule; their keys say which.
        scored_on = prefix if term == 'score_smoothing' else f'{prefix},smoothing={rule.score_smoothing}'
        tried.update({f'{scored_on},{label}={k}': m for k, m in by_value.items()})
        rule = replace(rule, **{term: chosen})
    for key, m in tried.items():
        print(f'score rule {key}: AP={m["AP"]:.4f} FPR95={m["FPR95"]:.4f} F1={m["F1"]:.4f}', file=sys.stderr)
    print(
        f'score rule chosen on validation: semantic_weight={rule.semantic_weight:g} '
        f'anomaly_temperature={rule.anomaly_temperature:g} score_smoothing={rule.score_smoothing} '
        f'lidar_support={rule.lidar_support}'
    )
    chosen_on = ChosenOn.of_sources(sources, data_hash(val_paths))
    for path in existing:
        state = read_checkpoint(path)
        calibration = checkpoint_calibration(state, path)
        state['calibration'] = replace(calibration, score_rule=rule, score_rule_chosen_on=chosen_on).to_dict()
        state['score_tuning'] = tried
        save_checkpoint(path, state)
    return rule


def _candidates(config: dict[str, Any], key: str, override: list[Any] | None) -> list[Any]:
    # Checkpoints written before a candidate list existed fall back to today's defaults.
    if override is not None:
        return override
    return list(config.get('eval', {}).get(key, DEFAULTS['eval'][key]))


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Choose the score rule of trained checkpoints on validation frames and write it into them.'
    )
    parser.add_argument(
        '--checkpoint', type=Path, action='append', required=True,
        help='checkpoint to tune (repeat: tuned on the first, the choice written into all)',
    )  # fmt: skip
    parser.add_argument('--data', nargs='+', required=True, help='validation dataset roots or scenario folders')
    parser.add_argument('--cache-dir', default=None, help="sample cache root (default: the checkpoint config's)")
    parser.add_argument('--max-frames', type=int, default=None, help='frames spread over the split (default: config)')
    parser.add_argument('--semantic-weights', type=float, nargs='*', default=None, help='candidates (default: config)')
    parser.add_argument('--temperatures', type=float, nargs='*', default=None, help='candidates (default: config)')
    parser.add_argument('--smoothings', type=int, nargs='*', default=None, help='odd window sides (default: config)')
    parser.add_argument(
        '--lidar-supports', type=int, nargs='*', default=None,
        help='LiDAR-support gate cube sides, 0: no gate (default: config; none for a camera-only model)',
    )  # fmt: skip
    parser.add_argument(
        '--max-false-alarms-per-frame', type=float, default=None,
        help="the operating point's bound on object false alarms per frame (default: config)",
    )  # fmt: skip
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        if args.smoothings and not all(is_smoothing_window(k) for k in args.smoothings):
            msg = f'--smoothings must be odd integers >= 1, got {args.smoothings}'
            raise ConfigError(msg)
        if args.lidar_supports and not all(is_support_window(k) for k in args.lidar_supports):
            msg = f'--lidar-supports must be 0 (no gate) or odd integers >= 1, got {args.lidar_supports}'
            raise ConfigError(msg)
        if args.temperatures and any(t <= 0 for t in args.temperatures):
            msg = f'--temperatures must be > 0, got {args.temperatures}'
            raise ConfigError(msg)
        if args.semantic_weights and any(w < 0 for w in args.semantic_weights):
            msg = f'--semantic-weights must be >= 0, got {args.semantic_weights}'
            raise ConfigError(msg)
        if args.max_false_alarms_per_frame is not None and not args.max_false_alarms_per_frame >= 0:
            msg = f'--max-false-alarms-per-frame must be >= 0, got {args.max_false_alarms_per_frame}'
            raise ConfigError(msg)
        for name, value in (('--threads', args.threads), ('--max-frames', args.max_frames)):
            if value is not None and value < 1:
                msg = f'{name} must be >= 1, got {value}'
                raise ConfigError(msg)
        torch.set_num_threads(args.threads)
        first = read_checkpoint(args.checkpoint[0])
        checkpoint_calibration(first, args.checkpoint[0])  # a checkpoint without one names its upgrade
        config = first['config']
        spec = model_config_of(config).input_spec()
        refs = frame_refs(resolve_scenarios(args.data))
        default_frames = config.get('eval', {}).get('tune_max_frames', DEFAULTS['eval']['tune_max_frames'])
        refs = evenly_spread(refs, args.max_frames or default_frames)
        if not refs:
            msg = f'no frames with LiDAR points and voxel grids under {args.data}'
            raise ConfigError(msg)
        cache = SampleCache(args.cache_dir or config['data']['cache_dir'], spec)
        paths = cache.ensure(refs)
        chosen = tune_checkpoints(
            args.checkpoint,
            paths,
            spec,
            _candidates(config, 'semantic_weights', args.semantic_weights),
            _candidates(config, 'anomaly_temperatures', args.temperatures),
            _candidates(config, 'score_smoothings', args.smoothings),
            _candidates(config, 'lidar_supports', args.lidar_supports),
            sources=args.data,
            max_false_alarms_per_frame=args.max_false_alarms_per_frame,
        )
    except AnovoxError as err:
        print(f'score_tuning: error: {err}', file=sys.stderr)
        return 2
    if chosen is None:
        print('score_tuning: nothing to tune on (no candidates, or no anomaly voxel in the frames)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
