"""Check a model on real KITTI-format frames: ``anovox-real-check`` / ``python -m anovox_training.evaluate.real_check``.

    python -m anovox_training.evaluate.real_check FOLDER [--model models/anovox_base.onnx]
        [--threshold T | --metrics models/anovox_base.metrics.json [--variant fusion]]
        [--via-bag] [--no-render] [--backend onnxruntime] --out real_out

Each frame of FOLDER (any layout of ``anovox_training.data.kitti``) goes through the node's core,
``Detector.process``, with every setting from the model card and the node's defaults (so markers
at the operating point of the card's calibration: its anomaly threshold and LiDAR support), and the
frame's own camera and extrinsics. The operating threshold is the test split's FPR95 threshold
that evaluation stored in the model's metrics (``variants.<variant>.false_positives_at_fpr95.
threshold``; by default read from ``<model>.metrics.json`` beside the model), or ``--threshold``.
On a street without road anomalies every marker and every voxel above that threshold is a false
alarm. Frames are independent scenes: marker tracks are reset before each one.

Writes under ``--out`` (files there are replaced):

- ``summary.json``: per frame the markers published (a box and a text per anomaly component),
  the components, the occupied voxels, the share of them scoring above the threshold, and their
  score distribution (quantiles and a histogram); the same pooled over all frames;
- ``frames/<name>.png``: camera view with the LiDAR points coloured by score and the anomaly
  boxes, and the BEV score map;
- with ``--via-bag``: ``bags/<name>/`` (the frame as a rosbag2) and ``bags/<name>.params.yaml``
  (the rig's node parameters). The bag is run through the node's offline pipeline
  (``anovox_perception.tools.offline``) and its outputs must equal ``Detector.process``'s; the
  summary records the comparison and the exit status is 1 when they differ.

:func:`check_real_frames` is the same check as a function (``make model`` stores
:func:`real_metrics` of it in the metrics).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anovox_perception.core.detector import Detector, DetectorConfig, FrameResult, resolve_model_path
from anovox_perception.core.errors import AnovoxError, ConfigError, DataError
from anovox_perception.core.parameters import defaults, load_params_file
from anovox_perception.core.sync import SyncedPair
from anovox_perception.tools.offline import run_offline
from anovox_training.data.kitti import KittiFolder, KittiFrame
from anovox_training.data.kitti_bag import frame_to_bag, rig_parameters, write_params_file
from anovox_training.evaluate.real_render import render_real_frame

__all__ = [
    'DEFAULT_VARIANT',
    'check_real_frames',
    'compare_results',
    'fpr95_threshold',
    'frame_summary',
    'lidar_evidence',
    'get_args_parser',
    'headline',
    'load_fpr95_threshold',
    'main',
    'real_metrics',
    'score_distribution',
]

DEFAULT_VARIANT = 'fusion'
HISTOGRAM_BINS = 20
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_STAMP_NS = 1_700_000_000 * 1_000_000_000  # write_bag's default start: both paths see the same stamp
_SCORE_TOLERANCE = 1e-6  # bag path vs direct path: same inputs, same backend


def fpr95_threshold(report: Mapping[str, Any], variant: str = DEFAULT_VARIANT, source: str = 'metrics') -> float:
    """The FPR95 threshold an evaluation report stores for ``variant``.

    Raises:
        DataError: The report has no such variant or no threshold for it.
    """
    variants = report.get('variants') if isinstance(report, Mapping) else None
    if not isinstance(variants, Mapping) or variant not in variants:
        have = sorted(variants) if isinstance(variants, Mapping) else []
        msg = f'{source}: no variant {variant!r} in "variants" (has {have}); pass --variant or --threshold'
        raise DataError(msg)
    threshold = (variants[variant].get('false_positives_at_fpr95') or {}).get('threshold')
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        msg = (
            f'{source}: variants.{variant}.false_positives_at_fpr95.threshold is {threshold!r}, not a number in '
            '[0, 1] (the test split reached no 95% TPR?); pass --threshold'
        )
        raise DataError(msg)
    return float(threshold)


def load_fpr95_threshold(path: str | Path, variant: str = DEFAULT_VARIANT) -> float:
    """:func:`fpr95_threshold` of a metrics.json file.

    Raises:
        DataError: The file is missing, not JSON, or holds no threshold for ``variant``.
    """
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, json.JSONDecodeError) as err:
        msg = f'{path}: cannot read the metrics ({err}); pass --metrics with an evaluate metrics.json or --threshold'
        raise DataError(msg) from err
    return fpr95_threshold(report, variant, str(path))


def score_distribution(scores: np.ndarray) -> dict[str, Any]:
    """Quantiles, mean, min, max and a histogram (``HISTOGRAM_BINS`` bins on [0, 1]) of anomaly scores."""
    scores = np.asarray(scores, dtype=np.float64)
    counts, edges = np.histogram(np.clip(scores, 0.0, 1.0), bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    empty = scores.size == 0
    return {
        'quantiles': {f'p{round(q * 100):02d}': None if empty else float(np.quantile(scores, q)) for q in QUANTILES},
        'mean': None if empty else float(scores.mean()),
        'min': None if empty else float(scores.min()),
        'max': None if empty else float(scores.max()),
        'histogram': {'edges': [round(float(e), 6) for e in edges], 'counts': counts.tolist()},
    }


def lidar_evidence(result: FrameResult, points: np.ndarray, threshold: float) -> dict[str, dict[str, Any]]:
    """The occupied voxels split by the LiDAR evidence under them, each group's count and share above ``threshold``.

    Groups: ``return_in_voxel`` (a point of the cloud lies in the voxel), ``return_in_column``
    (none in the voxel, but one in its x-y column), ``no_return_in_column`` (the cloud has no point
    in the column: occupancy the LiDAR does not support). Tells a user whether the voxels above the
    threshold sit on measured structure or on the model's guess about unseen space.
    """
    grid = result.grid
    pidx, pin = grid.cell_index(points)
    pidx = pidx[pin]
    in_cell = np.zeros(grid.shape, dtype=bool)
    in_cell[pidx[:, 0], pidx[:, 1], pidx[:, 2]] = True
    in_column = in_cell.any(axis=2)
    vidx, vin = grid.cell_index(result.voxel_scores[:, :3])
    cell_hit = vin & in_cell[vidx[:, 0], vidx[:, 1], vidx[:, 2]]
    column_hit = vin & in_column[vidx[:, 0], vidx[:, 1]]
    above = result.voxel_scores[:, 3].astype(np.float64) > threshold
    groups = {
        'return_in_voxel': cell_hit,
        'return_in_column': column_hit & ~cell_hit,
        'no_return_in_column': ~column_hit,
    }
    return {
        name: {
            'occupied_voxels': int(mask.sum()),
            'above_threshold': int((above & mask).sum()),
            'share_above_fpr95_threshold': float((above & mask).sum() / mask.sum()) if mask.any() else 0.0,
        }
        for name, mask in groups.items()
    }


def frame_summary(result: FrameResult, threshold: float, points: np.ndarray | None = None) -> dict[str, Any]:
    """What one frame produced, as summary.json records it (``score > threshold`` counts as above).

    With the frame's ``points``, ``lidar_evidence`` splits the occupied voxels by the returns under them.
    """
    scores = result.voxel_scores[:, 3].astype(np.float64)
    above = int((scores > threshold).sum())
    evidence = {} if points is None else {'lidar_evidence': lidar_evidence(result, points, threshold)}
    return {
        **evidence,
        'markers': sum(m.action == 'add' for m in result.markers),
        'components': len(result.components),
        'occupied_voxels': int(scores.size),
        'above_threshold': above,
        'share_above_fpr95_threshold': above / scores.size if scores.size else 0.0,
        'camera_used': result.camera_used,
        'points': result.points_in,
        'points_dropped': result.points_dropped,
        'scores': score_distribution(scores),
        'component_list': [
            {
                'centroid_m': [round(v, 3) for v in c.centroid_m],
                'size_m': [round(v, 3) for v in c.size_m],
                'range_m': round(c.range_m, 3),
                'voxels': c.voxel_count,
                'max_score': round(c.max_score, 4),
                'mean_score': round(c.mean_score, 4),
            }
            for c in result.components
        ],
    }


def headline(name: str, summary: Mapping[str, Any], threshold: float) -> str:
    """One line of a frame's figures (picture title and console output)."""
    return (
        f'{name}: {summary["markers"]} markers ({summary["components"]} components), '
        f'{summary["share_above_fpr95_threshold"]:.1%} of {summary["occupied_voxels"]} occupied voxels '
        f'above {threshold:g}'
    )


def compare_results(direct: FrameResult, via_bag: FrameResult) -> dict[str, Any]:
    """How the bag path's result differs from the direct one: ``agrees`` and the evidence."""
    same_voxels = direct.voxel_scores.shape == via_bag.voxel_scores.shape and np.array_equal(
        direct.voxel_scores[:, :3], via_bag.voxel_scores[:, :3]
    )
    score_diff = (
        float(np.abs(direct.voxel_scores[:, 3] - via_bag.voxel_scores[:, 3]).max(initial=0.0))
        if same_voxels
        else math.inf
    )
    same_grid = np.array_equal(direct.score_grid, via_bag.score_grid)
    # Marker ids are left out: they count up over a detector's life, the one of a bag run is new.
    drawn = [[(m.kind, m.action, m.position_m, m.scale_m, m.text) for m in r.markers] for r in (direct, via_bag)]
    same_markers = drawn[0] == drawn[1]
    return {
        'agrees': bool(
            same_voxels and score_diff <= _SCORE_TOLERANCE and same_grid and same_markers and via_bag.camera_used
        ),
        'same_occupied_voxels': bool(same_voxels),
        'max_score_difference': score_diff if math.isfinite(score_diff) else None,
        'same_score_grid': bool(same_grid),
        'same_markers': bool(same_markers),
        'camera_used': via_bag.camera_used,
    }


def _run_via_bag(frame: KittiFrame, bag_dir: Path, node_values: Mapping[str, Any]) -> FrameResult:
    """Write ``frame`` as a bag with its params file and run the offline pipeline on it, as its CLI does.

    ``node_values`` (model, backend, threads, LiDAR intensity) are set over the params file's.
    """
    bag = bag_dir / frame.name
    params_path = bag_dir / f'{frame.name}.params.yaml'
    if bag.exists():
        shutil.rmtree(bag)
    frame_to_bag(frame, bag)
    write_params_file(rig_parameters(frame, intrinsics_source='camera_info'), params_path)
    values = load_params_file(params_path)
    values.update(node_values)
    frames = list(run_offline(bag, DetectorConfig.from_parameters(values), sync_parameters=values))
    if len(frames) != 1:
        msg = f'{bag}: the offline pipeline produced {len(frames)} frames from a one-frame bag'
        raise DataError(msg)
    return frames[0].result


def _pooled(frames: Mapping[str, Mapping[str, Any]], scores: list[np.ndarray], threshold: float) -> dict[str, Any]:
    pooled = np.concatenate(scores) if scores else np.zeros(0)
    above = int((pooled > threshold).sum())
    return {
        'frames': len(frames),
        'frames_with_markers': sum(f['markers'] > 0 for f in frames.values()),
        'markers': sum(f['markers'] for f in frames.values()),
        'components': sum(f['components'] for f in frames.values()),
        'occupied_voxels': int(pooled.size),
        'above_threshold': above,
        'share_above_fpr95_threshold': above / pooled.size if pooled.size else 0.0,
        'scores': score_distribution(pooled),
    }


def check_real_frames(
    model_path: str | Path,
    folder: str | Path,
    threshold: float,
    *,
    out: str | Path | None = None,
    render: bool = True,
    via_bag: bool = False,
    backend: str = 'onnxruntime',
    num_threads: int = 0,
    lidar_intensity: str = 'use',
) -> dict[str, Any]:
    """Run the detector on every KITTI-format frame of ``folder``; the summary as a dict.

    Args:
        model_path: ONNX model.
        folder: Frames (see ``anovox_training.data.kitti.KittiFolder``).
        threshold: Operating threshold on the anomaly score (e.g. :func:`load_fpr95_threshold`).
        out: Where pictures and bags go; nothing is written when None (bags then go to a temporary folder).
        render: Write ``frames/<name>.png`` under ``out``.
        via_bag: Also run each frame as a bag through the offline pipeline and compare.
        backend: Inference backend.
        num_threads: CPU inference threads (0: backend default).
        lidar_intensity: The node's ``lidar.intensity``: ``use`` (the card's rule) or ``ignore``.

    Returns:
        ``{'model', 'model_name', 'backend', 'threshold', 'occupancy_threshold', 'anomaly_threshold',
        'min_component_points', 'lidar_intensity_used', 'folder', 'layout',
        'frames': {name: frame_summary(...) [+ 'via_bag', 'picture']},
        'totals': {...}}``;
        with ``via_bag``, ``'via_bag_agrees'`` too.

    Raises:
        ConfigError: Bad threshold or configuration.
        DataError: A frame cannot be read.
        BackendError: The model cannot be loaded or run.
    """
    if not 0.0 <= threshold <= 1.0:
        msg = f'real check: threshold must be in [0, 1], got {threshold}'
        raise ConfigError(msg)
    frames_in = KittiFolder(folder)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None and render:
        (out_dir / 'frames').mkdir(parents=True, exist_ok=True)
    node_values = {
        'model_path': str(model_path),
        'backend': backend,
        'backend_options.num_threads': num_threads,
        'lidar.intensity': lidar_intensity,
    }
    base = {**defaults(), **node_values}
    with contextlib.ExitStack() as cleanup:
        bag_dir: Path | None = None
        if via_bag:
            temporary = out_dir is None
            bag_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory())) if temporary else out_dir / 'bags'
            bag_dir.mkdir(parents=True, exist_ok=True)
        detector = Detector(DetectorConfig.from_parameters(base))
        cleanup.callback(detector.close)
        summaries: dict[str, dict[str, Any]] = {}
        all_scores: list[np.ndarray] = []
        for name in frames_in.frame_names:
            frame = frames_in.read(name)
            detector.reset()  # independent scenes: no track carries over
            detector.update(**_config_fields(rig_parameters(frame)))
            result = detector.process(SyncedPair(_STAMP_NS, frame.points, frame.rgb, _STAMP_NS))
            summary = frame_summary(result, threshold, frame.points)
            all_scores.append(result.voxel_scores[:, 3].astype(np.float64))
            if bag_dir is not None:
                summary['via_bag'] = compare_results(result, _run_via_bag(frame, bag_dir, node_values))
            if out_dir is not None and render:
                picture = render_real_frame(
                    out_dir / 'frames' / f'{name}.png',
                    frame.rgb,
                    frame.points,
                    frame.camera,
                    frame.T_cam_lidar,
                    result,
                    threshold,
                    headline(name, summary, threshold),
                )
                summary['picture'] = str(picture.relative_to(out_dir))
            summaries[name] = summary
        report: dict[str, Any] = {
            'model': str(model_path),
            'model_name': detector.card.name,
            'backend': detector.backend_name,
            'threshold': threshold,
            'occupancy_threshold': detector.occupancy_threshold,
            'anomaly_threshold': detector.operating_point.anomaly_threshold,
            'min_component_points': detector.operating_point.min_component_points,
            'lidar_intensity_used': detector.uses_intensity,
            'folder': str(folder),
            'layout': frames_in.layout,
            'frames': summaries,
            'totals': _pooled(summaries, all_scores, threshold),
        }
    if via_bag:
        report['via_bag_agrees'] = all(s['via_bag']['agrees'] for s in summaries.values())
    return report


def _config_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """DetectorConfig field changes of dotted-name parameter values."""
    by_parameter = {p: f for f, p in DetectorConfig.PARAMETER_NAMES.items()}
    return {by_parameter[name]: tuple(v) if isinstance(v, list) else v for name, v in values.items()}


def real_metrics(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per frame ``{markers, share_above_fpr95_threshold, occupied_voxels, lidar_evidence}`` of a report.

    ``report`` is what :func:`check_real_frames` returns.
    """
    keys = ('markers', 'share_above_fpr95_threshold', 'occupied_voxels', 'lidar_evidence')
    return {name: {k: frame[k] for k in keys} for name, frame in report['frames'].items()}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m anovox_training.evaluate.real_check',
        description='Run a model on real KITTI-format frames and report its false alarms.',
    )
    parser.add_argument('folder', type=Path, help='a frame folder, a KITTI object folder or a folder of frame folders')
    parser.add_argument('--model', type=Path, default=None, help='ONNX model (default: the shipped model)')
    threshold = parser.add_mutually_exclusive_group()
    threshold.add_argument('--threshold', type=float, default=None, help='operating threshold on the anomaly score')
    threshold.add_argument(
        '--metrics', type=Path, default=None, help='evaluate metrics.json (default: <model>.metrics.json beside it)'
    )
    parser.add_argument('--variant', default=DEFAULT_VARIANT, help='variant of --metrics whose threshold to use')
    parser.add_argument('--out', type=Path, required=True, help='output folder (summary.json, frames/, bags/)')
    parser.add_argument('--via-bag', action='store_true', help='also run each frame as a bag through the node path')
    parser.add_argument('--no-render', action='store_true', help='write no pictures')
    parser.add_argument('--backend', default='onnxruntime', help='auto | tensorrt | onnxruntime | torch')
    parser.add_argument('--threads', type=int, default=0, help='CPU inference threads (0: backend default)')
    parser.add_argument(
        '--ignore-intensity',
        action='store_true',
        help="run with the node's lidar.intensity:=ignore (for a sensor whose intensity the model was not trained on)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``anovox-real-check``; returns the exit status."""
    args = get_args_parser().parse_args(argv)
    try:
        model = resolve_model_path(str(args.model or ''))
        if args.threshold is not None:
            threshold = args.threshold
        else:
            metrics = args.metrics or model.with_name(f'{model.stem}.metrics.json')
            threshold = load_fpr95_threshold(metrics, args.variant)
        report = check_real_frames(
            model,
            args.folder,
            threshold,
            out=args.out,
            render=not args.no_render,
            via_bag=args.via_bag,
            backend=args.backend,
            num_threads=args.threads,
            lidar_intensity='ignore' if args.ignore_intensity else 'use',
        )
    except AnovoxError as err:
        print(f'real-check: {err}', file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'summary.json').write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
    for name, frame in report['frames'].items():
        line = headline(name, frame, threshold)
        if 'via_bag' in frame:
            line += f'; bag path {"agrees" if frame["via_bag"]["agrees"] else "DIFFERS"}'
        print(line)
    print(f'wrote {args.out / "summary.json"}')
    if report.get('via_bag_agrees') is False:
        print(
            'real-check: the bag path (anovox_perception.tools.offline) differs from Detector.process', file=sys.stderr
        )
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
