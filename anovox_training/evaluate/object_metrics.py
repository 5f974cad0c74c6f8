"""Object-level recall and false alarms at the node's operating point.

The node turns each frame's grids into anomaly markers with
:func:`anovox_perception.core.postprocess.find_components` (occupied voxels with
``anomaly >= anomaly_threshold``, 26-connected, at least
``markers.min_component_voxels`` voxels and ``min_component_points`` LiDAR points,
at most 64 per frame). Here the same code, at a model's calibrated operating point
(``Calibration.operating_point``; :meth:`ObjectCounts.at`) and the node's smallest
component, runs on every evaluated frame, and its components are matched with the
ground-truth anomaly objects. Evaluation reports these counts, and the calibration
(``anovox_training.calibrate.operating_point``) chooses the operating point by them:

- A ground-truth object (instance) is a 26-connected component of the frame's
  ground-truth voxels of one anomaly label inside the detector grid. AnoVox voxel
  grids carry labels, not instance ids, so connectivity is what tells objects apart.
- An instance is detected when some component shares a voxel with it.
- A component sharing a voxel with no anomaly instance is a false alarm, unless it
  touches ground-truth voxels that evaluation ignores (agent-mode actors, the ego
  vehicle): those components are counted apart, as ``ignored_components``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anovox_perception.core.calibration import OperatingPoint
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.parameters import defaults
from anovox_perception.core.postprocess import component_candidates, label_components
from anovox_training.data.labels import is_anomaly
from anovox_training.data.targets import EVAL_IGNORED_LABELS, SIZE_BUCKETS, category_of_label

__all__ = ['FrameObjects', 'ObjectCounts', 'anomaly_instances', 'frame_objects', 'match_components']

_NODE_DEFAULTS = defaults()
_CONFIGURED = OperatingPoint()
_IGNORED_LUT = np.zeros(256, dtype=bool)
_IGNORED_LUT[sorted(EVAL_IGNORED_LABELS)] = True
_BUCKET_ORDER = (*SIZE_BUCKETS, 'unknown')
_BUCKET_CODE = {name: k for k, name in enumerate(_BUCKET_ORDER)}


def anomaly_instances(cells: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Ground-truth anomaly objects: 26-connected components of the voxels of each label.

    Args:
        cells: (M, 3) int voxel indices of the anomaly voxels, unique.
        labels: (M,) their label ids.

    Returns:
        ``(instance, count)``: (M,) int64 instance of each voxel in 0..count-1,
        numbered by label, then by each component's first voxel.
    """
    instance = np.zeros(len(labels), dtype=np.int64)
    count = 0
    for value in np.unique(labels):
        member = np.flatnonzero(labels == value)
        ids, n = label_components(cells[member], 26)
        instance[member] = ids + count
        count += n
    return instance, count


def match_components(
    gt_index: np.ndarray,
    gt_instance: np.ndarray,
    gt_ignored: np.ndarray,
    voxel_index: np.ndarray,
    component: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which instances some component overlaps, and which components overlap an instance or an ignored voxel.

    Args:
        gt_index: (M,) flat cell indices of the frame's ground-truth voxels, unique.
        gt_instance: (M,) anomaly instance of each voxel, -1 for normal and ignored voxels.
        gt_ignored: (M,) True for voxels evaluation ignores.
        voxel_index: (K,) flat cell indices of the component voxels.
        component: (K,) component of each of those voxels, in 0..C-1.

    Returns:
        ``(detected, on_anomaly, on_ignored)``: (I,) bool per instance (I = max
        instance + 1) and (C,) bool per component (C = max component + 1).
    """
    n_instances = int(gt_instance.max()) + 1 if gt_instance.size else 0
    n_components = int(component.max()) + 1 if component.size else 0
    detected = np.zeros(n_instances, dtype=bool)
    on_anomaly = np.zeros(n_components, dtype=bool)
    on_ignored = np.zeros(n_components, dtype=bool)
    if gt_index.size == 0 or voxel_index.size == 0:
        return detected, on_anomaly, on_ignored
    order = np.argsort(gt_index)
    sorted_index = gt_index[order]
    at = np.minimum(np.searchsorted(sorted_index, voxel_index), len(sorted_index) - 1)
    found = sorted_index[at] == voxel_index
    hit = order[at[found]]  # ground-truth row of each component voxel that has one
    instance, owner = gt_instance[hit], component[found]
    detected[instance[instance >= 0]] = True
    on_anomaly[owner[instance >= 0]] = True
    on_ignored[owner[gt_ignored[hit]]] = True
    return detected, on_anomaly, on_ignored


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class FrameObjects:
    """One frame's ground truth as the matching needs it (made once per frame by :func:`frame_objects`).

    Attributes:
        gt_index: (M,) flat cell indices of every ground-truth voxel in the grid (ignored ones too).
        gt_instance: (M,) anomaly instance of each voxel, -1 for normal and ignored voxels.
        gt_ignored: (M,) True for voxels evaluation ignores.
        kinds: (I,) ``(category, size bucket)`` of each instance.
    """

    gt_index: np.ndarray
    gt_instance: np.ndarray
    gt_ignored: np.ndarray
    kinds: tuple[tuple[str, str], ...]


def frame_objects(grid: GridSpec, gt_index: np.ndarray, gt_label: np.ndarray, anomaly_size: np.ndarray) -> FrameObjects:
    """The anomaly instances of a frame and what evaluation ignores.

    Args:
        grid: Detector grid.
        gt_index: (M,) flat cell indices of every ground-truth voxel in the grid (ignored ones too).
        gt_label: (M,) their label ids.
        anomaly_size: Size bucket of each anomaly voxel, in ``gt_index`` order of the anomaly voxels.
    """
    positive = is_anomaly(gt_label)
    cells = np.stack(np.unravel_index(gt_index[positive], grid.shape), axis=1)
    instance_of_anomaly, n_instances = anomaly_instances(cells, gt_label[positive])
    gt_instance = np.full(len(gt_index), -1, dtype=np.int64)
    gt_instance[positive] = instance_of_anomaly
    kinds: tuple[tuple[str, str], ...] = ()
    if n_instances:
        first = np.unique(instance_of_anomaly, return_index=True)[1]  # one voxel per instance, in id order
        n_buckets = len(_BUCKET_ORDER)
        code = np.array([_BUCKET_CODE[name] for name in anomaly_size], dtype=np.int64)
        votes = np.bincount(instance_of_anomaly * n_buckets + code, minlength=n_instances * n_buckets)
        # The size bucket most of the instance's voxels have (argmax takes the first: the smaller on ties).
        size = np.argmax(votes.reshape(n_instances, n_buckets), axis=1)
        labels = gt_label[positive][first]
        kinds = tuple(
            (category_of_label(int(label)), _BUCKET_ORDER[int(bucket)])
            for label, bucket in zip(labels, size, strict=True)
        )
    return FrameObjects(gt_index, gt_instance, _IGNORED_LUT[gt_label], kinds)


@dataclass
class ObjectCounts:
    """Pooled object-level counts of one variant over frames, at one operating point of the node.

    Args:
        anomaly_threshold: The node's anomaly threshold (default: the configured operating point's).
        min_component_voxels: The node's ``markers.min_component_voxels`` (default: the node's default).
        min_component_points: The LiDAR support a component needs (default: the configured operating point's).
    """

    anomaly_threshold: float = _CONFIGURED.anomaly_threshold
    min_component_voxels: int = int(_NODE_DEFAULTS['markers.min_component_voxels'])
    min_component_points: int = _CONFIGURED.min_component_points
    frames: int = 0
    components: int = 0
    false_alarms: int = 0
    ignored_components: int = 0
    instances: Counter[tuple[str, str]] = field(default_factory=Counter)  # (category, size) -> count
    detected: Counter[tuple[str, str]] = field(default_factory=Counter)

    @classmethod
    def at(cls, operating_point: OperatingPoint) -> ObjectCounts:
        """Counts at a calibration's operating point (and the node's smallest component)."""
        return cls(operating_point.anomaly_threshold, min_component_points=operating_point.min_component_points)

    @property
    def operating_point(self) -> OperatingPoint:
        return OperatingPoint(self.anomaly_threshold, self.min_component_points)

    def add(
        self,
        grid: GridSpec,
        occupancy: np.ndarray,
        anomaly: np.ndarray,
        occupancy_threshold: float,
        gt_index: np.ndarray,
        gt_label: np.ndarray,
        anomaly_size: np.ndarray,
        lidar_bev: np.ndarray | None = None,
    ) -> None:
        """Count one frame.

        Args:
            grid: Detector grid of the (nx, ny, nz) ``occupancy`` and ``anomaly`` grids.
            occupancy: Occupancy probabilities.
            anomaly: Anomaly scores.
            occupancy_threshold: The variant's occupancy threshold (the node's ``occupancy_threshold``).
            gt_index: (M,) flat cell indices of every ground-truth voxel in the grid (ignored ones too).
            gt_label: (M,) their label ids.
            anomaly_size: Size bucket of each anomaly voxel, in ``gt_index`` order of the anomaly voxels.
            lidar_bev: The frame's BEV model input, where the LiDAR support is counted (needed when
                ``min_component_points`` > 0).
        """
        coords, component = component_candidates(
            occupancy,
            anomaly,
            grid,
            occupancy_threshold=occupancy_threshold,
            anomaly_threshold=self.anomaly_threshold,
            min_voxels=self.min_component_voxels,
            lidar_bev=lidar_bev,
        ).voxels(self.min_component_points)
        self.add_components(grid, frame_objects(grid, gt_index, gt_label, anomaly_size), coords, component)

    def add_components(self, grid: GridSpec, truth: FrameObjects, coords: np.ndarray, component: np.ndarray) -> None:
        """Count one frame's components (``postprocess.component_candidates(...).voxels`` at this operating point)."""
        detected, on_anomaly, on_ignored = match_components(
            truth.gt_index, truth.gt_instance, truth.gt_ignored, grid.flat_index(coords), component
        )
        self.frames += 1
        self.components += len(on_anomaly)
        self.false_alarms += int(np.sum(~on_anomaly & ~on_ignored))
        self.ignored_components += int(np.sum(~on_anomaly & on_ignored))
        for kind, found in zip(truth.kinds, detected, strict=True):
            self.instances[kind] += 1
            self.detected[kind] += int(found)

    def result(self) -> dict[str, Any]:
        """Recall, false alarms per frame and the counts behind them (JSON-ready)."""
        total, found = sum(self.instances.values()), sum(self.detected.values())

        def breakdown(axis: int, order: list[str]) -> dict[str, dict[str, Any]]:
            out = {}
            for name in order:
                n = sum(v for k, v in self.instances.items() if k[axis] == name)
                d = sum(v for k, v in self.detected.items() if k[axis] == name)
                if n:
                    out[name] = {'instances': n, 'detected': d, 'recall': d / n}
            return out

        categories = sorted({k[0] for k in self.instances})
        return {
            'anomaly_threshold': self.anomaly_threshold,
            'min_component_voxels': self.min_component_voxels,
            'min_component_points': self.min_component_points,
            'frames': self.frames,
            'instances': total,
            'detected': found,
            'recall': _rate(found, total),
            'components': self.components,
            'false_alarms': self.false_alarms,
            'ignored_components': self.ignored_components,
            'false_alarms_per_frame': _rate(self.false_alarms, self.frames),
            'by_category': breakdown(0, categories),
            'by_size': breakdown(1, list(_BUCKET_ORDER)),
        }
