"""Read a rosbag2 (MCAP or sqlite3): its topics, time span, AnoVox description and messages.

    with BagReader(path) as bag:
        bag.topics[bag.description.topics.points].count
        for topic, timestamp_ns, msg in bag.messages(topics=[...], start=..., stop=...):
            ...

The bag is opened once per ``with`` block (or :meth:`BagReader.open`); its metadata is
read then and stays readable after :meth:`BagReader.close`, and a closed reader can be
opened again. Timestamps are the bag's log (receive) times in nanoseconds, and messages
come in that order. :meth:`BagReader.messages` decodes with the bag typestore (rosbags
objects with the attribute names of rclpy messages); :meth:`BagReader.raw_messages` yields
the serialized CDR bytes, for publishing them as they are. rosbags is imported on open.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from anovox_perception.core.errors import ConfigError, DataError
from anovox_perception.core.geometry import CameraModel
from anovox_perception.tools import bag_messages as bm
from anovox_perception.tools.bags import CUSTOM_DATA_PREFIX, BagTiming, BagTopics

__all__ = ['BagDescription', 'BagReader', 'TopicInfo']


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag.

    Attributes:
        name: the topic name.
        msgtype: its message type, e.g. ``'sensor_msgs/msg/PointCloud2'``.
        count: how many messages the bag holds on it.
        offered_qos: the QoS profiles its recorded publishers offered (rosbags ``Qos``; empty when none were
            recorded).
    """

    name: str
    msgtype: str
    count: int
    offered_qos: tuple[Any, ...] = ()


@dataclass(frozen=True)
class BagDescription:
    """The AnoVox description that :func:`~anovox_perception.tools.bags.write_bag` stores in a bag.

    A bag written elsewhere gets ``None`` scenario, timing, camera and transform, no frame ids
    and the default topics.
    """

    scenario: str | None = None
    topics: BagTopics = field(default_factory=BagTopics)
    timing: BagTiming | None = None
    frame_ids: list[int] = field(default_factory=list)
    camera: CameraModel | None = None
    T_cam_lidar: np.ndarray | None = None


def _description(path: Path, custom: Mapping[str, str]) -> BagDescription:
    def item(key: str) -> Any:
        raw = custom.get(CUSTOM_DATA_PREFIX + key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as err:
            msg = f'bag {path}: custom_data {CUSTOM_DATA_PREFIX + key} is not valid JSON ({err})'
            raise DataError(msg) from err

    try:
        topics = BagTopics(**item('topics')) if item('topics') else BagTopics()
        timing = BagTiming(**item('timing')) if item('timing') else None
        camera = CameraModel.from_dict(item('camera')) if item('camera') else None
    except (TypeError, ConfigError, ValueError) as err:
        msg = f'bag {path}: malformed AnoVox metadata in custom_data ({err}); write the bag again with anovox-make-bag'
        raise DataError(msg) from err
    transform = item('T_cam_lidar')
    return BagDescription(
        scenario=custom.get(CUSTOM_DATA_PREFIX + 'scenario'),
        topics=topics,
        timing=timing,
        frame_ids=list(item('frame_ids') or []),
        camera=camera,
        T_cam_lidar=np.asarray(transform, dtype=np.float64) if transform is not None else None,
    )


class BagReader:
    """A rosbag2 directory, opened once for its metadata and any number of message passes.

    Args:
        path: the rosbag2 directory (the one holding ``metadata.yaml``).

    Raises:
        DataError: on open, when the path is not a readable rosbag2 or its AnoVox metadata is malformed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader: Any = None
        self._topics: dict[str, TopicInfo] | None = None
        self._start_ns = 0
        self._end_ns = 0
        self._description = BagDescription()

    def open(self) -> BagReader:
        """Open the bag and read its metadata; returns the reader.

        Raises:
            DataError: the path is not a readable rosbag2, or its AnoVox metadata is malformed.
        """
        from rosbags.rosbag2 import Reader, ReaderError

        if self._reader is not None:
            msg = f'bag {self.path} is open already; close it before opening it again'
            raise DataError(msg)
        try:
            reader = Reader(self.path)
            reader.open()
        except (ReaderError, FileNotFoundError) as err:
            msg = f'cannot open bag {self.path}: {err}; expected a rosbag2 directory with metadata.yaml'
            raise DataError(msg) from err
        try:
            meta = getattr(reader.storage, 'metadata', None)
            custom = dict(getattr(meta, 'custom', None) or {})
            self._description = _description(self.path, custom)
        except BaseException:
            reader.close()
            raise
        self._topics = {
            name: TopicInfo(
                name,
                info.msgtype or '',
                info.msgcount,
                tuple(q for c in info.connections for q in getattr(c.ext, 'offered_qos_profiles', [])),
            )
            for name, info in reader.topics.items()
        }
        self._start_ns, self._end_ns = reader.start_time, reader.end_time
        self._reader = reader
        return self

    def close(self) -> None:
        """Close the bag (the metadata stays readable); closing a closed reader does nothing."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _opened_once(self, what: str) -> None:
        if self._topics is None:
            msg = f'bag {self.path}: open it before reading its {what} (with BagReader(path) as bag: ...)'
            raise DataError(msg)

    @property
    def topics(self) -> Mapping[str, TopicInfo]:
        """Every topic of the bag by name."""
        self._opened_once('topics')
        return dict(self._topics or {})

    @property
    def start_ns(self) -> int:
        """Log time of the first message."""
        self._opened_once('start time')
        return self._start_ns

    @property
    def end_ns(self) -> int:
        """One past the log time of the last message."""
        self._opened_once('end time')
        return self._end_ns

    @property
    def description(self) -> BagDescription:
        """The AnoVox description stored with the bag (defaults for bags written elsewhere)."""
        self._opened_once('AnoVox description')
        return self._description

    def _read(
        self, topics: Sequence[str] | None, start: int | None, stop: int | None
    ) -> Iterator[tuple[Any, int, bytes]]:
        """``(rosbags connection, timestamp_ns, bytes)`` of the selected topics in log-time order."""
        if self._reader is None:
            msg = f'bag {self.path} is not open; read its messages inside "with BagReader(path) as bag:"'
            raise DataError(msg)
        connections = self._reader.connections
        if topics is not None:
            wanted = set(topics)
            missing = sorted(wanted - {c.topic for c in connections})
            if missing:
                msg = f'bag {self.path}: topics {missing} not found; it holds {sorted(self.topics)}'
                raise DataError(msg)
            connections = [c for c in connections if c.topic in wanted]
        if not connections:  # rosbags reads every connection when given none
            return
        for connection, timestamp_ns, rawdata in self._reader.messages(connections=connections, start=start, stop=stop):
            yield connection, timestamp_ns, bytes(rawdata)

    def raw_messages(
        self, topics: Sequence[str] | None = None, start: int | None = None, stop: int | None = None
    ) -> Iterator[tuple[str, int, bytes]]:
        """``(topic, timestamp_ns, serialized CDR bytes)`` in log-time order.

        Args:
            topics: topics to read (all when ``None``; none when empty).
            start: first log time to include (ns; from the start when ``None``).
            stop: log time to stop before (ns; to the end when ``None``).

        Raises:
            DataError: the bag is not open, or a requested topic is not in it.
        """
        for connection, timestamp_ns, rawdata in self._read(topics, start, stop):
            yield connection.topic, timestamp_ns, rawdata

    def messages(
        self, topics: Sequence[str] | None = None, start: int | None = None, stop: int | None = None
    ) -> Iterator[tuple[str, int, Any]]:
        """``(topic, timestamp_ns, decoded message)`` in log-time order; arguments as :meth:`raw_messages`.

        Raises:
            DataError: the bag is not open, a requested topic is not in it, or a message cannot be decoded.
        """
        from rosbags.serde import SerdeError

        typestore = bm.get_bag_typestore()
        for connection, timestamp_ns, rawdata in self._read(topics, start, stop):
            where = f'bag {self.path}: the {connection.msgtype} message on {connection.topic}'
            if connection.msgtype not in typestore.fielddefs:
                msg = (
                    f'{where} has a type the ROS 2 typestore does not know; leave the topic out (topics=...) '
                    'or read its serialized bytes (raw_messages)'
                )
                raise DataError(msg)
            try:
                message = typestore.deserialize_cdr(rawdata, connection.msgtype)
            except SerdeError as err:
                msg = f'{where} at log time {timestamp_ns} ns cannot be decoded ({err}); record or write the bag again'
                raise DataError(msg) from err
            yield connection.topic, timestamp_ns, message
