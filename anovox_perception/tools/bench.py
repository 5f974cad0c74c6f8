"""Latency benchmark of the node's stages against their reference implementations, in one table.

    python -m anovox_perception.tools.bench --out bench_out        # what `make bench` runs
    python -m anovox_perception.tools.bench --only lidar image     # some sections only

Writes ``<out>/bench.json``: a list of rows ``{"name", "p50_ms", "p99_ms", ...}``;
comparison rows add ``"baseline"`` (the row compared with) and ``"speedup"``
(baseline p50 / this p50). Every row carries the ``"command"`` that reproduces it
and the 1-min load average around its section. Sections:

- ``lidar``: PointCloud2 decode + BEV of a 64-beam sweep (120,000 points), the
  node's path (``msg_codec`` + ``points_to_bev``) against upstream's
  ``read_points_numpy`` plus a per-point Python voxeliser (same data, same output).
- ``image``: rgb8 Image decode, resize and normalisation of 768x512 and 1242x375 frames.
- ``sync``: cost per message of the LiDAR-driven synchroniser, 10 Hz LiDAR and
  20 Hz camera with jitter.
- ``pipeline``: all model inputs of a frame (``build_inputs``) and the postprocessing.
- ``inference``: the model on ONNX Runtime CPU (optimisation levels, threads, INT8
  dynamic quantisation with its validation AP), torch eager on the same weights,
  TensorRT FP32/FP16 (skipped without a GPU).
- ``e2e``: the node's pipeline fed by a bag in real time
  (:mod:`anovox_perception.tools.bench_e2e`, its own process).

Model: ``--model``, else the shipped model under ``models/``, else a ``base`` model
with random weights exported by ``python -m anovox_training.export``. Without a
``.pt2`` program beside it, ``python -m anovox_training.export.onnx_weights`` rebuilds the
torch model from the ONNX's own weights. Those, the INT8 models
(``anovox_training.export.quantize``), the validation data and the bag come from
subprocesses: the runtime never imports the training package.

The stages of a section run round-robin, one call each per round, so a change in
machine load hits them alike instead of whichever ran during it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import anovox_perception
from anovox_perception.backends.torch import program_path_for
from anovox_perception.core.allocator import retain_freed_memory
from anovox_perception.core.errors import AnovoxError, BackendError
from anovox_perception.core.package_data import model_search_dirs

__all__ = [
    'SECTIONS',
    'choose_model',
    'format_table',
    'get_args_parser',
    'main',
    'summarise',
    'time_round_robin',
    'torch_model_for',
]

SHIPPED_MODEL_DIRS = tuple(model_search_dirs())
# The e2e bag: a validation scenario at its 10 Hz frame rate, camera stamps jittered by up to 5 ms.
E2E_FRAME_PERIOD_MS = 100
E2E_CAMERA_JITTER_MS = 5
SECTIONS = ('lidar', 'image', 'sync', 'pipeline', 'inference', 'e2e')
# The validation split `make model` uses (DATA_PLAN 'val'): the INT8 AP cost is measured on it.
VALIDATION_SPLIT = ('--split', 'val', '--scenarios', '20', '--frames', '10', '--seed', '101', '--width', '384')
VALIDATION_SPLIT += ('--height', '256')


def _python_m(module: str, *args: str) -> list[str]:
    return [sys.executable, '-m', module, *args]


def _run(command: list[str], what: str) -> str:
    """Run a subprocess; its stdout, or BackendError quoting its stderr."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f'bench: {what} failed ({" ".join(command)}): {done.stderr.strip()[-2000:]}'
        raise BackendError(msg)
    return done.stdout


def _from_cwd(path: Path) -> Path:
    """``path`` relative to the working directory when it lies below it: the recorded commands then run anywhere."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def choose_model(explicit: Path | None, workdir: Path, size: str = 'base') -> tuple[Path, str]:
    """The model to benchmark and a sentence saying where it came from.

    Raises:
        BackendError: The fallback export fails (its output is quoted).
    """
    if explicit is not None:
        return explicit, f'{explicit} (given with --model)'
    for folder in SHIPPED_MODEL_DIRS:
        found = sorted(folder.glob('*.onnx'))
        if found:
            return _from_cwd(found[0]), f'shipped model {found[0].name}'
    name = f'bench_{size}'
    _run(
        _python_m('anovox_training.export.run', '--random-init', size, '--out', str(workdir), '--name', name), 'export'
    )
    return workdir / f'bench_{size}.onnx', f'{size} model with random weights, freshly exported (no shipped model)'


def torch_model_for(model: Path, workdir: Path) -> tuple[Path, str]:
    """An ONNX path with the ``.pt2`` program of the same weights beside it, and where the program came from.

    Raises:
        BackendError: Rebuilding the torch model from the ONNX fails.
    """
    if program_path_for(model).is_file():
        return model, f'program {program_path_for(model).name} beside the ONNX'
    out = workdir / 'eager'
    stdout = _run(_python_m('anovox_training.export.onnx_weights', str(model), '--out', str(out)), 'rebuilding torch')
    parity = stdout.strip().split('(')[-1].rstrip(')')
    return out / model.name, f'torch model rebuilt from the ONNX weights ({parity})'


def time_round_robin(stages: dict[str, Callable[[], Any]], iterations: int, warmup: int) -> dict[str, np.ndarray]:
    """Wall-clock milliseconds of each stage, calling the stages in turn for ``iterations`` rounds."""
    for _ in range(warmup):
        for call in stages.values():
            call()
    times = {name: np.empty(iterations) for name in stages}
    for i in range(iterations):
        for name, call in stages.items():
            start = time.perf_counter()
            call()
            times[name][i] = (time.perf_counter() - start) * 1e3
    return times


def summarise(times_ms: np.ndarray) -> dict[str, float]:
    """p50 / p90 / p99 / mean / min / max in ms, and the sample count."""
    p50, p90, p99 = np.percentile(times_ms, [50, 90, 99])
    return {
        'p50_ms': round(float(p50), 4),
        'p90_ms': round(float(p90), 4),
        'p99_ms': round(float(p99), 4),
        'mean_ms': round(float(np.mean(times_ms)), 4),
        'min_ms': round(float(np.min(times_ms)), 4),
        'max_ms': round(float(np.max(times_ms)), 4),
        'n': len(times_ms),
    }


def compare(rows: dict[str, dict[str, Any]], name: str, baseline: str) -> None:
    """Mark ``rows[name]`` as compared with ``rows[baseline]`` (p50 ratio)."""
    row, base = rows[name], rows[baseline]
    row['baseline'] = baseline
    row['speedup'] = round(base['p50_ms'] / row['p50_ms'], 3)


class Bench:
    """The sections of one run: shared inputs, the rows made so far and how each is reproduced."""

    def __init__(self, args: argparse.Namespace, model: Path, source: str, workdir: Path) -> None:
        from anovox_perception.core.model_card import load_card

        self.args = args
        self.model = model
        self.source = source
        self.workdir = workdir
        self.card = load_card(model, verify=True)
        self.spec = self.card.make_input_spec()
        self.rows: list[dict[str, Any]] = []
        self.notes: dict[str, Any] = {}
        model_args = [] if args.model is None else ['--model', str(args.model)]
        self.base_command = ['python', '-m', 'anovox_perception.tools.bench', *model_args]

    def command(self, section: str) -> str:
        extra = ['--iterations', str(self.args.iterations), '--threads', str(self.args.threads)]
        return ' '.join([*self.base_command, '--only', section, *extra])

    def add(self, section: str, rows: dict[str, dict[str, Any]], load: tuple[float, float]) -> None:
        for row in rows.values():
            row.setdefault('command', self.command(section))
            row['section'] = section
            row['load_average_1min'] = [round(load[0], 2), round(load[1], 2)]
            self.rows.append(row)

    def timed(
        self, stages: dict[str, Callable[[], Any]], iterations: int | None = None
    ) -> tuple[dict[str, dict[str, Any]], tuple[float, float]]:
        """Rows of round-robin timings of ``stages``, and the 1-min load average before and after."""
        load_before = os.getloadavg()[0]
        times = time_round_robin(stages, iterations or self.args.iterations, self.args.warmup)
        rows = {name: {'name': name, **summarise(values)} for name, values in times.items()}
        return rows, (load_before, os.getloadavg()[0])

    # ------------------------------------------------------------------ sections
    def lidar(self) -> None:
        from std_msgs.msg import Header

        from anovox_perception.core.preprocess import points_to_bev
        from anovox_perception.ros import msg_codec
        from anovox_perception.tools.bench_pointcloud import bev_per_point, lidar_sweep, read_points_numpy

        cloud = msg_codec.array_to_pointcloud2(lidar_sweep(), Header(frame_id='lidar'))
        fields = ['x', 'y', 'z', 'intensity']
        spec = self.spec

        def ours() -> np.ndarray:
            return points_to_bev(msg_codec.pointcloud2_to_xyzi(cloud).points, spec)

        def reference() -> np.ndarray:
            return bev_per_point(read_points_numpy(cloud, fields), spec)

        if not np.array_equal(ours(), reference()):
            msg = 'bench: the BEV of the node path differs from the per-point reference; fix it before timing'
            raise AnovoxError(msg)
        rows, load = self.timed(
            {
                'pointcloud_decode_bev': ours,
                'pointcloud_decode': lambda: msg_codec.pointcloud2_to_xyzi(cloud),
                'pointcloud_decode_reference': lambda: read_points_numpy(cloud, fields),
            },
        )
        slow, slow_load = self.timed({'pointcloud_decode_bev_reference': reference}, self.args.reference_rounds)
        rows.update(slow)
        compare(rows, 'pointcloud_decode_bev', 'pointcloud_decode_bev_reference')
        compare(rows, 'pointcloud_decode', 'pointcloud_decode_reference')
        points = cloud.width * cloud.height
        for name in rows:
            rows[name]['config'] = f'{points} points (64 x {cloud.width}, NaN no-returns), {cloud.point_step} B each'
        rows['pointcloud_decode_bev_reference']['config'] += '; read_points_numpy + per-point Python voxeliser'
        rows['pointcloud_decode_reference']['config'] += '; sensor_msgs_py read_points_numpy(skip_nans=True)'
        self.add('lidar', rows, (load[0], slow_load[1]))

    def image(self) -> None:
        from std_msgs.msg import Header

        from anovox_perception.core.preprocess import prepare_image
        from anovox_perception.ros import msg_codec

        rng = np.random.default_rng(0)
        stages = {}
        for width, height in ((768, 512), (1242, 375)):
            msg = msg_codec.rgb_to_image(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), Header())

            def run(msg: Any = msg) -> np.ndarray:
                return prepare_image(msg_codec.image_to_rgb(msg), self.spec)

            stages[f'image_{width}x{height}'] = run
        rows, load = self.timed(stages)
        for name in rows:
            rows[name]['config'] = f'rgb8 Image -> {self.spec.image_width}x{self.spec.image_height} float32, normalised'
        self.add('image', rows, load)

    def sync(self) -> None:
        from anovox_perception.tools.bench_sync import sync_cost_per_message

        load_before = os.getloadavg()[0]
        times, counters = sync_cost_per_message(rounds=self.args.iterations)
        stream = '10 Hz LiDAR (2 ms jitter), 20 Hz camera (-20 ms, 5 ms jitter), 30 s per round'
        rows = {
            'sync_per_message': {'name': 'sync_per_message', **summarise(times['message']), 'config': stream},
            'sync_poll': {'name': 'sync_poll', **summarise(times['poll']), 'config': 'the 20 ms poll timer'},
        }
        rows['sync_per_message']['note'] = f'LiDAR-driven, default sync.*; last round {counters}'
        self.add('sync', rows, (load_before, os.getloadavg()[0]))

    def _frame_inputs(self) -> dict[str, np.ndarray]:
        from anovox_perception.core.preprocess import build_inputs
        from anovox_perception.tools.bench_pointcloud import lidar_sweep

        fields = lidar_sweep()
        points = np.stack([fields[k] for k in ('x', 'y', 'z', 'intensity')], axis=1)
        self._points = points[np.isfinite(points[:, 0])]
        rng = np.random.default_rng(0)
        self._rgb = rng.integers(0, 256, (self.card.camera.height, self.card.camera.width, 3), dtype=np.uint8)
        return build_inputs(self.spec, self._rgb, self._points, self.card.camera, self.card.T_cam_lidar_array)

    def pipeline(self) -> None:
        from anovox_perception.backends import BackendOptions, OnnxRuntimeBackend
        from anovox_perception.core.postprocess import find_components, score_grid, voxel_scores
        from anovox_perception.core.preprocess import build_inputs

        inputs = self._frame_inputs()
        options = BackendOptions(use_cuda=False, intra_op_threads=self.args.threads)
        backend = OnnxRuntimeBackend.load(self.model, options)
        outputs = backend.run(inputs)
        occupancy, anomaly = outputs['occupancy'][0], outputs['anomaly'][0]
        grid, threshold = self.spec.grid, self.card.calibration.occupancy_threshold

        def postprocess() -> None:
            score_grid(occupancy, anomaly, grid, threshold)
            voxel_scores(occupancy, anomaly, grid, threshold)
            find_components(occupancy, anomaly, grid, threshold)

        camera, extrinsics = self.card.camera, self.card.T_cam_lidar_array
        rows, load = self.timed(
            {
                'preprocess_cpu': lambda: build_inputs(self.spec, self._rgb, self._points, camera, extrinsics),
                'postprocess_cpu': postprocess,
            },
        )
        rows['preprocess_cpu']['config'] = f'768x512 image + {len(self._points)}-point cloud + cached geometry'
        rows['postprocess_cpu']['config'] = 'score grid, voxel cloud, components (model outputs of that frame)'
        self.add('pipeline', rows, load)

    def inference(self) -> None:
        from anovox_perception.tools.bench_inference import (
            REFERENCE_VARIANT,
            onnxruntime_variants,
            tensorrt_variants,
            torch_variant,
        )

        inputs = self._frame_inputs()
        int8, accuracy, quantize_command = self._int8_models()
        torch_model, torch_source = torch_model_for(self.model, self.workdir)
        variants = onnxruntime_variants(self.model, self.args.threads, int8)
        variants.append(torch_variant(torch_model, self.args.threads, torch_source))
        variants += tensorrt_variants(self.model)
        runnable = {v.name: v for v in variants if v.run is not None}
        reference = runnable[REFERENCE_VARIANT].run(inputs)
        parity = {}
        for name, variant in runnable.items():
            out = variant.run(inputs)
            parity[name] = round(max(float(np.max(np.abs(out[k] - reference[k]))) for k in reference), 6)
        rows, load = self.timed({name: (lambda v=v: v.run(inputs)) for name, v in runnable.items()})
        for variant in variants:
            if variant.run is None:
                rows[variant.name] = {'name': variant.name, 'p50_ms': None, 'p99_ms': None, 'note': variant.skipped}
            rows[variant.name]['config'] = variant.config
            if variant.name in parity:
                rows[variant.name]['max_abs_diff_to_ort'] = parity[variant.name]
        for name in runnable:
            if name != 'inference_torch_cpu':
                compare(rows, name, 'inference_torch_cpu')
        fp32_ap = accuracy.get('fp32', {}).get('AP')
        for key, metrics in accuracy.items():
            row = rows.get(f'inference_ort_cpu_{key}') if key != 'fp32' else rows[REFERENCE_VARIANT]
            if row is not None:
                row['validation'] = metrics
                row['validation_command'] = quantize_command
                if key != 'fp32' and metrics.get('AP') is not None and fp32_ap is not None:
                    row['validation_ap_change'] = round(metrics['AP'] - fp32_ap, 4)  # same frames, same threshold
        self.notes['inference_parity_max_abs_diff'] = parity
        self.add('inference', {v.name: rows[v.name] for v in variants}, load)

    def _int8_models(self) -> tuple[dict[str, Path], dict[str, Any], str]:
        out = self.args.out / 'int8'
        command = ['python', '-m', 'anovox_training.export.quantize', str(self.model), '--out', str(out)]
        if not self.args.no_accuracy:
            command += ['--val-data', *map(str, self._validation_data())]
        _run([sys.executable, *command[1:]], 'quantising the model')
        report = json.loads((out / 'quantize.json').read_text())
        models = {name: Path(path) for name, path in report['models'].items() if name != 'fp32'}
        return models, report.get('validation', {}), ' '.join(command)

    def _validation_data(self) -> list[Path]:
        if self.args.val_data:
            return list(self.args.val_data)
        folder = self.args.out / 'data' / 'val'
        if not any(folder.glob('Scenario_*')):
            _run(_python_m('anovox_training.data.synth', '--out', str(folder), *VALIDATION_SPLIT), 'writing val data')
        return [folder]

    def e2e(self) -> None:
        scenario = sorted(self._validation_data()[0].glob('Scenario_*'))[0]
        bag = self.args.out / 'e2e_bag'
        if not bag.exists():
            timing = ['--camera-offset-ms', '-20', '--camera-jitter-ms', str(E2E_CAMERA_JITTER_MS)]
            timing += ['--lidar-jitter-ms', '2', '--seed', '0']
            _run(_python_m('anovox_training.data.to_bag', str(scenario), str(bag), *timing), 'writing the e2e bag')
        report_path = self.args.out / 'e2e.json'
        command = ['python', '-m', 'anovox_perception.tools.bench_e2e', str(bag), '--out', str(report_path)]
        # The node configured for the bag's camera, as a user sets it for theirs: two of its
        # images never come closer than the frame period less twice their jitter.
        bound_s = (E2E_FRAME_PERIOD_MS - 2 * E2E_CAMERA_JITTER_MS) / 1e3
        command += ['--sync', f'sync.image_interval_lower_bound_s={bound_s:g}']
        command += ['--model', str(self.model), '--threads', str(self.args.threads)]
        command += ['--seconds', str(self.args.e2e_seconds), '--overload-seconds', str(self.args.overload_seconds)]
        command += ['--sweep-seconds', str(self.args.sweep_seconds)]
        load_before = os.getloadavg()[0]
        _run([sys.executable, *command[1:]], 'the end-to-end run')
        report = json.loads(report_path.read_text())
        rows = e2e_rows(report, ' '.join(command))
        self.notes['e2e'] = {k: report[k] for k in ('highest_sustained_hz', 'capacity_hz', 'peak_rss_mib', 'backend')}
        self.add('e2e', rows, (load_before, os.getloadavg()[0]))


def e2e_rows(report: dict[str, Any], command: str) -> dict[str, dict[str, Any]]:
    """Rows of the end-to-end report: latency, node overhead and stage times at the bag rate, and overload."""
    nominal, overload = report['nominal'], report['overload']
    hz = nominal['input_hz']
    common = {'command': command}
    drops = f'{nominal["dropped"]} of {nominal["pairs"]} pairs dropped'
    rows = {
        f'e2e_latency_{hz:g}hz': {
            **nominal['latency'],
            'note': f'{drops}; sustained up to {report["highest_sustained_hz"]} Hz; RSS {report["peak_rss_mib"]} MiB',
            'drop_rate': nominal['drop_rate'],
            'highest_sustained_hz': report['highest_sustained_hz'],
            'peak_rss_mib': report['peak_rss_mib'],
        },
        f'e2e_node_overhead_{hz:g}hz': {**nominal['node_overhead'], 'note': 'latency minus inference'},
        f'e2e_node_overhead_without_sync_wait_{hz:g}hz': {
            **nominal['node_overhead_without_sync_wait'],
            'note': 'latency minus inference minus the wait for the nearest image (sync_wait)',
        },
    }
    for stage, values in nominal['stages'].items():
        rows[f'e2e_{stage}_{hz:g}hz'] = dict(values)
    windows = overload['windows']
    growth = [w['p99_ms'] for w in windows]
    rows[f'e2e_latency_overload_{overload["input_hz"]:g}hz'] = {
        **overload['latency'],
        'note': f'{overload["dropped"]} of {overload["pairs"]} pairs dropped; p99 per 10 s window {growth}',
        'drop_rate': overload['drop_rate'],
        'windows': windows,
    }
    for name, row in rows.items():
        row.update(common, name=name)
    return rows


def format_table(rows: Sequence[dict[str, Any]], header: str) -> str:
    """The rows as one fixed-width text table."""
    lines = [header, f'{"row":<44}{"p50 ms":>11}{"p99 ms":>11}  note']
    for row in rows:
        note = f'{row["speedup"]:.2f}x {row["baseline"]} (p50)' if 'speedup' in row else row.get('note', '')
        if 'validation' in row:
            v = row['validation']
            scores = ' '.join(f'{k} {"n/a" if v[k] is None else format(v[k], ".3f")}' for k in ('AP', 'AUROC', 'FPR95'))
            note += f'; validation {scores} ({v["frames"]} frames)'
            if 'validation_ap_change' in row:
                note += f', AP {row["validation_ap_change"]:+.4f} vs FP32'
        p50 = '-' if row['p50_ms'] is None else f'{row["p50_ms"]:.3f}'
        p99 = '-' if row['p99_ms'] is None else f'{row["p99_ms"]:.3f}'
        lines.append(f'{row["name"]:<44}{p50:>11}{p99:>11}  {note}')
    return '\n'.join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='anovox-bench', description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=Path('bench_out'), help='folder for bench.json (and data kept)')
    parser.add_argument('--model', type=Path, default=None, help='exported .onnx (default: the shipped model)')
    parser.add_argument('--size', choices=('base', 'tiny'), default='base', help='size of the fallback model')
    parser.add_argument('--only', nargs='+', choices=SECTIONS, default=list(SECTIONS), help='sections to run')
    parser.add_argument('--iterations', type=int, default=30, help='timed rounds per section')
    parser.add_argument('--warmup', type=int, default=3, help='untimed rounds first')
    parser.add_argument('--reference-rounds', type=int, default=5, help='rounds of the per-point voxeliser')
    parser.add_argument(
        '--threads', type=int, default=len(os.sched_getaffinity(0)), help='threads for both runtimes (default: CPUs)'
    )
    parser.add_argument('--val-data', type=Path, nargs='*', default=[], help='validation split (default: generated)')
    parser.add_argument('--no-accuracy', action='store_true', help='time the INT8 models without their validation AP')
    parser.add_argument('--e2e-seconds', type=float, default=30.0, help='end-to-end run at the bag rate (s)')
    parser.add_argument('--sweep-seconds', type=float, default=10.0, help='each run of the replay-rate sweep (s)')
    parser.add_argument('--overload-seconds', type=float, default=60.0, help='end-to-end run at 5x overload (s)')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 with a message on failure."""
    args = get_args_parser().parse_args(argv)
    if min(args.iterations, args.threads, args.reference_rounds) < 1 or args.warmup < 0:
        problem = '--iterations, --reference-rounds and --threads must be >= 1, --warmup >= 0'
        print(f'anovox-bench: {problem}', file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    allocator = retain_freed_memory()  # as the node does: timings then match its steady state
    try:
        with tempfile.TemporaryDirectory(prefix='anovox_bench_') as workdir:
            model, source = choose_model(args.model, Path(workdir), args.size)
            bench = Bench(args, model, source, Path(workdir))
            for section in SECTIONS:
                if section in args.only:
                    getattr(bench, section)()
    except AnovoxError as err:
        print(f'anovox-bench: {err}', file=sys.stderr)
        return 1
    (args.out / 'bench.json').write_text(json.dumps(bench.rows, indent=2) + '\n')
    meta = {
        'model': {'path': str(model), 'name': bench.card.name, 'source': source, 'onnx_sha256': bench.card.onnx_sha256},
        'machine': machine_info(args.threads),
        'iterations': args.iterations,
        'warmup': args.warmup,
        'wall_s': round(time.monotonic() - started, 1),
        'allocator': allocator,
        **bench.notes,
    }
    (args.out / 'bench_meta.json').write_text(json.dumps(meta, indent=2) + '\n')
    header = (
        f'model: {source}; {args.iterations} rounds after {args.warmup} warm-up, {args.threads} threads, '
        f'{meta["machine"]["cpus"]} CPUs, 1-min load average {meta["machine"]["load_average_1min"]}'
    )
    print(format_table(bench.rows, header))
    print(f'wrote {args.out / "bench.json"} and {args.out / "bench_meta.json"}')
    return 0


def machine_info(threads: int) -> dict[str, Any]:
    """CPUs, load, platform and library versions (imported only when installed)."""
    info: dict[str, Any] = {
        'cpus': len(os.sched_getaffinity(0)),
        'threads': threads,
        'load_average_1min': round(os.getloadavg()[0], 2),
        'cpu_model': _cpu_model(),
        'platform': platform.platform(),
        'python': platform.python_version(),
        'anovox_perception': anovox_perception.__version__,
        'gpu': shutil.which('nvidia-smi') is not None,
    }
    for module in ('numpy', 'onnxruntime', 'torch'):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == '__main__':
    sys.exit(main())
