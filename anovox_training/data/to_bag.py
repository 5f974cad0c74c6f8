"""Write an AnoVox scenario (real or synthetic) as a rosbag2: ``anovox-make-bag``.

    anovox-make-bag SCENARIO_DIR OUT [--storage mcap|sqlite3] [--frames ID ...]
        [--camera-offset-ms X] [--camera-jitter-ms J] [--lidar-jitter-ms J] [--seed S]
        [--receive-delay-ms D] [--period-s P]

The scenario is read frame by frame with the dataset reader and handed to the
runtime's ROS-free bag writer (``anovox_perception.tools.bags.write_bag``), so only
one frame is in memory at a time. Frame times come from the ACTION
timestamps when every frame has one, else from the frame's position times
``--period-s`` (AnoVox records at 10 Hz). A frame lacking a sensor file is
written without that sensor's messages, as a dropped sensor frame would be.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from anovox_perception.core.errors import AnovoxError, ConfigError, DataError
from anovox_perception.tools.bags import STORAGES, BagFrame, BagSummary, BagTiming, BagTopics, write_bag
from anovox_training.data.reader import ScenarioReader

__all__ = ['DEFAULT_PERIOD_S', 'main', 'scenario_frames', 'scenario_to_bag']

DEFAULT_PERIOD_S = 0.1
_SENSORS = ('rgb', 'points', 'voxels', 'action')


def scenario_frames(
    reader: ScenarioReader, frame_ids: Sequence[int] | None = None, period_s: float = DEFAULT_PERIOD_S
) -> Iterator[BagFrame]:
    """The scenario's frames as :class:`BagFrame`, read lazily in frame-id order.

    Args:
        reader: the scenario.
        frame_ids: frames to write (default: all), in ascending order.
        period_s: frame spacing used when the scenario has no timestamps.

    Raises:
        ConfigError: a requested frame is not in the scenario, or ``period_s`` is not positive.
        DataError: some frames have a timestamp and others not, or a file is malformed.
    """
    if not period_s > 0:
        msg = f'make-bag: --period-s must be > 0, got {period_s}'
        raise ConfigError(msg)
    available = reader.frame_ids
    ids = sorted(int(f) for f in (available if frame_ids is None else frame_ids))
    unknown = sorted(set(ids) - set(available))
    if unknown:
        msg = f'make-bag: scenario {reader.name} has no frames {unknown}; it has {available[0]}..{available[-1]}'
        raise ConfigError(msg)
    wanted = [s for s in _SENSORS if s in reader.sensors]
    first_timestamp: float | None = None
    for position, frame_id in enumerate(ids):
        missing = set(reader.missing_sensors(frame_id))
        frame = reader.read(frame_id, sensors=[s for s in wanted if s not in missing])
        if position == 0:
            first_timestamp = frame.timestamp_s
        if (frame.timestamp_s is None) != (first_timestamp is None):
            msg = (
                f'make-bag: scenario {reader.name}, frame {frame_id}: some frames have an ACTION timestamp and '
                'others not; fix the ACTION files or remove them to use --period-s spacing'
            )
            raise DataError(msg)
        if first_timestamp is not None and frame.timestamp_s is not None:
            time_s = frame.timestamp_s - first_timestamp
        else:
            time_s = position * period_s
        yield BagFrame(frame_id=frame_id, time_s=time_s, rgb=frame.rgb, points=frame.points, voxels=frame.voxels)


def scenario_to_bag(
    scenario_dir: str | Path,
    out: str | Path,
    *,
    storage: str = 'mcap',
    frame_ids: Sequence[int] | None = None,
    timing: BagTiming | None = None,
    topics: BagTopics | None = None,
    period_s: float = DEFAULT_PERIOD_S,
) -> BagSummary:
    """Write one scenario as a bag; see :func:`anovox_perception.tools.bags.write_bag` for the contents.

    Raises:
        ConfigError: bad options or an existing output.
        DataError: the scenario cannot be read.
    """
    reader = ScenarioReader(scenario_dir)
    return write_bag(
        out,
        scenario_frames(reader, frame_ids, period_s),
        scenario=reader.name,
        camera=reader.camera,
        T_cam_lidar=reader.T_cam_lidar,
        storage=storage,
        topics=topics,
        timing=timing,
    )


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='anovox-make-bag', description='Write an AnoVox scenario as a rosbag2.')
    parser.add_argument('scenario', type=Path, help='Scenario_<id> folder (Layout A or B)')
    parser.add_argument('out', type=Path, help='bag directory to create')
    parser.add_argument('--storage', choices=STORAGES, default='mcap', help='storage plugin (default mcap)')
    parser.add_argument('--frames', type=int, nargs='+', default=None, metavar='ID', help='frame ids (default: all)')
    parser.add_argument('--camera-offset-ms', type=float, default=0.0, help='camera stamp minus frame time (ms)')
    parser.add_argument('--camera-jitter-ms', type=float, default=0.0, help='uniform camera stamp jitter, +-ms')
    parser.add_argument('--lidar-jitter-ms', type=float, default=0.0, help='uniform LiDAR stamp jitter, +-ms')
    parser.add_argument('--receive-delay-ms', type=float, default=2.0, help='log time minus stamp (ms)')
    parser.add_argument('--seed', type=int, default=0, help='jitter seed')
    parser.add_argument('--period-s', type=float, default=DEFAULT_PERIOD_S, help='frame spacing without timestamps')
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``anovox-make-bag``; returns the exit status."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        timing = BagTiming(
            camera_offset_ms=args.camera_offset_ms,
            camera_jitter_ms=args.camera_jitter_ms,
            lidar_jitter_ms=args.lidar_jitter_ms,
            receive_delay_ms=args.receive_delay_ms,
            seed=args.seed,
        )
        summary = scenario_to_bag(
            args.scenario, args.out, storage=args.storage, frame_ids=args.frames, timing=timing, period_s=args.period_s
        )
    except AnovoxError as err:
        print(f'anovox-make-bag: {err}', file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    counts = ', '.join(f'{topic} {n}' for topic, n in summary.message_counts.items())
    print(f'wrote {summary.frames} frames to {summary.path} ({summary.storage}): {counts}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
