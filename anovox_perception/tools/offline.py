"""Run a bag through the detector without a middleware: the node's pipeline, message by message.

The bag's camera and LiDAR messages go through the node's own
:class:`~anovox_perception.core.intake.InputIntake` (the same decoding, checks, counters
and warnings; ``msg_decode`` reads rosbags objects as well as rclpy ones), the
same synchroniser built from the same ``sync.*`` parameters, and the same
:class:`~anovox_perception.core.detector.Detector`. Messages are fed in the bag's
log-time order with the log time as the receive clock, and the LiDAR-driven
synchroniser is polled on that clock, as the node's timer would poll it on a
replay. Unlike the node, which keeps only the newest pair when inference lags,
every synced pair is processed: evaluation sees every frame the synchroniser emits.

Each result comes with the ground-truth voxels the bag holds for the cloud's
stamp (``None`` when it holds none), ready for evaluation.

    python -m anovox_perception.tools.offline BAG [--params-file config/detector.yaml] [--model M.onnx] [--backend B]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from anovox_perception.core import msg_decode
from anovox_perception.core import pipeline_stats as ps
from anovox_perception.core.detector import Detector, DetectorConfig, FrameResult
from anovox_perception.core.errors import AnovoxError, ConfigError, DataError, DecodeError
from anovox_perception.core.intake import InputIntake, Warn
from anovox_perception.core.parameters import defaults, load_params_file
from anovox_perception.core.stamps import stamp_to_ns
from anovox_perception.core.sync import LidarDrivenSync, SyncedPair, make_sync
from anovox_perception.tools.bag_reader import BagReader
from anovox_perception.tools.bags import BagTopics

__all__ = ['OfflineFrame', 'OfflineStats', 'main', 'run_offline']

_LOG = logging.getLogger(__name__)
_COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'


class OfflineFrame(NamedTuple):
    """One processed cloud: its stamp, the detector's result and the bag's ground truth for it.

    ``ground_truth`` is (M, 4) uint16 AnoVox voxels ``[ix, iy, iz, label]`` or ``None``.
    """

    stamp_ns: int
    result: FrameResult
    ground_truth: np.ndarray | None


@dataclass
class OfflineStats:
    """Counters of a run (filled while iterating), counted by the node's input intake.

    Attributes:
        clouds: Point clouds read.
        images: Images (raw or compressed) read.
        frames: Frames yielded.
        lidar_only: Frames that ran without an image.
        bad_input: Refused inputs by kind (``points``, ``image``, ``compressed_image``, ``camera_info``,
            ``ground_truth``, ``frame``), as the node's ``bad_input.*`` counters.
        input_notes: Usable but suspicious inputs (``no_intensity``, ``stamp_repeated.points``...), as the
            node's ``input_note.*`` counters.
        sync: The synchroniser's counters.
    """

    clouds: int = 0
    images: int = 0
    frames: int = 0
    lidar_only: int = 0
    bad_input: dict[str, int] = field(default_factory=dict)
    input_notes: dict[str, int] = field(default_factory=dict)
    sync: dict[str, int] = field(default_factory=dict)

    def update(self, counters: ps.PipelineStats) -> None:
        """Take the input counts from the intake's counters."""
        totals = counters.snapshot().totals
        self.clouds, self.images = totals.get(ps.CLOUDS_IN, 0), totals.get(ps.IMAGES_IN, 0)
        self.bad_input = _with_prefix(totals, ps.BAD_INPUT_PREFIX)
        self.input_notes = _with_prefix(totals, ps.INPUT_NOTE_PREFIX)


def _with_prefix(totals: Mapping[str, int], prefix: str) -> dict[str, int]:
    return {name[len(prefix) :]: n for name, n in totals.items() if name.startswith(prefix) and n}


def _warn_once_per_kind() -> Warn:
    """The intake's warning callback: the first warning of each kind is logged, later ones at debug level."""
    seen: set[str] = set()

    def warn(kind: str, text: str) -> None:
        _LOG.log(logging.DEBUG if kind in seen else logging.WARNING, '%s', text)
        seen.add(kind)

    return warn


class _Pipeline:
    """Feeds bag messages through the node's intake to the sync and the detector.

    The intake decodes, checks and counts exactly as in the node; the bag's log time is its receive
    clock. Results are held until their ground truth has been read.
    """

    def __init__(self, detector: Detector, sync: Any, stats: OfflineStats) -> None:
        self.detector = detector
        self.sync = sync
        self.stats = stats
        self.counters = ps.PipelineStats()
        self.log_time_ns = 0  # the receive clock: the log time of the message being fed
        self.intake = InputIntake(
            self.counters,
            _warn_once_per_kind(),
            lambda: self.log_time_ns,
            intensity_used=detector.uses_intensity,
        )
        self.ground_truth: dict[int, np.ndarray] = {}
        self.cloud_log_ns: dict[int, int] = {}
        # Results wait here until the reader has passed their cloud's log time: the ground
        # truth is logged with the cloud, so by then it has been read if the bag has it.
        self.ready: deque[FrameResult] = deque()

    def feed(self, topic: str, log_time_ns: int, msg: Any, topics: BagTopics) -> None:
        self.log_time_ns = log_time_ns
        pairs: list[SyncedPair] = []
        if topic == topics.points:
            stamped = self.intake.cloud(msg)
            if stamped is not None:
                self.cloud_log_ns[stamped.stamp_ns] = log_time_ns
                pairs += self.sync.add_points(stamped)
        elif topic == topics.image:
            compressed = msg.__msgtype__ == _COMPRESSED_TYPE
            stamped = self.intake.compressed_image(msg) if compressed else self.intake.image(msg)
            if stamped is not None:
                pairs += self.sync.add_image(stamped)
        elif topic == topics.camera_info:
            camera = self.intake.camera_info(msg)
            if camera is not None:
                self.detector.set_camera_info(camera)
        elif topic == topics.voxels:
            try:
                self.ground_truth[stamp_to_ns(msg.header.stamp)] = msg_decode.voxels_from_message(msg)
            except DecodeError as err:
                self.intake.bad_input('ground_truth', err)
        if isinstance(self.sync, LidarDrivenSync):
            pairs += self.sync.poll(log_time_ns)  # the node's timer, on the bag's clock
        self.process(pairs)
        self.stats.update(self.counters)

    def process(self, pairs: list[SyncedPair]) -> None:
        for pair in pairs:
            try:
                result = self.detector.process(pair)
            except DecodeError as err:
                self.intake.bad_input('frame', err)
                self.cloud_log_ns.pop(pair.points_stamp_ns, None)
                continue
            self.ready.append(result)
        self.stats.update(self.counters)

    def flush(self, log_time_ns: int | None) -> Iterator[OfflineFrame]:
        """Results whose cloud was logged before ``log_time_ns`` (all when ``None``)."""
        while self.ready:
            stamp = self.ready[0].stamp_ns
            if log_time_ns is not None and self.cloud_log_ns.get(stamp, -1) >= log_time_ns:
                return
            result = self.ready.popleft()
            self.cloud_log_ns.pop(stamp, None)
            truth = self.ground_truth.pop(stamp, None)
            # Clouds are emitted in stamp order: older entries (clouds the sync skipped) can go.
            for table in (self.ground_truth, self.cloud_log_ns):
                for old in [s for s in table if s < stamp]:
                    del table[old]
            self.stats.frames += 1
            self.stats.lidar_only += int(not result.camera_used)
            yield OfflineFrame(stamp, result, truth)


def run_offline(
    bag_path: str | Path,
    detector_config: DetectorConfig | None = None,
    *,
    detector: Detector | None = None,
    sync_parameters: Mapping[str, Any] | None = None,
    topics: BagTopics | None = None,
    stats: OfflineStats | None = None,
) -> Iterator[OfflineFrame]:
    """Process a bag's clouds (with their synced images) as the node would, without a middleware.

    Args:
        bag_path: rosbag2 directory (e.g. from ``anovox-make-bag``).
        detector_config: builds the detector (ignored when ``detector`` is given); it is closed at the end.
        detector: an existing detector to use (left open).
        sync_parameters: ``sync.*`` parameter values (dotted names); defaults otherwise.
        topics: topic names; default: those recorded in the bag's metadata.
        stats: filled with counters while iterating.

    Yields:
        :class:`OfflineFrame` per processed cloud, in stamp order.

    Raises:
        ConfigError: neither a detector nor a config, or bad sync parameters.
        DataError: the bag cannot be read or has no LiDAR topic.
    """
    if detector is None and detector_config is None:
        msg = 'run_offline: pass a detector_config or a detector'
        raise ConfigError(msg)
    with BagReader(bag_path) as bag:
        topics = topics or bag.description.topics
        if topics.points not in bag.topics:
            msg = f'bag {bag_path}: no LiDAR topic {topics.points!r}; it holds {sorted(bag.topics)}'
            raise DataError(msg)
        wanted = [t for t in (topics.image, topics.camera_info, topics.points, topics.voxels) if t in bag.topics]
        sync = make_sync(sync_parameters)
        stats = stats if stats is not None else OfflineStats()
        owned = detector is None
        det = detector if detector is not None else Detector(detector_config)
        pipeline = _Pipeline(det, sync, stats)
        try:
            for topic, log_time_ns, msg in bag.messages(topics=wanted):
                yield from pipeline.flush(log_time_ns)
                pipeline.feed(topic, log_time_ns, msg, topics)
            if isinstance(sync, LidarDrivenSync):
                # End of the bag: clouds still waiting for a later image time out, as they would live.
                pipeline.process(sync.poll(bag.end_ns + sync.timeout_ns + 1))
            yield from pipeline.flush(None)
            stats.sync = sync.counters()
        finally:
            if owned:
                det.close()


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m anovox_perception.tools.offline', description='Run a bag through the detector without ROS 2.'
    )
    parser.add_argument('bag', type=Path, help='rosbag2 directory')
    parser.add_argument('--params-file', type=Path, default=None, help='detector parameter YAML (as for the node)')
    parser.add_argument('--model', default=None, help='ONNX model (overrides model_path)')
    parser.add_argument('--backend', default=None, help='auto | tensorrt | onnxruntime | torch (overrides backend)')
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Print a JSON summary of an offline run; returns the exit status."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')
    try:
        values: dict[str, Any] = load_params_file(args.params_file) if args.params_file else defaults()
        if args.model is not None:
            values['model_path'] = args.model
        if args.backend is not None:
            values['backend'] = args.backend
        config = DetectorConfig.from_parameters(values)
        stats = OfflineStats()
        latencies, anomalous = [], 0
        for frame in run_offline(args.bag, config, sync_parameters=values, stats=stats):
            latencies.append(sum(frame.result.timings_ms.values()))
            anomalous += int(bool(frame.result.components))
    except AnovoxError as err:
        print(f'offline: {err}', file=sys.stderr)
        return 1
    summary = {
        'frames': stats.frames,
        'clouds': stats.clouds,
        'images': stats.images,
        'lidar_only': stats.lidar_only,
        'frames_with_anomalies': anomalous,
        'bad_input': stats.bad_input,
        'input_notes': stats.input_notes,
        'sync': stats.sync,
        'latency_ms': {
            'p50': float(np.percentile(latencies, 50)) if latencies else None,
            'p99': float(np.percentile(latencies, 99)) if latencies else None,
        },
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
