"""Scan an AnoVox dataset and report every problem: ``python -m anovox_training.data.check DIR``.

Unlike the reader, which stops at the first bad file, the check reads every
sensor of every frame on its own and collects all problems: stray or duplicate
files, frames missing a sensor, unreadable, truncated or malformed files, image
sizes that disagree with the camera, and (unless ``--no-consistency``) semantic
LiDAR points that do not fall into the voxels of the frame's VOXEL_GRID, which
catches a wrong point-y convention or voxel index rule.

Exit status: 0 when no problem was found, 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from anovox_perception.core.errors import DataError
from anovox_perception.core.geometry import ANOVOX_GRID_SHAPE, anovox_voxel_index
from anovox_training.data.reader import FrameDataError, Problem, ScenarioReader, find_scenarios

__all__ = ['CheckReport', 'check_dataset', 'check_scenario', 'main', 'voxel_agreement']

# Share of in-grid semantic LiDAR points that must fall into occupied voxels: the
# voxel grid is built from these points, so anything well below 1 is a convention error.
MIN_VOXEL_AGREEMENT = 0.9
# AnoVox's MONO rig height: its voxelize_separate.py subtracts the mount location from points.
_MOUNT_HEIGHT_M = 1.8


@dataclass
class CheckReport:
    """What a check found."""

    root: str
    scenarios: int = 0
    frames: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {
            'root': self.root,
            'scenarios': self.scenarios,
            'frames': self.frames,
            'ok': self.ok,
            'problems': [asdict(p) for p in self.problems],
        }


def _problem(err: DataError, scenario: str) -> Problem:
    if isinstance(err, FrameDataError):
        return err.problem
    return Problem(scenario, None, None, str(err))


def voxel_agreement(semantic_points: np.ndarray, voxels: np.ndarray, offset_m: Sequence[float] = (0, 0, 0)) -> float:
    """Share of in-grid points (shifted by ``offset_m``) whose AnoVox voxel is in ``voxels`` (NaN if none in grid).

    Args:
        semantic_points: (N, >=3) LiDAR-frame points.
        voxels: (M, >=3) AnoVox voxel indices.
        offset_m: Added to the points before indexing (to test other conventions).
    """
    index = anovox_voxel_index(np.asarray(semantic_points)[:, :3] + np.asarray(offset_m, dtype=np.float64))
    nx, ny, nz = ANOVOX_GRID_SHAPE
    inside = np.all((index >= 0) & (index < np.array(ANOVOX_GRID_SHAPE)), axis=1)
    if not inside.any():
        return float('nan')
    flat_points = (index[inside, 0] * ny + index[inside, 1]) * nz + index[inside, 2]
    v = np.asarray(voxels, dtype=np.int64)
    flat_voxels = (v[:, 0] * ny + v[:, 1]) * nz + v[:, 2]
    return float(np.isin(flat_points, flat_voxels).mean())


def _consistency_problem(
    reader: ScenarioReader, frame_id: int, points: np.ndarray, voxels: np.ndarray
) -> Problem | None:
    agreement = voxel_agreement(points, voxels)
    if not agreement < MIN_VOXEL_AGREEMENT:  # NaN (no point in the grid) passes
        return None
    hints = []
    mirrored = voxel_agreement(points * np.array([1.0, -1.0, 1.0, 1.0]), voxels)
    if mirrored >= MIN_VOXEL_AGREEMENT:
        hints.append(f'with y negated {mirrored:.0%} do, so the point y convention looks flipped')
    shifted = voxel_agreement(points, voxels, (0.0, 0.0, -_MOUNT_HEIGHT_M))
    if shifted >= MIN_VOXEL_AGREEMENT:
        hints.append(f'shifted down by the {_MOUNT_HEIGHT_M} m mount height {shifted:.0%} do (as AnoVox voxelizes)')
    message = (
        f'only {agreement:.0%} of in-grid semantic LiDAR points fall into occupied voxels of the voxel grid '
        f'(expected >= {MIN_VOXEL_AGREEMENT:.0%}: the grid is built from them)'
    )
    if hints:
        message += '; ' + '; '.join(hints)
    return Problem(reader.name, frame_id, reader.file('voxels', frame_id).relative_to(reader.path).as_posix(), message)


def check_scenario(path: Path, max_frames: int | None = None, consistency: bool = True) -> tuple[list[Problem], int]:
    """Check one scenario folder.

    Args:
        path: The scenario folder.
        max_frames: Check only the first this many frames (None: all).
        consistency: Also check semantic LiDAR points against the voxel grid.

    Returns:
        ``(problems, frames_checked)``.
    """
    try:
        reader = ScenarioReader(path)
    except DataError as err:
        return [_problem(err, path.name)], 0
    problems = list(reader.issues)
    frame_ids = reader.frame_ids
    if not frame_ids:
        problems.append(Problem(reader.name, None, None, f'no frames in the sensor folders {list(reader.sensors)}'))
        return problems, 0
    try:
        _ = reader.camera, reader.T_cam_lidar
    except DataError as err:
        problems.append(_problem(err, reader.name))
    checked = frame_ids if max_frames is None else frame_ids[:max_frames]
    for frame_id in checked:
        missing = reader.missing_sensors(frame_id)
        for kind in missing:
            try:
                reader.file(kind, frame_id)
            except DataError as err:
                problems.append(_problem(err, reader.name))
        arrays: dict[str, np.ndarray] = {}
        for kind in reader.sensors:
            # Each sensor on its own, so one bad file does not hide the next; the anomaly csv
            # reads the action csv too, and the duplicate report is dropped below.
            if kind not in missing:
                arrays.update(_read_one(reader, frame_id, kind, problems))
        if consistency and arrays.get('semantic_points') is not None and arrays.get('voxels') is not None:
            found = _consistency_problem(reader, frame_id, arrays['semantic_points'], arrays['voxels'])
            if found is not None:
                problems.append(found)
    return _unique(problems), len(checked)


def _read_one(reader: ScenarioReader, frame_id: int, kind: str, problems: list[Problem]) -> dict[str, np.ndarray]:
    try:
        frame = reader.read(frame_id, [kind])
    except DataError as err:
        problems.append(_problem(err, reader.name))
        return {}
    if kind in ('semantic_points', 'voxels'):
        return {kind: getattr(frame, kind)}
    return {}


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def check_dataset(root: str | Path, max_frames: int | None = None, consistency: bool = True) -> CheckReport:
    """Check every scenario under ``root`` (or ``root`` itself when it is a scenario).

    Returns:
        A `CheckReport`; a root without scenarios is one problem.
    """
    report = CheckReport(root=str(root))
    try:
        scenarios = find_scenarios(root)
    except DataError as err:
        report.problems.append(Problem(Path(root).name, None, None, str(err)))
        return report
    for path in scenarios:
        problems, frames = check_scenario(path, max_frames=max_frames, consistency=consistency)
        report.scenarios += 1
        report.frames += frames
        report.problems.extend(problems)
    return report


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m anovox_training.data.check',
        description='Scan an AnoVox dataset (Layout A or B) and report every problem; exit 1 if any.',
    )
    parser.add_argument('root', type=Path, help='dataset root or one Scenario_* folder')
    parser.add_argument('--json', action='store_true', help='print the report as JSON')
    parser.add_argument('--max-frames', type=int, default=None, help='check only the first N frames per scenario')
    parser.add_argument(
        '--no-consistency', action='store_true', help='skip the semantic LiDAR vs voxel grid agreement check'
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        print('--max-frames must be >= 1', file=sys.stderr)
        return 2
    report = check_dataset(args.root, max_frames=args.max_frames, consistency=not args.no_consistency)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems:
            print(problem)
        verdict = 'OK' if report.ok else f'{len(report.problems)} problem(s)'
        print(f'checked {report.scenarios} scenario(s), {report.frames} frame(s): {verdict}')
    return 0 if report.ok else 1


if __name__ == '__main__':
    sys.exit(main())
