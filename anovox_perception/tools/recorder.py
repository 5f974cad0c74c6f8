"""Record topics into a rosbag2 as received (serialized CDR), for evaluating a run later.

    python -m anovox_perception.tools.recorder --out BAG --topics T [T ...]
        [--storage mcap|sqlite3] [--max-messages N] [--idle-timeout S] [--ros-args ...]

Like ``ros2 bag record``: each topic is subscribed once a publisher appears
(its type taken from the graph), with raw subscriptions so messages are
written byte for byte; QoS adapts to the publishers (best effort if any
publisher is, transient local only if all are); the log time is the receive
time on the node's clock (simulated time under ``use_sim_time``). Recording
stops on SIGINT/SIGTERM, after ``--max-messages`` messages in all, or when no
message arrived for ``--idle-timeout`` seconds (counted from the start until
the first message). Messages already received when a signal arrives are still
written, and the bag is always closed, so what was received is kept.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anovox_perception.core.errors import AnovoxError, ConfigError, DataError
from anovox_perception.tools.bag_messages import get_bag_typestore
from anovox_perception.tools.bags import STORAGES, bag_qos
from anovox_perception.tools.replay import import_message_type

__all__ = ['BagRecorder', 'RecorderOptions', 'RecordStats', 'drain', 'main']


@dataclass(frozen=True)
class RecorderOptions:
    """What to record and when to stop.

    Attributes:
        out: bag directory to create (must not exist).
        topics: absolute topic names to record.
        storage: ``'mcap'`` or ``'sqlite3'``.
        max_messages: stop after this many messages in all (``None``: no limit).
        idle_timeout_s: stop after this long without a message (``None``: never).
        discovery_period_s: how often the graph is checked for the topics' publishers.
    """

    out: Path
    topics: tuple[str, ...]
    storage: str = 'mcap'
    max_messages: int | None = None
    idle_timeout_s: float | None = None
    discovery_period_s: float = 0.1

    def __post_init__(self) -> None:
        if not self.topics:
            msg = 'recorder: give at least one topic to record'
            raise ConfigError(msg)
        relative = [t for t in self.topics if not t.startswith('/')]
        if relative:
            msg = f'recorder: topics must be absolute names (starting with /), got {relative}'
            raise ConfigError(msg)
        if self.storage not in STORAGES:
            msg = f'recorder: storage must be one of {STORAGES}, got {self.storage!r}'
            raise ConfigError(msg)
        if self.max_messages is not None and self.max_messages < 1:
            msg = f'recorder: --max-messages must be >= 1, got {self.max_messages}'
            raise ConfigError(msg)
        if self.idle_timeout_s is not None and not self.idle_timeout_s > 0:
            msg = f'recorder: --idle-timeout must be > 0 s, got {self.idle_timeout_s}'
            raise ConfigError(msg)
        if Path(self.out).exists():
            msg = f'recorder: {self.out} exists already; choose a new output path'
            raise ConfigError(msg)


@dataclass
class RecordStats:
    """What a recording holds and why it ended."""

    counts: dict[str, int] = field(default_factory=dict)
    msgtypes: dict[str, str] = field(default_factory=dict)
    reason: str = ''

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _to_bag_qos(qos: Any) -> Any:
    """rclpy QoSProfile -> rosbags Qos, for the bag's offered_qos_profiles."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    return bag_qos(
        depth=int(qos.depth),
        reliable=qos.reliability == ReliabilityPolicy.RELIABLE,
        transient_local=qos.durability == DurabilityPolicy.TRANSIENT_LOCAL,
    )


class BagRecorder:
    """Subscribes to topics as their publishers appear and writes what arrives.

    The caller spins ``node`` (single-threaded: callbacks write to the bag one at
    a time) until :attr:`done` is set, then calls :meth:`close`.
    """

    def __init__(self, node: Any, options: RecorderOptions) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self._node = node
        self._options = options
        plugin = StoragePlugin.MCAP if options.storage == 'mcap' else StoragePlugin.SQLITE3
        self._writer = Writer(Path(options.out), version=Writer.VERSION_LATEST, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self._subscriptions: dict[str, Any] = {}
        self.stats = RecordStats()
        self.done = threading.Event()
        self._closed = False
        self._last_activity = time.monotonic()
        self._timer = node.create_timer(options.discovery_period_s, self._poll)
        self._poll()

    def _subscribe(self, topic: str) -> None:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        infos = self._node.get_publishers_info_by_topic(topic)
        if not infos:
            return
        types = sorted({info.topic_type for info in infos})
        if len(types) > 1:
            self._node.get_logger().error(f'not recording {topic}: publishers disagree on its type {types}')
            self._subscriptions[topic] = None
            return
        msgtype = types[0]
        msg_class = import_message_type(msgtype)
        if msg_class is None or msgtype not in get_bag_typestore().types:
            self._node.get_logger().error(f'not recording {topic}: message type {msgtype} is unknown here')
            self._subscriptions[topic] = None
            return
        reliable = all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE for info in infos)
        latched = all(info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for info in infos)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=10,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )
        self._connections[topic] = self._writer.add_connection(
            topic,
            msgtype,
            typestore=get_bag_typestore(),
            offered_qos_profiles=[_to_bag_qos(info.qos_profile) for info in infos],
        )
        self.stats.counts[topic] = 0
        self.stats.msgtypes[topic] = msgtype
        self._subscriptions[topic] = self._node.create_subscription(
            msg_class, topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True
        )
        self._node.get_logger().info(f'recording {topic} ({msgtype})')

    def _on_message(self, topic: str, data: bytes) -> None:
        limit = self._options.max_messages
        if self._closed or (limit is not None and self.stats.total >= limit):
            return
        self._writer.write(self._connections[topic], self._node.get_clock().now().nanoseconds, data)
        self.stats.counts[topic] += 1
        self._last_activity = time.monotonic()
        if self._options.max_messages is not None and self.stats.total >= self._options.max_messages:
            self._finish(f'recorded {self.stats.total} messages')

    def _poll(self) -> None:
        for topic in self._options.topics:
            if topic not in self._subscriptions:
                self._subscribe(topic)
        idle_s = time.monotonic() - self._last_activity
        if self._options.idle_timeout_s is not None and idle_s >= self._options.idle_timeout_s:
            self._finish(f'no message for {self._options.idle_timeout_s} s')

    def _finish(self, reason: str) -> None:
        if not self.done.is_set():
            self.stats.reason = reason
            self.done.set()

    def stop(self, reason: str) -> None:
        """Ask the recording to end (safe from a signal handler)."""
        self._finish(reason)

    def close(self) -> RecordStats:
        """Stop receiving and write the bag's metadata; returns the final counts."""
        self._closed = True
        self._node.destroy_timer(self._timer)
        for subscription in self._subscriptions.values():
            if subscription is not None:
                self._node.destroy_subscription(subscription)
        try:
            self._writer.close()
        except Exception as err:  # rosbags raises several types; report them as one
            msg = f'recorder: could not close bag {self._options.out}: {err}'
            raise DataError(msg) from err
        return self.stats


def drain(executor: Any, recorder: BagRecorder, max_s: float = 1.0) -> None:
    """Write what has already arrived (after a signal) until a spin brings nothing new, at most ``max_s``."""
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        before = recorder.stats.total
        executor.spin_once(timeout_sec=0.05)
        if recorder.stats.total == before:
            return


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m anovox_perception.tools.recorder', description='Record topics into a rosbag2 as received.'
    )
    parser.add_argument('--out', type=Path, required=True, help='bag directory to create')
    parser.add_argument('--topics', nargs='+', required=True, help='absolute topic names to record')
    parser.add_argument('--storage', choices=STORAGES, default='mcap', help='storage plugin (default mcap)')
    parser.add_argument('--max-messages', type=int, default=None, metavar='N', help='stop after N messages in all')
    parser.add_argument(
        '--idle-timeout', type=float, default=None, metavar='S', help='stop after S seconds without a message'
    )
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 also when stopped by a signal)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    args = _parse_args(argv[:split])
    try:
        options = RecorderOptions(
            out=args.out,
            topics=tuple(args.topics),
            storage=args.storage,
            max_messages=args.max_messages,
            idle_timeout_s=args.idle_timeout,
        )
    except ConfigError as err:
        print(f'recorder: {err}', file=sys.stderr)
        return 2

    rclpy.init(args=['anovox_recorder', *argv[split:]], signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('anovox_recorder')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    previous: dict[int, Any] = {}
    status = 0
    try:
        recorder = BagRecorder(node, options)
        # Signals only set the stop flag; the bag is closed below, outside any callback.
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, _frame: recorder.stop(f'signal {signum}'))
        try:
            while not recorder.done.is_set():
                executor.spin_once(timeout_sec=0.1)
            drain(executor, recorder)
        finally:
            stats = recorder.close()  # keep what arrived, whatever ended the loop
        node.get_logger().info(f'{stats.reason}; wrote {stats.total} messages to {options.out}: {stats.counts}')
    except AnovoxError as err:
        node.get_logger().error(str(err))
        status = 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == '__main__':
    sys.exit(main())
