"""Command line: ``python -m anovox_training.data.synth --out DIR --split S --scenarios N --frames F --seed S``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from anovox_perception.core.errors import ConfigError
from anovox_training.data.synth.generate import GenerateConfig, generate
from anovox_training.data.synth.variation import RigVariation

__all__ = ['get_args_parser', 'main']


def get_args_parser() -> argparse.ArgumentParser:
    """The command line options."""
    parser = argparse.ArgumentParser(
        prog='python -m anovox_training.data.synth',
        description='Generate synthetic AnoVox scenarios (Layout B): camera, LiDAR, voxel ground truth.',
    )
    parser.add_argument('--out', type=Path, required=True, help='dataset folder; scenarios go to OUT/Scenario_<id>')
    parser.add_argument('--split', default='train', help='train | val | test (selects anomaly categories)')
    parser.add_argument('--scenarios', type=int, default=1, help='number of scenarios')
    parser.add_argument('--frames', type=int, default=200, help='frames per scenario (10 Hz)')
    parser.add_argument('--seed', type=int, default=0, help='dataset seed (same arguments -> identical files)')
    parser.add_argument('--width', type=int, default=768, help='camera image width, px')
    parser.add_argument('--height', type=int, default=512, help='camera image height, px')
    parser.add_argument('--fov', type=float, default=90.0, help='camera horizontal field of view, deg')
    parser.add_argument('--lidar-azimuth-steps', type=int, default=1024, help='LiDAR rays per beam per revolution')
    parser.add_argument(
        '--fixed-rig',
        action='store_true',
        help="no per-scenario variety: AnoVox's MONO rig (camera and 64-beam LiDAR at 1.8 m) on a flat road; "
        'by default each scenario draws its own rig (LiDAR height, pitch, beams, dropout, intensity; camera '
        'shape, FOV, mount, exposure) and road shape (grade, camber, crown, kerbs), see synth/variation.py',
    )
    parser.add_argument(
        '--categories', default=None, help='comma-separated anomaly categories (default: the split set)'
    )
    parser.add_argument('--normal-share', type=float, default=0.15, help='share of scenarios without anomalies')
    parser.add_argument('--workers', type=int, default=1, help='parallel worker processes')
    parser.add_argument('--start-index', type=int, default=0, help='index of the first scenario')
    parser.add_argument('--overwrite', action='store_true', help='replace scenario folders that already exist')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--profile', action='store_true', help='print the time spent per rendering stage')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the scenarios; returns the exit status (2 for invalid settings)."""
    args = get_args_parser().parse_args(argv)
    categories = None
    if args.categories:
        categories = tuple(c.strip() for c in args.categories.split(',') if c.strip())
    cfg = GenerateConfig(
        out=args.out,
        split=args.split,
        scenarios=args.scenarios,
        frames=args.frames,
        seed=args.seed,
        width=args.width,
        height=args.height,
        fov_deg=args.fov,
        lidar_azimuth_steps=args.lidar_azimuth_steps,
        variation=RigVariation.fixed() if args.fixed_rig else RigVariation(),
        categories=categories,
        normal_share=args.normal_share,
        workers=args.workers,
        start_index=args.start_index,
        overwrite=args.overwrite,
    )
    total = args.scenarios * args.frames
    start = time.perf_counter()
    try:
        if args.no_progress:
            folders, timings = generate(cfg)
        else:
            from tqdm import tqdm

            with tqdm(total=total, unit='frame', desc=f'synth {args.split}') as bar:
                folders, timings = generate(cfg, on_frames=bar.update)
    except ConfigError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    rate = total / elapsed
    print(f'wrote {len(folders)} scenario(s), {total} frames in {elapsed:.1f} s ({rate:.2f} frames/s) to {args.out}')
    if args.profile:
        for name, sec in timings.items():
            print(f'  {name:>14}: {1000 * sec / total:7.1f} ms/frame')
    return 0


if __name__ == '__main__':
    sys.exit(main())
