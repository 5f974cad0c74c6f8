"""AnoVox metrics of what the node published, and of the offline pipeline on the same frames.

The node publishes the prediction set evaluation uses: every voxel with
occupancy >= ``occupancy_threshold``, with its anomaly score
(``~/output/voxel_scores``). Scattering those back onto the detector grid
(occupancy 1 where published, 0 elsewhere) and pooling with
:class:`~anovox_training.evaluate.run.VariantAccumulator` gives exactly the
metrics ``python -m anovox_training.evaluate`` computes from the model's full
grids, so the two can be compared number for number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anovox_perception.core.errors import DataError
from anovox_perception.core.geometry import GridSpec
from anovox_perception.tools.bag_reader import BagReader
from anovox_perception.tools.offline import OfflineFrame
from anovox_training.data.cache import CachedFrame
from anovox_training.data.targets import sparse_targets
from anovox_training.evaluate.run import VariantAccumulator
from anovox_training.integration.node_run import FrameOutput

__all__ = [
    'FrameTruth',
    'evaluate_offline',
    'evaluate_published',
    'frame_truths',
    'metrics_report',
]

# Published voxels are marked with this occupancy; any threshold in (0, 1] then selects exactly them.
_PUBLISHED = 1.0


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one bag frame.

    Attributes:
        scenario: Scenario name.
        frame_id: Scenario frame id.
        voxels: (M, 4) uint16 AnoVox voxels ``[ix, iy, iz, label]``.
        anomalies: (K, 7) float64 ``[x, y, z, l, w, h, label]`` of the anomaly objects (for size buckets).
    """

    scenario: str
    frame_id: int
    voxels: np.ndarray
    anomalies: np.ndarray


def frame_truths(
    bag: str | Path, ground_truth: Mapping[int, np.ndarray], scenario_dir: str | Path | None = None
) -> dict[int, FrameTruth]:
    """Ground truth by cloud stamp, with the anomaly objects read from the scenario when it is given.

    Args:
        bag: The input bag (its metadata maps stamps to frame ids).
        ground_truth: Voxels by cloud stamp (`node_run.read_ground_truth`).
        scenario_dir: The scenario the bag was written from; without it sizes are 'unknown'.

    Raises:
        DataError: The bag's frame list does not match its ground truth.
    """
    with BagReader(bag) as input_bag:
        meta = input_bag.description
    stamps = sorted(ground_truth)
    if meta.frame_ids and len(meta.frame_ids) != len(stamps):
        msg = f'bag {bag}: {len(meta.frame_ids)} frame ids but {len(stamps)} ground-truth messages'
        raise DataError(msg)
    frame_ids = meta.frame_ids or list(range(len(stamps)))
    reader = None
    if scenario_dir is not None:
        from anovox_training.data.reader import ScenarioReader

        reader = ScenarioReader(scenario_dir)
    out = {}
    for stamp, frame_id in zip(stamps, frame_ids, strict=True):
        anomalies = np.zeros((0, 7))
        if reader is not None and 'anomaly' in reader.sensors:
            frame = reader.read(frame_id, sensors=['anomaly'])
            rows = [[*a.location_m, *a.size_m, a.label] for a in frame.anomalies]
            anomalies = np.array(rows, dtype=np.float64).reshape(-1, 7)
        out[stamp] = FrameTruth(meta.scenario or 'bag', int(frame_id), ground_truth[stamp], anomalies)
    return out


def _cached(truth: FrameTruth, grid: GridSpec) -> CachedFrame:
    where = f'{truth.scenario} frame {truth.frame_id}'
    return CachedFrame(truth.scenario, truth.frame_id, {}, sparse_targets(truth.voxels, grid, where), truth.anomalies)


def evaluate_published(
    outputs: Iterable[FrameOutput], truths: Mapping[int, FrameTruth], grid: GridSpec
) -> dict[str, Any]:
    """Metrics (``VariantAccumulator.result()`` shape) of the node's published voxel scores.

    Frames without ground truth are skipped.

    Raises:
        DataError: A published voxel lies outside the model's grid (wrong grid or frame).
    """
    acc = VariantAccumulator(grid, occupancy_threshold=_PUBLISHED)
    for out in outputs:
        truth = truths.get(out.stamp_ns)
        if truth is None:
            continue
        occupancy = np.zeros(grid.shape, dtype=np.float32)
        anomaly = np.zeros(grid.shape, dtype=np.float32)
        index, inside = grid.cell_index(out.voxel_scores[:, :3])
        if not inside.all():
            msg = f'frame {truth.frame_id}: {int((~inside).sum())} published voxels lie outside the model grid'
            raise DataError(msg)
        occupancy[tuple(index.T)] = _PUBLISHED
        anomaly[tuple(index.T)] = out.voxel_scores[:, 3]
        acc.add(_cached(truth, grid), occupancy, anomaly)
    return acc.result()


def evaluate_offline(
    frames: Iterable[OfflineFrame], truths: Mapping[int, FrameTruth], grid: GridSpec, occupancy_threshold: float
) -> dict[str, Any]:
    """The same metrics from the offline pipeline's full grids (`anovox_perception.tools.offline.run_offline`)."""
    acc = VariantAccumulator(grid, occupancy_threshold=occupancy_threshold)
    for frame in frames:
        truth = truths.get(frame.stamp_ns)
        if truth is not None:
            acc.add(_cached(truth, grid), frame.result.occupancy, frame.result.anomaly)
    return acc.result()


def metrics_report(variant: Mapping[str, Any], frames: int, scenarios: int, split: str = 'test') -> dict[str, Any]:
    """The evaluation report shape, with the node's outputs as the ``fusion`` variant."""
    return {'split': split, 'frames': frames, 'scenarios': scenarios, 'variants': {'fusion': dict(variant)}}
