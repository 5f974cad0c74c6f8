"""``make demo``: the shipped model, online, on a held-out synthetic scenario, over real ROS 2 topics.

    python -m anovox_training.integration.demo --out demo_out [--frames 30] [--rate 0.25] [--model models/X.onnx]

Steps: generate one test-split scenario (anomaly categories never seen in
training), write it as a rosbag2, start the detector node (``anovox-detect``,
ONNX Runtime on the CPU unless a GPU is present) and a recorder, replay the bag
through the node at ``--rate`` times real time, then read back what the node
published: the per-frame end-to-end latency (cloud received -> outputs
received, both timed by the recorder) and the AnoVox metrics of the published
voxel scores against the bag's ground truth. Writes under ``--out``:

- ``summary.json``: ``frames_sent``, ``frames_out``, ``latency_ms`` {p50, p99,
  mean, max}, ``backend``, ``model`` and ``metrics`` (the evaluation report shape);
- ``frames/frame_XXXX.png``: camera view with the node's anomaly boxes projected
  and the BEV score map with its markers; ``demo.gif``: the same as an animation;
- ``work/``: the scenario, the input bag, the recorded outputs and the process logs.

Without a trained model in ``models/`` it stops and says how to make one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anovox_perception.core import msg_decode, package_data
from anovox_perception.core.errors import AnovoxError, ConfigError
from anovox_perception.core.model_card import load_card
from anovox_perception.tools.bag_reader import BagReader
from anovox_perception.tools.bags import BagTiming, BagTopics
from anovox_training.integration.demo_render import render_frame, write_gif
from anovox_training.integration.node_eval import evaluate_published, frame_truths, metrics_report
from anovox_training.integration.node_run import (
    NodeRunError,
    RunOptions,
    read_diagnostics,
    read_ground_truth,
    read_node_outputs,
    run_node_on_bag,
    write_scenario_bag,
)

__all__ = ['get_args_parser', 'main', 'run']

_SUBSET_ORDER = ('Anomalies_Only', 'Normality_Included')
_METRICS_SHOWN = ('AUROC', 'AP', 'FPR95', 'F1', 'PPV', 'coverage', 'voxels')


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m anovox_training.integration.demo', description=__doc__.split('\n\n')[0]
    )
    parser.add_argument('--out', type=Path, default=Path('demo_out'), help='output folder (default demo_out)')
    parser.add_argument('--model', default='', help='ONNX model (default: the one in models/)')
    parser.add_argument('--backend', default='auto', help='auto | tensorrt | onnxruntime | torch (default auto)')
    parser.add_argument('--frames', type=int, default=30, help='frames of the generated scenario (10 Hz; default 30)')
    parser.add_argument('--seed', type=int, default=2031, help='scenario seed (default 2031)')
    parser.add_argument(
        '--rate', type=float, default=0.25, help='replay speed factor; lower it if frames are dropped (default 0.25)'
    )
    parser.add_argument(
        '--image-size',
        type=int,
        nargs=2,
        default=None,
        metavar=('W', 'H'),
        help="camera image size of the generated scenario (default: the model's input size, as make model trains)",
    )
    parser.add_argument('--domain-id', type=int, default=None, help='ROS_DOMAIN_ID of the run (default: from the pid)')
    parser.add_argument('--no-render', action='store_true', help='skip the PNG frames and the GIF')
    return parser


def _step(text: str) -> float:
    print(f'[demo] {text}', flush=True)
    return time.perf_counter()


def _generate_scenario(data_dir: Path, frames: int, seed: int, size: tuple[int, int]) -> Path:
    cmd = [
        sys.executable, '-m', 'anovox_training.data.synth', '--out', str(data_dir), '--split', 'test',
        '--scenarios', '1', '--frames', str(frames), '--seed', str(seed), '--normal-share', '0', '--no-progress',
        '--width', str(size[0]), '--height', str(size[1]),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f'generating the demo scenario failed ({" ".join(cmd)}):\n{done.stderr[-3000:]}'
        raise NodeRunError(msg)
    (scenario,) = sorted(data_dir.glob('Scenario_*'))
    return scenario


def _images_by_stamp(bag: Path, topic: str) -> dict[int, np.ndarray]:
    out = {}
    with BagReader(bag) as reader:
        for _, _, msg in reader.messages(topics=[topic]):
            out[msg_decode.stamp_to_ns(msg.header.stamp)] = msg_decode.image_to_rgb(msg, copy=True)
    return out


def _nearest(stamps: np.ndarray, stamp: int, slop_ns: int) -> int | None:
    if not len(stamps):
        return None
    i = int(np.argmin(np.abs(stamps - stamp)))
    return int(stamps[i]) if abs(int(stamps[i]) - stamp) <= slop_ns else None


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {'p50': None, 'p99': None, 'mean': None, 'max': None}
    arr = np.asarray(values)
    return {
        'p50': round(float(np.percentile(arr, 50)), 2),
        'p99': round(float(np.percentile(arr, 99)), 2),
        'mean': round(float(arr.mean()), 2),
        'max': round(float(arr.max()), 2),
    }


def _stage_times(diagnostics: list[dict[str, str]]) -> dict[str, float]:
    """Per-stage times inside the node (ms): the median over diagnostics periods of each period's p50."""
    samples: dict[str, list[float]] = {}
    for status in diagnostics:
        for key, value in status.items():
            if key.startswith('time_ms.') and key.endswith('.p50'):
                samples.setdefault(key[len('time_ms.') : -len('.p50')], []).append(float(value))
    return {stage: round(float(np.median(values)), 1) for stage, values in sorted(samples.items())}


def _print_summary(summary: dict[str, Any]) -> None:
    lat = summary['latency_ms']
    print(f'\nmodel {summary["model"]} on {summary["backend"]}, replay rate {summary["rate"]}')
    print(f'frames sent {summary["frames_sent"]}, frames out {summary["frames_out"]}')
    if lat['p50'] is not None:
        print(f'end-to-end latency per frame (ms): p50 {lat["p50"]}, p99 {lat["p99"]}, max {lat["max"]}')
    stages = ', '.join(f'{k} {v}' for k, v in summary['node_stage_ms'].items())
    print(f'inside the node, median per stage (ms): {stages}')
    fusion = summary['metrics']['variants']['fusion']
    print('\n| subset | ' + ' | '.join(_METRICS_SHOWN) + ' |')
    print('|' + '---|' * (len(_METRICS_SHOWN) + 1))
    for subset in _SUBSET_ORDER:
        row = fusion[subset]
        cells = []
        for key in _METRICS_SHOWN:
            value = row.get(key)
            cells.append('n/a' if value is None else (f'{value:,}' if isinstance(value, int) else f'{value:.3f}'))
        print(f'| {subset} | ' + ' | '.join(cells) + ' |')


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole demo; returns the summary written to ``summary.json``.

    Raises:
        ConfigError: No model, or bad arguments.
        NodeRunError: A step's process failed.
    """
    if args.frames < 2 or not args.rate > 0:
        msg = f'--frames must be >= 2 and --rate > 0, got {args.frames} and {args.rate}'
        raise ConfigError(msg)
    t = _step('looking for the trained model')
    try:
        model = package_data.resolve_model_path(args.model).resolve()
    except ConfigError as err:
        if args.model:
            raise
        searched = ', '.join(str(d) for d in package_data.model_search_dirs())
        msg = (
            f'no trained model to run (looked for exactly one *.onnx in {searched}). Make one with `make model` '
            '(generates the synthetic data, trains, evaluates and exports models/<name>.onnx), '
            'or pass --model PATH.onnx'
        )
        raise ConfigError(msg) from err
    card = load_card(model)
    spec = card.make_input_spec()
    grid = spec.grid
    # The model resizes every image to its input size; rendering the scenario at that size is 4x cheaper.
    size = tuple(args.image_size) if args.image_size else (spec.image_width, spec.image_height)
    out = Path(args.out)
    work = out / 'work'
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out / 'frames', ignore_errors=True)
    work.mkdir(parents=True)
    timings: dict[str, float] = {}

    t = _step(
        f'model {card.name} ({model}); generating a held-out test scenario of {args.frames} frames '
        f'({size[0]}x{size[1]} camera)'
    )
    scenario = _generate_scenario(work / 'data', args.frames, args.seed, size)
    timings['generate_s'] = time.perf_counter() - t

    t = _step(f'writing {scenario.name} as a rosbag2')
    topics = BagTopics()
    bag = work / 'input_bag'
    # A little camera/LiDAR jitter exercises the synchroniser.
    timing = BagTiming(camera_jitter_ms=5.0, lidar_jitter_ms=2.0, seed=args.seed)
    summary_bag = write_scenario_bag(scenario, bag, timing=timing)
    timings['bag_s'] = time.perf_counter() - t

    domain_id = args.domain_id if args.domain_id is not None else 20 + os.getpid() % 80
    t = _step(f'running anovox-detect on the bag at {args.rate}x over ROS 2 (domain {domain_id}); recording outputs')
    node_run = run_node_on_bag(
        RunOptions(
            model_path=model,
            bag=bag,
            work_dir=work,
            backend=args.backend,
            rate=args.rate,
            domain_id=domain_id,
            params={'diagnostics.expected_rate_hz': 10.0 * args.rate},
            topics=topics,
        )
    )
    timings['node_run_s'] = time.perf_counter() - t

    t = _step('evaluating what the node published against the ground truth')
    outputs = read_node_outputs(node_run.recorded_bag, topics.points)
    sent = summary_bag.lidar_stamps_ns
    matched = {s: outputs[s] for s in sent if s in outputs}
    truths = frame_truths(bag, read_ground_truth(bag, topics), scenario)
    variant = evaluate_published(matched.values(), truths, grid)
    report = metrics_report(variant, frames=len(matched), scenarios=1)
    diagnostics = read_diagnostics(node_run.recorded_bag)
    backend = diagnostics[-1].get('backend', args.backend) if diagnostics else args.backend
    latencies = [o.latency_ms for o in matched.values() if o.latency_ms is not None]
    summary = {
        'frames_sent': len(sent),
        'frames_out': len(matched),
        'latency_ms': _percentiles(latencies),
        'backend': backend,
        'model': card.name,
        'model_path': str(model),
        'rate': args.rate,
        'stamps_and_frames_match': all(o.frame_id == topics.lidar_frame for o in matched.values()),
        'node_stage_ms': _stage_times(diagnostics),
        'node_diagnostics': {
            k: v for k, v in (diagnostics[-1] if diagnostics else {}).items() if k.startswith('total.')
        },
        'metrics': report,
    }
    timings['evaluate_s'] = time.perf_counter() - t

    if not args.no_render:
        t = _step('rendering frames')
        with BagReader(bag) as reader:
            meta = reader.description
        images = _images_by_stamp(bag, topics.image)
        image_stamps = np.array(sorted(images), dtype=np.int64)
        frames_dir = out / 'frames'
        frames_dir.mkdir(parents=True, exist_ok=True)
        pngs = []
        for k, stamp in enumerate(sorted(matched)):
            image_stamp = _nearest(image_stamps, stamp, slop_ns=50_000_000)
            truth = truths.get(stamp)
            frame_id = truth.frame_id if truth is not None else k
            latency = matched[stamp].latency_ms
            title = f'{scenario.name}  frame {frame_id}  ({len(matched[stamp].boxes)} anomaly boxes' + (
                f', latency {latency:.0f} ms)' if latency is not None else ')'
            )
            pngs.append(
                render_frame(
                    frames_dir / f'frame_{k:04d}.png',
                    images.get(image_stamp) if image_stamp is not None else None,
                    meta.camera,
                    meta.T_cam_lidar,
                    matched[stamp],
                    truth.voxels if truth is not None else None,
                    title,
                )
            )
        write_gif(pngs, out / 'demo.gif')
        timings['render_s'] = time.perf_counter() - t
    summary['timings_s'] = {k: round(v, 1) for k, v in timings.items()}
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    _print_summary(summary)
    print(f'\nwrote {out / "summary.json"}' + ('' if args.no_render else f', {out / "frames"}/, {out / "demo.gif"}'))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``make demo``; returns the exit status."""
    args = get_args_parser().parse_args(argv)
    try:
        run(args)
    except AnovoxError as err:
        print(f'[demo] error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
