"""Latency benchmark: one exported model on ONNX Runtime CPU and torch eager CPU, plus pre/post-processing.

    python -m anovox_perception.bench --out bench_out        # what `make bench` runs

Prints a table and writes ``<out>/bench.json``. Rows: ``preprocess_cpu``
(sensor arrays -> model inputs), ``inference_onnxruntime_cpu`` (with
``"baseline": "inference_torch_cpu"`` and ``"speedup"``, the ratio of p50
latencies), ``inference_torch_cpu`` and ``postprocess_cpu`` (score grid, voxel
scores, components).

Model: ``--model``, else the shipped model under ``models/`` when its
``torch.export`` program (``.pt2``) is beside it, else a ``base`` model with
random weights exported to a temporary folder by ``python -m
anovox_training.export`` in a subprocess (the runtime never imports the training
package). Latency does not depend on the weights' values. The table says which.

The stages run round-robin, one call each per round, so a change in machine
load hits every stage alike instead of whichever ran during it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import anovox_perception
from anovox_perception.backends import BackendOptions, OnnxRuntimeBackend, TorchBackend
from anovox_perception.backends.torch import program_path_for
from anovox_perception.errors import AnovoxError, BackendError
from anovox_perception.model_card import ModelCard, load_card
from anovox_perception.postprocess import find_components, score_grid, voxel_scores
from anovox_perception.preprocess import build_inputs

__all__ = ['choose_model', 'get_args_parser', 'main', 'run_bench', 'summarise', 'time_round_robin']

SHIPPED_MODEL_DIRS = (
    Path(__file__).resolve().parents[1] / 'models',  # source checkout / editable install
    Path(sys.prefix) / 'share' / 'anovox_perception' / 'models',  # pip install of the data files
)


def choose_model(explicit: Path | None, workdir: Path, size: str = 'base') -> tuple[Path, str]:
    """The model to benchmark and a sentence saying where it came from.

    Raises:
        BackendError: The fallback export fails (its output is quoted).
    """
    if explicit is not None:
        return explicit, f'{explicit} (given with --model)'
    skipped = []
    for folder in SHIPPED_MODEL_DIRS:
        for onnx_path in sorted(folder.glob('*.onnx')):
            if program_path_for(onnx_path).is_file():
                return onnx_path, f'shipped model {onnx_path.name}'
            skipped.append(onnx_path.name)
    why = f'shipped {skipped} lack a .pt2 program' if skipped else 'no shipped model'
    command = [sys.executable, '-m', 'anovox_training.export', '--random-init', size, '--out', str(workdir)]
    command += ['--name', f'bench_{size}']
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f'bench: exporting a {size} model failed ({" ".join(command)}): {done.stderr.strip()[-2000:]}'
        raise BackendError(msg)
    return workdir / f'bench_{size}.onnx', f'{size} model with random weights, freshly exported ({why})'


def synthetic_frame(card: ModelCard, seed: int = 0, n_points: int = 60_000) -> tuple[np.ndarray, np.ndarray]:
    """A camera image of the card's camera size and a LiDAR cloud over the card's grid (ground plus clutter)."""
    rng = np.random.default_rng(seed)
    spec = card.make_input_spec()
    g = spec.grid
    xyz = rng.uniform([g.x_min_m, g.y_min_m, -1.8], [g.x_max_m, g.y_max_m, 2.0], (n_points, 3))
    xyz[: n_points * 2 // 3, 2] = -1.8  # most returns come from the road
    points = np.hstack([xyz, rng.random((n_points, 1))]).astype(np.float32)
    rgb = rng.integers(0, 256, (card.camera.height, card.camera.width, 3), dtype=np.uint8)
    return rgb, points


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
        'p50_ms': round(float(p50), 3),
        'p90_ms': round(float(p90), 3),
        'p99_ms': round(float(p99), 3),
        'mean_ms': round(float(np.mean(times_ms)), 3),
        'min_ms': round(float(np.min(times_ms)), 3),
        'max_ms': round(float(np.max(times_ms)), 3),
        'n': len(times_ms),
    }


def run_bench(model_path: Path, source: str, iterations: int, warmup: int, threads: int) -> dict[str, Any]:
    """Benchmark every stage on ``model_path``; returns the report written to bench.json."""
    card = load_card(model_path, verify=True)
    spec = card.make_input_spec()
    rgb, points = synthetic_frame(card)
    camera, t_cam_lidar = card.camera, card.T_cam_lidar_array
    inputs = build_inputs(spec, rgb, points, camera, t_cam_lidar)
    ort_backend = OnnxRuntimeBackend.load(model_path, BackendOptions(intra_op_threads=threads, inter_op_threads=1))
    torch_backend = TorchBackend.load(model_path, BackendOptions(intra_op_threads=threads))
    outputs = ort_backend.run(inputs)
    reference = torch_backend.run(inputs)
    parity = {name: float(np.max(np.abs(outputs[name] - reference[name]))) for name in outputs}
    occupancy, anomaly = outputs['occupancy'][0], outputs['anomaly'][0]

    def postprocess() -> None:
        score_grid(occupancy, anomaly, spec.grid)
        voxel_scores(occupancy, anomaly, spec.grid)
        find_components(occupancy, anomaly, spec.grid)

    stages = {
        'preprocess_cpu': lambda: build_inputs(spec, rgb, points, camera, t_cam_lidar),
        'inference_onnxruntime_cpu': lambda: ort_backend.run(inputs),
        'inference_torch_cpu': lambda: torch_backend.run(inputs),
        'postprocess_cpu': postprocess,
    }
    load_before = os.getloadavg()[0]
    times = time_round_robin(stages, iterations, warmup)
    load_after = os.getloadavg()[0]
    rows = {name: {'name': name, **summarise(values)} for name, values in times.items()}
    ort_row, torch_row = rows['inference_onnxruntime_cpu'], rows['inference_torch_cpu']
    ort_row['baseline'] = 'inference_torch_cpu'
    ort_row['speedup'] = round(torch_row['p50_ms'] / ort_row['p50_ms'], 3)
    ort_row['speedup_p99'] = round(torch_row['p99_ms'] / ort_row['p99_ms'], 3)
    ort_row['config'] = f'ONNX Runtime, graph optimisation all, {threads} intra-op threads, no spin-wait'
    torch_row['config'] = f'torch eager ({torch_backend.source}), {threads} threads, inference_mode'
    import onnxruntime
    import torch

    return {
        'model': {'path': str(model_path), 'name': card.name, 'source': source, 'onnx_sha256': card.onnx_sha256},
        'parity_max_abs_diff': parity,
        'iterations': iterations,
        'warmup': warmup,
        'machine': {
            'cpus': len(os.sched_getaffinity(0)),
            'threads': threads,
            # Other processes skew CPU timings (torch's OpenMP threads suffer most); say how busy it was.
            'load_average_1min': [round(load_before, 2), round(load_after, 2)],
            'platform': platform.platform(),
            'python': platform.python_version(),
            'onnxruntime': onnxruntime.__version__,
            'torch': torch.__version__,
            'anovox_perception': anovox_perception.__version__,
        },
        'rows': list(rows.values()),
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table."""
    lines = [
        f'model: {report["model"]["source"]}',
        f'{report["iterations"]} rounds after {report["warmup"]} warm-up, {report["machine"]["threads"]} threads, '
        f'{report["machine"]["cpus"]} CPUs, 1-min load average {report["machine"]["load_average_1min"]} '
        f'(before, after); parity ORT vs torch max |diff| {report["parity_max_abs_diff"]}',
        f'{"stage":<28}{"p50 ms":>10}{"p99 ms":>10}{"mean ms":>10}{"min ms":>10}  note',
    ]
    for row in report['rows']:
        note = f'{row["speedup"]:.2f}x faster than {row["baseline"]} (p50)' if 'speedup' in row else ''
        lines.append(
            f'{row["name"]:<28}{row["p50_ms"]:>10.1f}{row["p99_ms"]:>10.1f}{row["mean_ms"]:>10.1f}{row["min_ms"]:>10.1f}'
            f'  {note}'
        )
    return '\n'.join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='anovox-bench', description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=Path('bench_out'), help='folder for bench.json')
    parser.add_argument('--model', type=Path, default=None, help='exported .onnx with a .pt2 beside it')
    parser.add_argument('--size', choices=('base', 'tiny'), default='base', help='size of the fallback model')
    parser.add_argument('--iterations', type=int, default=30, help='timed rounds')
    parser.add_argument('--warmup', type=int, default=3, help='untimed rounds first')
    parser.add_argument(
        '--threads', type=int, default=len(os.sched_getaffinity(0)), help='threads for both runtimes (default: CPUs)'
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 with a message on failure."""
    args = get_args_parser().parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.threads < 1:
        print('anovox-bench: --iterations and --threads must be >= 1, --warmup >= 0', file=sys.stderr)
        return 1
    try:
        with tempfile.TemporaryDirectory(prefix='anovox_bench_') as workdir:
            model_path, source = choose_model(args.model, Path(workdir), args.size)
            report = run_bench(model_path, source, args.iterations, args.warmup, args.threads)
    except AnovoxError as err:
        print(f'anovox-bench: {err}', file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'bench.json').write_text(json.dumps(report, indent=2) + '\n')
    print(format_table(report))
    print(f'wrote {args.out / "bench.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
