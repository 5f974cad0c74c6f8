"""Write AnoVox frames as a rosbag2 (MCAP or sqlite3); ``bag_reader.BagReader`` reads them back.

The writer takes plain numpy frames (:class:`BagFrame`), so it needs neither
rclpy nor the dataset reader; ``anovox_training.data.to_bag`` feeds it from an
AnoVox scenario. A bag holds, per frame: the camera image and its CameraInfo,
the LiDAR cloud and the ground-truth voxels (stamped like the cloud), plus one
``/tf_static`` message placing the camera in the LiDAR frame.

Timing: the message stamp of a sensor is ``start + frame time + offset +
jitter`` (jitter uniform in +-J, seeded); the bag's receive time (log time)
is the stamp plus a fixed delay. Per-sensor jitter must stay below half the
smallest frame gap, so each sensor's stamps stay strictly increasing.
The scenario name, timing and topics are stored in the bag's ``custom_data``
(keys prefixed with :data:`CUSTOM_DATA_PREFIX`).
"""

from __future__ import annotations

import heapq
import json
import math
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from anovox_perception.core.errors import ConfigError, DataError
from anovox_perception.core.geometry import CameraModel
from anovox_perception.core.stamps import NS_PER_MS, seconds_to_ns
from anovox_perception.tools import bag_messages as bm

__all__ = [
    'CUSTOM_DATA_PREFIX',
    'STORAGES',
    'BagFrame',
    'BagSummary',
    'BagTiming',
    'BagTopics',
    'bag_qos',
    'write_bag',
]

STORAGES = ('mcap', 'sqlite3')
CUSTOM_DATA_PREFIX = 'anovox.'


@dataclass(frozen=True)
class BagTopics:
    """Topic names and TF frame ids of an AnoVox bag."""

    image: str = '/sensing/camera/image_raw'
    camera_info: str = '/sensing/camera/camera_info'
    points: str = '/sensing/lidar/points'
    voxels: str = '/ground_truth/voxels'
    tf_static: str = '/tf_static'
    lidar_frame: str = 'lidar'
    camera_frame: str = 'camera'

    def __post_init__(self) -> None:
        names = [self.image, self.camera_info, self.points, self.voxels, self.tf_static]
        for name in names:
            if not name.startswith('/') or ' ' in name:
                msg = f'BagTopics: topic {name!r} must be an absolute ROS name (starting with /, no spaces)'
                raise ConfigError(msg)
        if len(set(names)) != len(names):
            msg = f'BagTopics: topics must be distinct, got {names}'
            raise ConfigError(msg)
        if not self.lidar_frame or not self.camera_frame or self.lidar_frame == self.camera_frame:
            msg = (
                f'BagTopics: frame ids must be non-empty and distinct, got {self.lidar_frame!r}, {self.camera_frame!r}'
            )
            raise ConfigError(msg)


@dataclass(frozen=True)
class BagTiming:
    """Stamps and receive times of the written messages (milliseconds unless named otherwise)."""

    camera_offset_ms: float = 0.0
    camera_jitter_ms: float = 0.0
    lidar_jitter_ms: float = 0.0
    receive_delay_ms: float = 2.0
    start_time_s: float = 1_700_000_000.0
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != 'seed' and not math.isfinite(value):
                msg = f'BagTiming: {f.name} must be finite, got {value}'
                raise ConfigError(msg)
        for name in ('camera_jitter_ms', 'lidar_jitter_ms', 'receive_delay_ms', 'start_time_s'):
            if getattr(self, name) < 0:
                msg = f'BagTiming: {name} must be >= 0, got {getattr(self, name)}'
                raise ConfigError(msg)

    @property
    def max_shift_ns(self) -> int:
        """Largest distance between a frame's time and any of its messages' log times."""
        camera = abs(self.camera_offset_ms) + self.camera_jitter_ms
        return math.ceil((max(camera, self.lidar_jitter_ms) + self.receive_delay_ms) * NS_PER_MS) + 1


@dataclass
class BagFrame:
    """One frame to write; a ``None`` sensor is left out of the bag for that frame.

    Attributes:
        frame_id: the scenario's frame id (kept in the bag's metadata).
        time_s: frame time since the scenario start; strictly increasing.
        rgb: (H, W, 3) uint8 image.
        points: (N, 4) float32 x, y, z, intensity in the LiDAR frame.
        voxels: (M, 4) uint16 AnoVox ground truth ``[ix, iy, iz, label]``.
    """

    frame_id: int
    time_s: float
    rgb: np.ndarray | None = None
    points: np.ndarray | None = None
    voxels: np.ndarray | None = None


@dataclass(frozen=True)
class BagSummary:
    """What :func:`write_bag` wrote."""

    path: Path
    storage: str
    frames: int
    message_counts: dict[str, int]
    lidar_stamps_ns: list[int]
    camera_stamps_ns: list[int]


def bag_qos(depth: int, reliable: bool, transient_local: bool) -> Any:
    """One rosbags ``Qos`` entry for a connection's offered_qos_profiles (KEEP_LAST, rosbag2's unset times)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    unset = QosTime(sec=0, nsec=0)  # rosbag2's "default" (no deadline, lifespan or lease)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=unset,
        lifespan=unset,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=unset,
        avoid_ros_namespace_conventions=False,
    )


def _qos_profiles(latched: bool) -> list[Any]:
    """Offered QoS recorded for a topic: what a typical driver (or tf_static broadcaster) offers."""
    return [bag_qos(depth=1 if latched else 10, reliable=True, transient_local=latched)]


class _OrderedBagWriter:
    """Wraps a rosbags Writer: connections by topic and writes in log-time order.

    Messages wait in a heap until no later frame can produce an earlier one, so
    the bag is written in order while holding only a few frames in memory.
    """

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        self._connections: dict[str, Any] = {}
        self._heap: list[tuple[int, int, str, bytes]] = []
        self._sequence = 0  # tie-breaker keeps equal log times in insertion order
        self.counts: dict[str, int] = {}

    def connect(self, topic: str, msgtype: str, latched: bool = False) -> None:
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=bm.get_bag_typestore(), offered_qos_profiles=_qos_profiles(latched)
        )
        self.counts[topic] = 0

    def push(self, topic: str, log_time_ns: int, message: Any) -> None:
        data = bytes(bm.get_bag_typestore().serialize_cdr(message, message.__msgtype__))
        heapq.heappush(self._heap, (log_time_ns, self._sequence, topic, data))
        self._sequence += 1

    def flush(self, before_ns: int | None = None) -> None:
        while self._heap and (before_ns is None or self._heap[0][0] < before_ns):
            log_time_ns, _, topic, data = heapq.heappop(self._heap)
            self._writer.write(self._connections[topic], log_time_ns, data)
            self.counts[topic] += 1


def _check_frame(frame: BagFrame, camera: CameraModel | None, scenario: str) -> None:
    where = f'scenario {scenario!r}, frame {frame.frame_id}'
    if frame.rgb is not None:
        if frame.rgb.ndim != 3 or frame.rgb.shape[2] != 3 or frame.rgb.dtype != np.uint8:
            msg = f'write_bag: {where}: rgb must be (H, W, 3) uint8, got {frame.rgb.shape} {frame.rgb.dtype}'
            raise DataError(msg)
        if camera is not None and frame.rgb.shape[:2] != (camera.height, camera.width):
            msg = (
                f'write_bag: {where}: image is {frame.rgb.shape[1]}x{frame.rgb.shape[0]} but the camera model is '
                f'{camera.width}x{camera.height}; pass the camera of these images'
            )
            raise DataError(msg)
    if frame.points is not None and (frame.points.ndim != 2 or frame.points.shape[1] != 4):
        msg = f'write_bag: {where}: points must be (N, 4) x, y, z, intensity, got {frame.points.shape}'
        raise DataError(msg)
    if frame.voxels is not None and (frame.voxels.ndim != 2 or frame.voxels.shape[1] != 4):
        msg = f'write_bag: {where}: voxels must be (M, 4) [ix, iy, iz, label], got {frame.voxels.shape}'
        raise DataError(msg)


def write_bag(
    out: str | Path,
    frames: Iterable[BagFrame],
    *,
    scenario: str,
    camera: CameraModel | None = None,
    T_cam_lidar: np.ndarray | None = None,
    storage: str = 'mcap',
    topics: BagTopics | None = None,
    timing: BagTiming | None = None,
) -> BagSummary:
    """Write frames as a rosbag2 directory.

    Args:
        out: bag directory to create (must not exist).
        frames: frames in time order; consumed lazily, so a long scenario is never
            held in memory.
        scenario: scenario name, stored in the metadata.
        camera: camera model; when given, each image gets a CameraInfo.
        T_cam_lidar: 4x4 camera-from-LiDAR transform; when given, ``/tf_static`` is written.
        storage: ``'mcap'`` or ``'sqlite3'``.
        topics: topic names and frame ids (defaults: :class:`BagTopics`).
        timing: offsets, jitter, delay and seed (defaults: :class:`BagTiming`).

    Returns:
        A :class:`BagSummary` with per-topic counts and the stamps written.

    Raises:
        ConfigError: unknown storage, an existing output, or jitter too large for the frame spacing.
        DataError: a frame has arrays of the wrong shape, or times that do not increase.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    if storage not in STORAGES:
        msg = f'write_bag: storage must be one of {STORAGES}, got {storage!r}'
        raise ConfigError(msg)
    out = Path(out)
    if out.exists():
        msg = f'write_bag: {out} exists already; choose a new output path or remove it'
        raise ConfigError(msg)
    topics = topics or BagTopics()
    timing = timing or BagTiming()
    rng = np.random.default_rng(timing.seed)
    start_ns = seconds_to_ns(timing.start_time_s)
    delay_ns = round(timing.receive_delay_ms * NS_PER_MS)
    max_jitter_ns = max(timing.camera_jitter_ms, timing.lidar_jitter_ms) * NS_PER_MS

    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    writer = Writer(out, version=Writer.VERSION_LATEST, storage_plugin=plugin)
    frame_ids: list[int] = []
    lidar_stamps: list[int] = []
    camera_stamps: list[int] = []
    try:
        writer.open()
        ordered = _OrderedBagWriter(writer)
        ordered.connect(topics.image, bm.IMAGE_TYPE)
        if camera is not None:
            ordered.connect(topics.camera_info, bm.CAMERA_INFO_TYPE)
        ordered.connect(topics.points, bm.POINTCLOUD2_TYPE)
        ordered.connect(topics.voxels, bm.POINTCLOUD2_TYPE)
        if T_cam_lidar is not None:
            ordered.connect(topics.tf_static, bm.TF_TYPE, latched=True)
            # Log time 0 ns past the start: before any sensor message, as a tf_static
            # broadcaster that started first would be recorded.
            tf_msg = bm.tf_static_message(T_cam_lidar, start_ns, topics.lidar_frame, topics.camera_frame)
            ordered.push(topics.tf_static, start_ns - timing.max_shift_ns, tf_msg)

        previous_ns: int | None = None
        for frame in frames:
            _check_frame(frame, camera, scenario)
            frame_ns = start_ns + seconds_to_ns(frame.time_s)
            if previous_ns is not None:
                gap_ns = frame_ns - previous_ns
                if gap_ns <= 0:
                    msg = f'write_bag: scenario {scenario!r}, frame {frame.frame_id}: frame times must increase'
                    raise DataError(msg)
                if 2 * max_jitter_ns >= gap_ns:
                    msg = (
                        f'write_bag: jitter {max_jitter_ns / NS_PER_MS} ms is too large for frames '
                        f'{gap_ns / NS_PER_MS} ms apart (scenario {scenario!r}, frame {frame.frame_id}); '
                        'keep it below half the frame period'
                    )
                    raise ConfigError(msg)
            previous_ns = frame_ns
            # Draw both jitters every frame, so a frame without a sensor does not
            # shift the random stream of the following frames.
            camera_jitter, lidar_jitter = rng.uniform(-1.0, 1.0, size=2)
            camera_ns = frame_ns + round(
                (timing.camera_offset_ms + camera_jitter * timing.camera_jitter_ms) * NS_PER_MS
            )
            lidar_ns = frame_ns + round(lidar_jitter * timing.lidar_jitter_ms * NS_PER_MS)
            frame_ids.append(int(frame.frame_id))
            if frame.rgb is not None:
                ordered.push(
                    topics.image, camera_ns + delay_ns, bm.image_message(frame.rgb, camera_ns, topics.camera_frame)
                )
                if camera is not None:
                    info = bm.camera_info_message(camera, camera_ns, topics.camera_frame)
                    ordered.push(topics.camera_info, camera_ns + delay_ns, info)
                camera_stamps.append(camera_ns)
            if frame.points is not None:
                cloud = bm.points_message(np.asarray(frame.points, dtype=np.float32), lidar_ns, topics.lidar_frame)
                ordered.push(topics.points, lidar_ns + delay_ns, cloud)
                lidar_stamps.append(lidar_ns)
            if frame.voxels is not None:
                ordered.push(
                    topics.voxels, lidar_ns + delay_ns, bm.voxels_message(frame.voxels, lidar_ns, topics.lidar_frame)
                )
            # No later frame can log anything before this frame's time minus the largest shift.
            ordered.flush(before_ns=frame_ns - timing.max_shift_ns)
        ordered.flush()

        custom = {
            'scenario': scenario,
            'timing': json.dumps(asdict(timing)),
            'topics': json.dumps(asdict(topics)),
            'frame_ids': json.dumps(frame_ids),
            'camera': json.dumps(camera.to_dict() if camera is not None else None),
            'T_cam_lidar': json.dumps(np.asarray(T_cam_lidar).tolist() if T_cam_lidar is not None else None),
        }
        for key, value in custom.items():
            writer.set_custom_data(CUSTOM_DATA_PREFIX + key, value)
        writer.close()
    except BaseException as err:
        # A half-written bag would pass for a short one: remove it (the path did not exist before).
        writer.abort()
        shutil.rmtree(out, ignore_errors=True)
        if isinstance(err, WriterError):
            msg = f'write_bag: could not write {out}: {err}'
            raise DataError(msg) from err
        raise
    return BagSummary(out, storage, len(frame_ids), dict(ordered.counts), lidar_stamps, camera_stamps)
