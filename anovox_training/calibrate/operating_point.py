"""Choosing the node's operating point on validation after the score rule: anomaly threshold and LiDAR support.

The node publishes a marker for each connected component of occupied voxels scoring at least
``anomaly_threshold`` that holds at least ``min_component_points`` LiDAR points
(``anovox_perception.core.postprocess.find_components``). Both values decide how many
false alarms a driver sees, so they are chosen on validation, by the object-level counts
evaluation reports (``anovox_training.evaluate.object_metrics``: a component is a false
alarm when it overlaps no anomaly instance and no ignored voxel; an instance is detected
when a component overlaps it), run through the node's own component rule:

1. Every candidate pair of :data:`ANOMALY_THRESHOLDS` x :data:`MIN_COMPONENT_POINTS` is
   counted over the validation frames, scored as exported (the checkpoint's calibrated
   occupancy threshold and chosen score rule); frames without anomalies count too, since
   a street without one is where false alarms are seen.
2. Among the pairs whose false alarms per frame are at most the bound
   (``eval.max_false_alarms_per_frame``), the lowest anomaly threshold; at that threshold
   the pair with the best object recall, then the fewest LiDAR points.
3. If no pair reaches the bound: the pair with the fewest false alarms per frame (then the
   best recall, the lowest threshold, the fewest points), recorded as not meeting it.

The choice goes into each checkpoint's ``calibration`` (``operating_point`` and
``operating_point_chosen_on``) and every tried pair's counts into ``operating_point_tuning``.
:func:`anovox_training.calibrate.score_tuning.tune_checkpoints` calls it after the score rule,
for training and for its command line alike.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anovox_perception.core.calibration import ChosenOn, OperatingPoint
from anovox_perception.core.errors import ConfigError
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.parameters import defaults
from anovox_perception.core.postprocess import component_candidates
from anovox_perception.core.preprocess import INPUT_NAMES, InputSpec
from anovox_training.data.cache import CachedFrame, data_hash, load_cached
from anovox_training.data.labels import is_anomaly
from anovox_training.evaluate.object_metrics import FrameObjects, ObjectCounts, frame_objects
from anovox_training.model.checkpoint import checkpoint_calibration, load_checkpoint, read_checkpoint, save_checkpoint
from anovox_training.model.detector import AnomalyDetector
from anovox_training.train.config import DEFAULTS

__all__ = [
    'ANOMALY_THRESHOLDS',
    'MIN_COMPONENT_POINTS',
    'OperatingPointChoice',
    'choose_operating_point',
    'count_operating_points',
    'max_false_alarms_of',
    'tune_operating_point',
]

# Candidates, lowest first: anomaly thresholds 0.30 .. 0.95 in steps of 0.05, and LiDAR points per component.
ANOMALY_THRESHOLDS = tuple(round(0.30 + 0.05 * k, 2) for k in range(14))
MIN_COMPONENT_POINTS = (0, 1, 3, 5, 10)
_MIN_VOXELS = int(defaults()['markers.min_component_voxels'])  # the node's smallest component
# The counts of each tried candidate the checkpoint keeps.
_RECORDED = ('frames', 'components', 'false_alarms', 'false_alarms_per_frame', 'instances', 'detected', 'recall')


@dataclass(frozen=True)
class OperatingPointChoice:
    """The chosen operating point and what it was chosen by.

    Attributes:
        operating_point: The choice.
        meets_bound: Whether its false alarms per frame are within the bound.
        max_false_alarms_per_frame: The bound.
        tried: Every candidate's object counts (``ObjectCounts.result``) by ``thr=T,points=P``.
    """

    operating_point: OperatingPoint
    meets_bound: bool
    max_false_alarms_per_frame: float
    tried: dict[str, dict[str, Any]]

    def record(self, chosen_on: ChosenOn) -> dict[str, Any]:
        """What a checkpoint keeps as ``operating_point_tuning`` (JSON-ready)."""
        return {
            'chosen': self.operating_point.to_dict(),
            'meets_bound': self.meets_bound,
            'max_false_alarms_per_frame': self.max_false_alarms_per_frame,
            'rule': (
                'lowest anomaly threshold with false alarms per frame <= the bound, then best recall, then fewest '
                'points'
                if self.meets_bound
                else 'no candidate met the bound: fewest false alarms per frame'
            ),
            'chosen_on': chosen_on.to_dict(),
            'tried': self.tried,
        }


def _key(point: OperatingPoint) -> str:
    return f'thr={point.anomaly_threshold:g},points={point.min_component_points}'


def count_operating_points(
    frames: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, FrameObjects]],
    grid: GridSpec,
    occupancy_threshold: float,
    thresholds: Sequence[float] = ANOMALY_THRESHOLDS,
    min_points: Sequence[int] = MIN_COMPONENT_POINTS,
) -> dict[OperatingPoint, ObjectCounts]:
    """Object counts of every candidate over frames, through the node's component rule.

    Args:
        frames: Per frame ``(occupancy, anomaly, bev, truth)``: the (nx, ny, nz) grids as exported,
            the BEV model input and the frame's ground truth (:func:`object_metrics.frame_objects`).
        grid: The detector grid.
        occupancy_threshold: The model's calibrated occupancy threshold.
        thresholds, min_points: The candidates.

    Returns:
        ``{OperatingPoint: ObjectCounts}`` for every pair.
    """
    points = [OperatingPoint(t, p) for t in thresholds for p in min_points]
    counts = {point: ObjectCounts.at(point) for point in points}
    for occupancy, anomaly, bev, truth in frames:
        for threshold in thresholds:
            # One labelling per threshold; the support rule, ranking and cap per point count.
            candidates = component_candidates(
                occupancy, anomaly, grid, occupancy_threshold, threshold, _MIN_VOXELS, lidar_bev=bev
            )
            for p in min_points:
                point = OperatingPoint(threshold, p)
                counts[point].add_components(grid, truth, *candidates.voxels(p))
    return counts


def choose_operating_point(
    results: Mapping[OperatingPoint, Mapping[str, Any]], max_false_alarms_per_frame: float
) -> OperatingPointChoice:
    """The operating point by the rule of the module docstring.

    Args:
        results: ``ObjectCounts.result()`` of each candidate (``false_alarms_per_frame``, ``recall``).
        max_false_alarms_per_frame: The bound.

    Raises:
        ConfigError: No candidates, or candidates counted on no frame.
    """
    if not results:
        msg = 'choose_operating_point: no candidates'
        raise ConfigError(msg)
    if any(r['false_alarms_per_frame'] is None for r in results.values()):
        msg = 'choose_operating_point: the candidates were counted on no frame'
        raise ConfigError(msg)

    def recall(point: OperatingPoint) -> float:
        value = results[point]['recall']
        return -1.0 if value is None else value  # no anomaly instance: recall cannot tell candidates apart

    def false_alarms(point: OperatingPoint) -> float:
        return results[point]['false_alarms_per_frame']

    within = [p for p in results if false_alarms(p) <= max_false_alarms_per_frame]
    if within:
        chosen = min(within, key=lambda p: (p.anomaly_threshold, -recall(p), p.min_component_points))
    else:
        chosen = min(results, key=lambda p: (false_alarms(p), -recall(p), p.anomaly_threshold, p.min_component_points))
    order = sorted(results, key=lambda p: (p.anomaly_threshold, p.min_component_points))
    tried = {_key(p): {k: results[p][k] for k in _RECORDED if k in results[p]} for p in order}
    return OperatingPointChoice(chosen, bool(within), float(max_false_alarms_per_frame), tried)


def max_false_alarms_of(config: Mapping[str, Any]) -> float:
    """``eval.max_false_alarms_per_frame`` of a checkpoint's training config (the default where it predates the key)."""
    key = 'max_false_alarms_per_frame'
    return float(config.get('eval', {}).get(key, DEFAULTS['eval'][key]))


def _truth(frame: CachedFrame, grid: GridSpec) -> FrameObjects:
    """The frame's ground truth for matching; size buckets are not needed to count false alarms and recall."""
    index, label = frame.targets.index, frame.targets.label
    n_anomaly = int(is_anomaly(label).sum())
    return frame_objects(grid, index, label, np.full(n_anomaly, 'unknown', dtype=object))


@torch.inference_mode()
def _exported_frames(
    model: AnomalyDetector, paths: Sequence[Path], spec: InputSpec
) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, FrameObjects]]:
    for start in range(0, len(paths), 4):
        frames = [load_cached(p, spec) for p in paths[start : start + 4]]
        batch = [torch.from_numpy(np.concatenate([f.inputs[n] for f in frames])) for n in INPUT_NAMES]
        occupancy, anomaly = model(*batch)
        for i, frame in enumerate(frames):
            yield occupancy[i].numpy(), anomaly[i].numpy(), frame.inputs['bev'][0], _truth(frame, spec.grid)


def tune_operating_point(
    checkpoints: Sequence[Path],
    val_paths: Sequence[Path],
    spec: InputSpec,
    *,
    sources: Sequence[str | Path],
    max_false_alarms_per_frame: float | None = None,
) -> OperatingPointChoice | None:
    """Choose on the first existing checkpoint (best.pt first) and write the choice into each one's calibration.

    Run after the score rule is written: the frames are scored as the exported graph scores them.

    Args:
        checkpoints: Checkpoint files; the missing ones are left out.
        val_paths: Cached samples of the validation frames to choose on.
        spec: Their input spec.
        sources: The dataset folders ``val_paths`` come from, recorded with the choice.
        max_false_alarms_per_frame: The bound (None: the checkpoint config's ``eval.max_false_alarms_per_frame``).

    Returns:
        The choice, or None when there was nothing to choose on (no checkpoint, no frame).

    Raises:
        DataError: A checkpoint has no valid calibration.
    """
    existing = [p for p in checkpoints if p.is_file()]
    if not existing or not val_paths:
        return None
    model, config, ckpt = load_checkpoint(existing[0])
    model.eval()
    bound = max_false_alarms_of(config) if max_false_alarms_per_frame is None else max_false_alarms_per_frame
    occupancy_threshold = checkpoint_calibration(ckpt, existing[0]).occupancy_threshold
    counts = count_operating_points(_exported_frames(model, val_paths, spec), spec.grid, occupancy_threshold)
    choice = choose_operating_point({p: c.result() for p, c in counts.items()}, bound)
    chosen = choice.tried[_key(choice.operating_point)]
    print(
        f'operating point chosen on validation: anomaly_threshold={choice.operating_point.anomaly_threshold:g} '
        f'min_component_points={choice.operating_point.min_component_points} '
        f'(false alarms per frame {chosen["false_alarms_per_frame"]:.3f}, recall {chosen["recall"]}'
        + ('' if choice.meets_bound else f'; no candidate reached the bound {bound:g}')
        + ')'
    )
    if not choice.meets_bound:
        print(f'operating point: no candidate reached {bound:g} false alarms per frame', file=sys.stderr)
    chosen_on = ChosenOn.of_sources(sources, data_hash(val_paths))
    for path in existing:
        state = read_checkpoint(path)
        calibration = checkpoint_calibration(state, path)
        state['calibration'] = replace(
            calibration, operating_point=choice.operating_point, operating_point_chosen_on=chosen_on
        ).to_dict()
        state['operating_point_tuning'] = choice.record(chosen_on)
        save_checkpoint(path, state)
    return choice
