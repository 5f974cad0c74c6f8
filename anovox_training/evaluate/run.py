"""AnoVox-protocol evaluation of the detector, its single-modality variants and the geometric baseline.

    python -m anovox_training.evaluate --checkpoint runs/fusion/best.pt \\
        [--lidar-only runs/lidar/best.pt] [--camera-only runs/camera/best.pt] \\
        --data data/synth/test --out eval_out

Protocol (docs/METRICS.md): per frame, the prediction is the set of cells with
occupancy >= the variant's occupancy threshold; the evaluated voxels are the
ground-truth voxels inside the detector grid (agent-mode and ego labels excluded)
that are also predicted; coverage = evaluated / ground-truth voxels in range.
Scores of evaluated voxels are pooled exactly over all frames (``metrics.ScoreCounts``)
for ``Normality_Included`` (every frame) and ``Anomalies_Only`` (frames whose
ground truth holds an anomaly voxel), and per anomaly category and size bucket
(positives: that category's / bucket's voxels; negatives: the normal voxels of the
frames that contain it); ``mean_category_ap`` averages the categories' APs and
``ap_small`` is the AP of objects under 1 m. ``--group NAME=CAT,CAT`` adds a pooled
subset of categories the same way, e.g. the categories held out of training
(``by_group``). ``objects`` gives object-level recall and false alarms per frame of
the node's anomaly components (``object_metrics``) at the checkpoint's calibrated
operating point (anomaly threshold, LiDAR support; the geometric baseline at the
configured one). Writes ``metrics.json``,
``metrics.md``, ``roc.png`` and ``pr.png``.

Without ``--lidar-only`` the LiDAR-only variant is the fusion model with the
camera flagged missing; without ``--camera-only`` that variant is left out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anovox_perception.core.calibration import OperatingPoint, is_smoothing_window
from anovox_perception.core.errors import AnovoxError, ConfigError, DataError
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.preprocess import INPUT_NAMES, InputSpec
from anovox_training.data.cache import CachedFrame, FrameRef, SampleCache, frame_refs
from anovox_training.data.dataset import resolve_scenarios
from anovox_training.data.labels import LABEL_TO_CATEGORY, is_anomaly
from anovox_training.data.targets import EVAL_IGNORED_LABELS, SIZE_BUCKETS, category_of_label, class_lut, size_bucket
from anovox_training.evaluate.baseline import GeometricBaseline
from anovox_training.evaluate.metrics import METRIC_KEYS, BinnedScoreCounts, Curves, ScoreCounts
from anovox_training.evaluate.object_metrics import ObjectCounts
from anovox_training.model.checkpoint import checkpoint_calibration, load_checkpoint
from anovox_training.model.config import NORMAL_CLASSES
from anovox_training.model.detector import AnomalyDetector

__all__ = [
    'SUBSETS',
    'VARIANTS',
    'EvaluateOptions',
    'Variant',
    'VariantAccumulator',
    'evaluate_frames',
    'main',
    'model_scorer',
    'run',
    'write_report',
]

SUBSETS = ('Anomalies_Only', 'Normality_Included')
VARIANTS = ('fusion', 'lidar_only', 'camera_only', 'geometric')
# (occupancy, anomaly) grids, each (B, nx, ny, nz), for a batch of cached frames.
Scorer = Callable[[Sequence[CachedFrame]], tuple[np.ndarray, np.ndarray]]
_IGNORED_LUT = np.zeros(256, dtype=bool)
_IGNORED_LUT[sorted(EVAL_IGNORED_LABELS)] = True
# Label id -> index into NORMAL_CLASSES (every normal label belongs to one class).
_CLASS_LUT = class_lut(tuple(NORMAL_CLASSES))
# Anomaly categories a --group may name.
_KNOWN_CATEGORIES = frozenset(LABEL_TO_CATEGORY.values()) | {'generic'}


@dataclass
class _Counted:
    """Score counts plus the voxel counts behind their coverage."""

    counts: ScoreCounts | BinnedScoreCounts
    gt_voxels: int = 0
    evaluated: int = 0

    def add(self, scores: np.ndarray, labels: np.ndarray, predicted: np.ndarray) -> None:
        self.gt_voxels += int(len(predicted))
        self.evaluated += int(predicted.sum())
        self.counts.add(scores[predicted], labels[predicted])

    def result(self) -> dict[str, float | int | None]:
        metrics = self.counts.metrics()
        out: dict[str, float | int | None] = {
            key: (None if isinstance(metrics[key], float) and math.isnan(metrics[key]) else metrics[key])
            for key in METRIC_KEYS
        }
        out['coverage'] = self.evaluated / self.gt_voxels if self.gt_voxels else None
        return out


@dataclass
class VariantAccumulator:
    """Pooled evaluation state of one variant.

    Args:
        grid: Detector grid (for voxel centres in the size assignment).
        occupancy_threshold: Cells with occupancy >= this are predicted occupied.
        n_bins: None for exact metrics; else scores are rounded up onto a ``1 / n_bins``
            lattice first (:class:`~anovox_training.evaluate.metrics.BinnedScoreCounts`: constant
            memory, for repeated validation passes).
        groups: Category groups reported in ``by_group`` (none: no ``by_group`` key).
        objects: Object-level counts (default: at the configured operating point; evaluation counts each
            variant at its calibrated one).
    """

    grid: GridSpec
    occupancy_threshold: float
    n_bins: int | None = None
    # Named category groups pooled like one category (e.g. those held out of training).
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    subsets: dict[str, _Counted] = field(default_factory=dict)
    by_category: dict[str, _Counted] = field(default_factory=dict)
    by_group: dict[str, _Counted] = field(default_factory=dict)
    by_size: dict[str, _Counted] = field(default_factory=dict)
    # Anomalies_Only normal voxels by ground-truth class, at 0.01 score resolution (exact
    # above the 0.01 thresholds): where the false positives at the FPR95 threshold come from.
    normal_by_class: dict[str, BinnedScoreCounts] = field(default_factory=dict)
    objects: ObjectCounts = field(default_factory=ObjectCounts)

    def __post_init__(self) -> None:
        self.subsets = {name: self._new_counted() for name in SUBSETS}
        self.normal_by_class = {name: BinnedScoreCounts(100) for name in NORMAL_CLASSES}

    def _new_counted(self) -> _Counted:
        return _Counted(ScoreCounts() if self.n_bins is None else BinnedScoreCounts(self.n_bins))

    def _counted(self, table: dict[str, _Counted], key: str) -> _Counted:
        if key not in table:
            table[key] = self._new_counted()
        return table[key]

    def add(self, frame: CachedFrame, occupancy: np.ndarray, anomaly: np.ndarray) -> None:
        """Accumulate one frame's (nx, ny, nz) occupancy and anomaly grids."""
        index, label = frame.targets.index, frame.targets.label
        keep = ~_IGNORED_LUT[label]
        all_index, all_label = index, label
        index, label = index[keep], label[keep]
        predicted = occupancy.reshape(-1)[index] >= self.occupancy_threshold
        scores = anomaly.reshape(-1)[index]
        positive = is_anomaly(label)
        buckets = self._size_buckets(index[positive], label[positive], frame.anomalies)
        bev = frame.inputs['bev'][0] if 'bev' in frame.inputs else None  # where the LiDAR support is counted
        self.objects.add(self.grid, occupancy, anomaly, self.occupancy_threshold, all_index, all_label, buckets, bev)
        self.subsets['Normality_Included'].add(scores, positive, predicted)
        if not positive.any():
            return
        self.subsets['Anomalies_Only'].add(scores, positive, predicted)
        normal = ~positive
        evaluated_normal = normal & predicted
        normal_scores, class_of = scores[evaluated_normal], _CLASS_LUT[label[evaluated_normal]]
        for k, name in enumerate(NORMAL_CLASSES):
            member = class_of == k
            if member.any():
                self.normal_by_class[name].add(normal_scores[member], np.zeros(int(member.sum()), bool))
        values = np.unique(label[positive])
        for value in values:
            mask = normal | (label == value)
            self._counted(self.by_category, category_of_label(value)).add(scores[mask], positive[mask], predicted[mask])
        for group, categories in self.groups.items():
            member = np.isin(label, [v for v in values if category_of_label(v) in categories])
            if member.any():
                mask = normal | member
                self._counted(self.by_group, group).add(scores[mask], member[mask], predicted[mask])
        for bucket in np.unique(buckets):
            member = np.zeros(len(label), dtype=bool)
            member[np.flatnonzero(positive)[buckets == bucket]] = True
            mask = normal | member
            self._counted(self.by_size, str(bucket)).add(scores[mask], member[mask], predicted[mask])

    def _size_buckets(self, index: np.ndarray, label: np.ndarray, anomalies: np.ndarray) -> np.ndarray:
        """Size bucket of each anomaly voxel: that of the nearest anomaly object (same label preferred).

        Buckets go by the object's largest extent (``targets.SIZE_BUCKETS``): small under 1 m.
        """
        if len(index) == 0:
            return np.zeros(0, dtype=object)
        if len(anomalies) == 0:
            return np.full(len(index), 'unknown', dtype=object)
        nx, ny, nz = self.grid.shape
        cells = np.stack(np.unravel_index(index, (nx, ny, nz)), axis=1)
        centres = self.grid.cell_center(cells)
        locations = anomalies[:, :3]
        dist = np.linalg.norm(centres[:, None, :] - locations[None, :, :], axis=2)
        dist = np.where(np.isfinite(dist), dist, np.inf)
        other_label = anomalies[None, :, 6].astype(np.int64) != label[:, None].astype(np.int64)
        dist = dist + other_label * 1e6  # a same-label object always wins
        nearest = np.argmin(dist, axis=1)
        names = np.array([size_bucket(a[3:6]) for a in anomalies], dtype=object)
        return names[nearest]

    def result(self) -> dict[str, Any]:
        """The report of this variant (``metrics.json``'s ``variants`` entries; docs/METRICS.md)."""
        out: dict[str, Any] = {name: self.subsets[name].result() for name in SUBSETS}
        by_category = {k: self.by_category[k].result() for k in sorted(self.by_category)}
        order = [*SIZE_BUCKETS, 'unknown']
        by_size = {k: self.by_size[k].result() for k in sorted(self.by_size, key=order.index)}
        category_aps = [m['AP'] for m in by_category.values()]
        out['mean_category_ap'] = float(np.mean(category_aps)) if category_aps else None
        out['ap_small'] = by_size['small']['AP'] if 'small' in by_size else None
        out['by_category'] = by_category
        if self.groups:
            out['by_group'] = {k: self.by_group[k].result() for k in self.groups if k in self.by_group}
        out['by_size'] = by_size
        out['objects'] = self.objects.result()
        out['false_positives_at_fpr95'] = self.false_positives_at_fpr95()
        return out

    def false_positives_at_fpr95(self) -> dict[str, Any]:
        """Anomalies_Only normal voxels scoring above the FPR95 threshold, by ground-truth class.

        ``share`` is the class's part of all those false positives, ``rate`` the part of
        the class's evaluated voxels above the threshold (its own FPR there).
        """
        threshold = self.subsets['Anomalies_Only'].counts.fpr95_threshold()
        if threshold is None:
            return {'threshold': None, 'by_class': {}}
        above = {name: counts.count_above(threshold)[1] for name, counts in self.normal_by_class.items()}
        total = sum(above.values())
        by_class = {
            name: {
                'voxels': counts.negatives,
                'above': above[name],
                'share': above[name] / total if total else 0.0,
                'rate': above[name] / counts.negatives,
            }
            for name, counts in self.normal_by_class.items()
            if counts.negatives
        }
        return {'threshold': threshold, 'by_class': by_class}

    def curves(self, subset: str = 'Anomalies_Only') -> Curves:
        return self.subsets[subset].counts.curves()


@dataclass(frozen=True)
class Variant:
    """One evaluated variant: how to score frames, with which occupancy threshold, and the markers' operating point."""

    name: str
    spec: InputSpec
    scorer: Scorer
    occupancy_threshold: float
    operating_point: OperatingPoint = field(default_factory=OperatingPoint)


def model_scorer(model: AnomalyDetector, camera: bool = True) -> Scorer:
    """Scorer running ``model`` on cached frames (``camera=False`` flags every image missing)."""

    @torch.inference_mode()
    def score(frames: Sequence[CachedFrame]) -> tuple[np.ndarray, np.ndarray]:
        batch = {name: torch.from_numpy(np.concatenate([f.inputs[name] for f in frames])) for name in INPUT_NAMES}
        if not camera:
            batch['camera_valid'] = torch.zeros_like(batch['camera_valid'])
        occupancy, anomaly = model(*(batch[name] for name in INPUT_NAMES))
        return occupancy.numpy(), anomaly.numpy()

    return score


def geometric_scorer(spec: InputSpec, baseline: GeometricBaseline | None = None) -> Scorer:
    """Scorer of the non-learned baseline."""
    rule = baseline or GeometricBaseline()

    def score(frames: Sequence[CachedFrame]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [rule(f.inputs['bev'][0], spec) for f in frames]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    return score


def evaluate_frames(
    refs: Sequence[FrameRef],
    variants: Sequence[Variant],
    cache_root: Path,
    batch_size: int = 4,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    groups: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, VariantAccumulator]:
    """Run every variant over the frames and pool their scores.

    Variants sharing an input spec share one cache entry per frame; ``groups`` are
    the category groups reported in ``by_group``.

    Raises:
        DataError: When a frame cannot be read or cached.
    """
    groups = groups or {}
    accumulators = {
        v.name: VariantAccumulator(
            v.spec.grid, v.occupancy_threshold, groups=groups, objects=ObjectCounts.at(v.operating_point)
        )
        for v in variants
    }
    by_spec: dict[InputSpec, list[Variant]] = {}
    for v in variants:
        by_spec.setdefault(v.spec, []).append(v)
    caches = {spec: SampleCache(cache_root, spec) for spec in by_spec}
    starts = range(0, len(refs), batch_size)
    for start in progress(starts) if progress else starts:
        chunk = refs[start : start + batch_size]
        for spec, group in by_spec.items():
            cache = caches[spec]
            cache.ensure(chunk)
            frames = [cache.load(ref) for ref in chunk]
            for variant in group:
                occupancy, anomaly = variant.scorer(frames)
                for i, frame in enumerate(frames):
                    accumulators[variant.name].add(frame, occupancy[i], anomaly[i])
    return accumulators


def _fmt(value: Any) -> str:
    if value is None:
        return 'n/a'
    if isinstance(value, int):
        return f'{value:,}'
    return f'{value:.3f}'


def _fmt_recall(m: dict[str, Any] | None) -> str:
    return '-' if m is None else f'{_fmt(m["recall"])} ({m["detected"]:,}/{m["instances"]:,})'


def markdown_table(report: dict[str, Any], thresholds: dict[str, float]) -> str:
    """The report's headline numbers as Markdown tables (docs/METRICS.md defines them)."""
    variants = report['variants']
    lines = [
        f'Split `{report["split"]}`: {report["frames"]} frames from {report["scenarios"]} scenarios.',
        '',
        '| Variant | Subset | AUROC | AP | FPR95 | F1 | PPV | Specificity | Voxels | Coverage | Occ. threshold |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for name, variant in variants.items():
        for subset in SUBSETS:
            m = variant[subset]
            cells = [_fmt(m[k]) for k in ('AUROC', 'AP', 'FPR95', 'F1', 'PPV', 'specificity', 'voxels', 'coverage')]
            lines.append(f'| {name} | {subset} | {" | ".join(cells)} | {thresholds[name]:.2f} |')
    lines += [
        '',
        "Mean AP over anomaly categories, AP of objects under 1 m, and objects at the node's operating point "
        '(recall: detected / ground-truth objects; false alarms: components on no anomaly, per frame):',
        '',
        '| Variant | Mean category AP | AP small | Object recall | False alarms / frame | Components |',
        '|---|---|---|---|---|---|',
    ]
    for name, variant in variants.items():
        objects = variant['objects']
        cells = [
            _fmt(variant['mean_category_ap']),
            _fmt(variant['ap_small']),
            _fmt_recall(objects),
            _fmt(objects['false_alarms_per_frame']),
            _fmt(objects['components']),
        ]
        lines.append(f'| {name} | {" | ".join(cells)} |')
    tables = ['by_category', 'by_size']
    if any('by_group' in v for v in variants.values()):
        tables.insert(1, 'by_group')
    for table in tables:
        keys = sorted({k for v in variants.values() for k in v.get(table, {})})
        if not keys:
            continue
        lines += ['', f'{table.replace("_", " ").capitalize()} (AP / AUROC / FPR95):', '']
        lines.append('| Variant | ' + ' | '.join(keys) + ' |')
        lines.append('|---|' + '---|' * len(keys))
        for name, variant in variants.items():
            row = []
            for key in keys:
                m = variant.get(table, {}).get(key)
                row.append('-' if m is None else f'{_fmt(m["AP"])} / {_fmt(m["AUROC"])} / {_fmt(m["FPR95"])}')
            lines.append(f'| {name} | ' + ' | '.join(row) + ' |')
    for table in ('by_category', 'by_size'):
        keys = sorted({k for v in variants.values() for k in v['objects'][table]})
        if not keys:
            continue
        lines += ['', f'Object recall {table.replace("_", " ")} (detected / objects):', '']
        lines.append('| Variant | ' + ' | '.join(keys) + ' |')
        lines.append('|---|' + '---|' * len(keys))
        for name, variant in variants.items():
            row = [_fmt_recall(variant['objects'][table].get(key)) for key in keys]
            lines.append(f'| {name} | ' + ' | '.join(row) + ' |')
    lines += [
        '',
        'False positives at the FPR95 threshold (Anomalies_Only), by ground-truth class '
        '(share of all false positives / rate within the class):',
        '',
    ]
    classes = [
        c
        for c in NORMAL_CLASSES
        if any(c in v['false_positives_at_fpr95']['by_class'] for v in report['variants'].values())
    ]
    lines.append('| Variant | threshold | ' + ' | '.join(classes) + ' |')
    lines.append('|---|---|' + '---|' * len(classes))
    for name, variant in report['variants'].items():
        fp = variant['false_positives_at_fpr95']
        row = [
            f'{fp["by_class"][c]["share"]:.2f} / {fp["by_class"][c]["rate"]:.3f}' if c in fp['by_class'] else '-'
            for c in classes
        ]
        lines.append(f'| {name} | {_fmt(fp["threshold"])} | ' + ' | '.join(row) + ' |')
    return '\n'.join(lines) + '\n'


def plot_curves(accumulators: dict[str, VariantAccumulator], out_dir: Path, subset: str = 'Anomalies_Only') -> None:
    """ROC and PR plots of every variant (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    for kind, (xlabel, ylabel) in {'roc': ('FPR', 'TPR'), 'pr': ('Recall', 'Precision')}.items():
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        for name, acc in accumulators.items():
            c = acc.curves(subset)
            metrics = acc.subsets[subset].counts.metrics()
            if kind == 'roc':
                ax.plot(c.fpr, c.tpr, label=f'{name} (AUROC {metrics["AUROC"]:.3f})')
            else:
                ax.plot(c.recall, c.precision, label=f'{name} (AP {metrics["AP"]:.3f})')
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_title(f'{kind.upper()} - {subset}')
        ax.grid(alpha=0.3)
        ax.legend(loc='lower right' if kind == 'roc' else 'upper right', fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / f'{kind}.png')
        plt.close(fig)


def write_report(
    accumulators: dict[str, VariantAccumulator],
    out_dir: Path,
    split: str,
    frames: int,
    scenarios: int,
) -> dict[str, Any]:
    """Write ``metrics.json``, ``metrics.md``, ``roc.png`` and ``pr.png``; return the JSON dict."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        'split': split,
        'frames': frames,
        'scenarios': scenarios,
        'variants': {name: acc.result() for name, acc in accumulators.items()},
    }
    (out_dir / 'metrics.json').write_text(json.dumps(report, indent=2, allow_nan=False) + '\n')
    thresholds = {name: acc.occupancy_threshold for name, acc in accumulators.items()}
    (out_dir / 'metrics.md').write_text(markdown_table(report, thresholds))
    plot_curves(accumulators, out_dir)
    return report


def checkpoint_threshold(ckpt: dict[str, Any], path: str | Path, override: float | None) -> float:
    """Occupancy threshold: the CLI override, else the one of the checkpoint's calibration.

    Raises:
        DataError: The checkpoint read from ``path`` has no valid calibration.
    """
    calibrated = checkpoint_calibration(ckpt, path).occupancy_threshold
    return calibrated if override is None else override


def checkpoint_operating_point(ckpt: dict[str, Any], path: str | Path) -> OperatingPoint:
    """The markers' operating point of the checkpoint's calibration, where the object metrics are counted.

    Raises:
        DataError: The checkpoint read from ``path`` has no valid calibration.
    """
    return checkpoint_calibration(ckpt, path).operating_point


def parse_groups(items: Sequence[str]) -> dict[str, frozenset[str]]:
    """``['held_out=animal,airplane']`` -> ``{'held_out': frozenset({'animal', 'airplane'})}``.

    Raises:
        ConfigError: On a malformed item, a repeated name or an unknown category.
    """
    known = _KNOWN_CATEGORIES
    groups: dict[str, frozenset[str]] = {}
    for item in items:
        name, sep, listed = item.partition('=')
        name = name.strip()
        categories = [c.strip() for c in listed.split(',') if c.strip()]
        if not sep or not name or not categories:
            msg = f'--group {item!r}: expected NAME=CATEGORY[,CATEGORY...], e.g. held_out=animal,airplane,falling'
            raise ConfigError(msg)
        unknown = sorted(set(categories) - known)
        if unknown:
            msg = f'--group {item!r}: unknown categories {unknown}; known: {sorted(known)}'
            raise ConfigError(msg)
        if name in groups:
            msg = f'--group {item!r}: the name {name!r} is given twice'
            raise ConfigError(msg)
        groups[name] = frozenset(categories)
    return groups


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Evaluate detector checkpoints with the AnoVox protocol.')
    parser.add_argument('--checkpoint', required=True, help='fusion model checkpoint (.pt)')
    parser.add_argument('--lidar-only', help='LiDAR-only variant checkpoint (default: fusion with the camera off)')
    parser.add_argument('--camera-only', help='camera-only variant checkpoint (default: not evaluated)')
    parser.add_argument('--data', nargs='+', required=True, help='dataset roots, scenario folders or split files')
    parser.add_argument('--out', required=True, help='output folder for metrics.json, metrics.md and plots')
    parser.add_argument('--split', help='split name for the report (default: name of the first --data)')
    parser.add_argument('--cache-dir', help="sample cache root (default: the checkpoint config's data.cache_dir)")
    parser.add_argument('--occupancy-threshold', type=float, help='override every variant threshold (0..1)')
    parser.add_argument(
        '--score-smoothing', type=int, help="override every model's score smoothing window (odd cells, 1: none)"
    )
    parser.add_argument('--max-frames', type=int, help='evaluate only the first N frames (smoke tests)')
    parser.add_argument('--batch-size', type=int, default=4, help='frames per forward pass')
    parser.add_argument('--threads', type=int, default=max(1, min(4, os.cpu_count() or 1)), help='torch threads')
    parser.add_argument('--cache-workers', type=int, default=1, help='processes building missing cache entries')
    parser.add_argument('--no-geometric', action='store_true', help='skip the geometric baseline')
    parser.add_argument(
        '--group',
        action='append',
        default=[],
        metavar='NAME=CAT,CAT',
        help='also report these anomaly categories pooled (repeatable), e.g. held_out=animal,airplane,falling',
    )
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def _load_model(path: str | Path, smoothing: int | None) -> tuple[AnomalyDetector, dict[str, Any], dict[str, Any]]:
    """``load_checkpoint``, with its score rule's smoothing window overridden when one is given."""
    model, config, ckpt = load_checkpoint(path)
    if smoothing is not None:
        model.set_score_rule(replace(model.score_rule, score_smoothing=smoothing))
    return model, config, ckpt


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class EvaluateOptions:
    """What to evaluate and how: ``python -m anovox_training.evaluate``'s arguments, typed.

    Attributes:
        checkpoint: Fusion model checkpoint (.pt).
        data: Dataset roots, scenario folders or split files.
        out: Output folder for ``metrics.json``, ``metrics.md`` and the plots.
        lidar_only: LiDAR-only variant checkpoint (None: the fusion model with the camera off).
        camera_only: Camera-only variant checkpoint (None: that variant is left out).
        split: Split name for the report (None: the name of the first ``data`` source).
        cache_dir: Sample cache root (None: the checkpoint config's ``data.cache_dir``).
        occupancy_threshold: Overrides every variant's threshold, in [0, 1] (None: each checkpoint's calibration).
        score_smoothing: Overrides every model's score smoothing window (odd cells, 1: none).
        max_frames: Evaluate only the first N frames (smoke tests).
        batch_size: Frames per forward pass.
        threads: Torch CPU threads.
        geometric: Also evaluate the geometric baseline.
        groups: Category groups also reported pooled (``by_group``): name -> categories.
        progress: Show a progress bar.

    Raises:
        ConfigError: On an out-of-range value or an unknown category in ``groups``.
    """

    checkpoint: Path
    data: tuple[Path, ...]
    out: Path
    lidar_only: Path | None = None
    camera_only: Path | None = None
    split: str | None = None
    cache_dir: Path | None = None
    occupancy_threshold: float | None = None
    score_smoothing: int | None = None
    max_frames: int | None = None
    batch_size: int = 4
    threads: int = field(default_factory=_default_threads)
    geometric: bool = True
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.data:
            msg = 'evaluate: give at least one dataset root, scenario folder or split file'
            raise ConfigError(msg)
        if self.occupancy_threshold is not None and not 0.0 <= self.occupancy_threshold <= 1.0:
            msg = f'--occupancy-threshold must be in [0, 1], got {self.occupancy_threshold}'
            raise ConfigError(msg)
        if self.score_smoothing is not None and not is_smoothing_window(self.score_smoothing):
            msg = f'--score-smoothing must be an odd integer >= 1 (1: none), got {self.score_smoothing}'
            raise ConfigError(msg)
        for name, value in (('batch size', self.batch_size), ('threads', self.threads)):
            if value < 1:
                msg = f'evaluate: the {name} must be >= 1, got {value}'
                raise ConfigError(msg)
        for name, categories in self.groups.items():
            unknown = sorted(set(categories) - _KNOWN_CATEGORIES)
            if unknown:
                msg = f'--group {name}: unknown categories {unknown}; known: {sorted(_KNOWN_CATEGORIES)}'
                raise ConfigError(msg)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvaluateOptions:
        """The options the command line (:func:`get_args_parser`) gives.

        Raises:
            ConfigError: On a malformed ``--group`` or an out-of-range value.
        """

        def path(value: str | None) -> Path | None:
            return None if value is None else Path(value)

        return cls(
            checkpoint=Path(args.checkpoint),
            data=tuple(Path(p) for p in args.data),
            out=Path(args.out),
            lidar_only=path(args.lidar_only),
            camera_only=path(args.camera_only),
            split=args.split,
            cache_dir=path(args.cache_dir),
            occupancy_threshold=args.occupancy_threshold,
            score_smoothing=args.score_smoothing,
            max_frames=args.max_frames,
            batch_size=args.batch_size,
            threads=args.threads,
            geometric=not args.no_geometric,
            groups=parse_groups(args.group),
            progress=not args.quiet,
        )


def run(options: EvaluateOptions) -> dict[str, Any]:
    """Evaluate as ``options`` say; write the report into ``options.out`` and return it.

    Raises:
        ConfigError: When the variants use different grids.
        DataError: On unreadable checkpoints or data.
    """
    smoothing = options.score_smoothing
    torch.set_num_threads(options.threads)
    model, config, ckpt = _load_model(options.checkpoint, smoothing)
    spec = model.input_spec
    fusion_threshold = checkpoint_threshold(ckpt, options.checkpoint, options.occupancy_threshold)
    fusion_point = checkpoint_operating_point(ckpt, options.checkpoint)
    variants = [Variant('fusion', spec, model_scorer(model), fusion_threshold, fusion_point)]
    for name, path, camera in (('lidar_only', options.lidar_only, False), ('camera_only', options.camera_only, True)):
        if path:
            other, _, other_ckpt = _load_model(path, smoothing)
            threshold = checkpoint_threshold(other_ckpt, path, options.occupancy_threshold)
            point = checkpoint_operating_point(other_ckpt, path)
            variants.append(Variant(name, other.input_spec, model_scorer(other, camera=camera), threshold, point))
        elif name == 'lidar_only':
            variants.append(
                Variant(name, spec, model_scorer(model, camera=False), variants[0].occupancy_threshold, fusion_point)
            )
    if options.geometric:
        variants.append(Variant('geometric', spec, geometric_scorer(spec), 0.5))
    scenarios = resolve_scenarios(options.data)
    refs = frame_refs(scenarios)
    if options.max_frames is not None:
        refs = refs[: options.max_frames]
    if not refs:
        msg = f'no frames with LiDAR points and voxel grids under {[str(p) for p in options.data]}'
        raise DataError(msg)
    cache_root = Path(options.cache_dir or config['data']['cache_dir'])
    progress = None
    if options.progress:
        from tqdm import tqdm

        def progress(items: Iterable[Any]) -> Iterable[Any]:
            return tqdm(items, desc='evaluate', unit='batch', dynamic_ncols=True)

    for variant in variants:
        for other in variants:
            if other.spec.grid != variant.spec.grid:
                msg = f'variants {variant.name} and {other.name} use different grids; evaluate them separately'
                raise ConfigError(msg)
    accumulators = evaluate_frames(refs, variants, cache_root, options.batch_size, progress, options.groups)
    split = options.split or options.data[0].name
    n_scenarios = len({ref.scenario for ref in refs})
    return write_report(accumulators, options.out, split, len(refs), n_scenarios)


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        options = EvaluateOptions.from_args(args)
        run(options)
    except AnovoxError as err:
        print(f'evaluate: error: {err}', file=sys.stderr)
        return 2
    print((options.out / 'metrics.md').read_text())
    return 0


if __name__ == '__main__':
    sys.exit(main())
