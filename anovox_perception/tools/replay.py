"""Replay a rosbag2 with rclpy at recorded timing: ``anovox-replay``, a stand-in for ``ros2 bag play``.

Messages go out as the bag's serialized CDR bytes (rclpy publishers accept
``bytes``), paced by their log times scaled by ``--rate``. Like ``ros2 bag
play``: ``--loop`` restarts at the end (stamps repeat, ``/clock`` jumps back),
``--clock [HZ]`` publishes ``/clock`` (rosgraph_msgs/Clock, best effort, depth
1) at the playback time, ``--delay S`` waits S seconds before the first message
(once publishers exist and any ``--wait-for-subscribers`` is over; not again at
each loop), ``--topics`` selects, ``--remap old:=new`` renames and QoS follows
the offered profiles recorded in the bag (reliable, volatile, depth 10 when none
are recorded); ``--qos sensor`` uses the sensor-data profile instead. Topics
whose message type is not importable are skipped with a warning.

    anovox-replay BAG [--rate 1.0] [--loop] [--clock [40]] [--topics T ...]
                      [--start-offset S] [--remap OLD:=NEW ...] [--qos bag|reliable|sensor]
                      [--wait-for-subscribers S [--wait-topics T ...]] [--delay S] [--ros-args ...]
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anovox_perception.core.errors import AnovoxError, ConfigError
from anovox_perception.core.stamps import NS_PER_S, sec_nanosec, seconds_to_ns
from anovox_perception.tools.bag_reader import BagReader

__all__ = [
    'PlaybackStats',
    'PlaybackTopic',
    'ReplayOptions',
    'BagPlayer',
    'Pacer',
    'import_message_type',
    'parse_remap',
    'plan_topics',
    'main',
]

_QOS_MODES = ('bag', 'reliable', 'sensor')


@dataclass(frozen=True)
class ReplayOptions:
    """How to play a bag.

    Attributes:
        rate: playback speed factor (> 0; 2.0 plays twice as fast).
        loop: restart at the end until stopped.
        clock_hz: publish ``/clock`` at this rate (``None``: no clock).
        topics: topics to play (``None``: all).
        start_offset_s: skip this many seconds from the start of the bag.
        remaps: output name per bag topic name.
        qos: ``'bag'`` (recorded offered QoS), ``'reliable'`` or ``'sensor'`` (sensor-data profile).
        wait_for_subscribers_s: before playing, wait up to this long until every topic of
            ``wait_topics`` has a subscriber (0: do not wait).
        wait_topics: bag topics to wait for (``None``: every played topic).
        delay_s: wall-clock seconds between the start of playback (publishers created, subscribers
            waited for) and the first message; the bag's relative timing is unchanged.
    """

    rate: float = 1.0
    loop: bool = False
    clock_hz: float | None = None
    topics: tuple[str, ...] | None = None
    start_offset_s: float = 0.0
    remaps: Mapping[str, str] = field(default_factory=dict)
    qos: str = 'bag'
    wait_for_subscribers_s: float = 0.0
    wait_topics: tuple[str, ...] | None = None
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            msg = f'replay: --rate must be > 0, got {self.rate}'
            raise ConfigError(msg)
        if self.clock_hz is not None and not self.clock_hz > 0:
            msg = f'replay: --clock frequency must be > 0 Hz, got {self.clock_hz}'
            raise ConfigError(msg)
        if self.start_offset_s < 0 or self.wait_for_subscribers_s < 0 or self.delay_s < 0:
            msg = 'replay: --start-offset, --wait-for-subscribers and --delay must be >= 0'
            raise ConfigError(msg)
        if self.qos not in _QOS_MODES:
            msg = f'replay: --qos must be one of {_QOS_MODES}, got {self.qos!r}'
            raise ConfigError(msg)


@dataclass(frozen=True)
class PlaybackTopic:
    """One played topic: where it comes from, where it goes and with which QoS."""

    bag_topic: str
    out_topic: str
    msgtype: str
    reliable: bool
    transient_local: bool
    depth: int


@dataclass
class PlaybackStats:
    """What a playback published."""

    published: dict[str, int] = field(default_factory=dict)
    loops: int = 0
    skipped_topics: list[str] = field(default_factory=list)
    stopped: bool = False


def parse_remap(text: str) -> tuple[str, str]:
    """``'old:=new'`` -> ``('old', 'new')``.

    Raises:
        ConfigError: the text is not of that form.
    """
    old, sep, new = text.partition(':=')
    if not sep or not old.strip() or not new.strip():
        msg = f'replay: remap {text!r} must look like /old/topic:=/new/topic'
        raise ConfigError(msg)
    return old.strip(), new.strip()


def _adapted_qos(profiles: Sequence[Any]) -> tuple[bool, bool, int]:
    """(reliable, transient_local, depth) a player offers given the recorded offered profiles.

    As rosbag2: best effort if any recorded publisher was, transient local only if all were.
    """
    if not profiles:
        return True, False, 10
    reliable = all(p.reliability.name != 'BEST_EFFORT' for p in profiles)
    transient_local = all(p.durability.name == 'TRANSIENT_LOCAL' for p in profiles)
    depth = max(max(int(p.depth) for p in profiles), 1)
    return reliable, transient_local, depth


def plan_topics(bag: BagReader, options: ReplayOptions) -> list[PlaybackTopic]:
    """The topics a playback of ``bag`` (opened at least once) publishes, with output names and QoS.

    Raises:
        ConfigError: a selected or remapped topic is not in the bag.
    """
    info = bag.topics
    available = sorted(info)
    selected = list(options.topics) if options.topics is not None else available
    unknown = sorted(set(selected) - set(available)) + sorted(set(options.remaps) - set(available))
    if unknown:
        msg = f'replay: topics {unknown} are not in bag {bag.path}; it holds {available}'
        raise ConfigError(msg)
    plan = []
    for topic in selected:
        reliable, transient_local, depth = _adapted_qos(info[topic].offered_qos)
        if options.qos == 'reliable':
            reliable, depth = True, max(depth, 10)
        elif options.qos == 'sensor' and not transient_local:
            reliable, depth = False, 5  # rclpy's qos_profile_sensor_data
        out = options.remaps.get(topic, topic)
        plan.append(PlaybackTopic(topic, out, info[topic].msgtype, reliable, transient_local, depth))
    return plan


def import_message_type(msgtype: str) -> Any | None:
    """The rclpy message class of ``'pkg/msg/Name'``, or ``None`` if it is not installed."""
    package, _, name = msgtype.rpartition('/')
    module_name = package.replace('/', '.')
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, name, None)


class Pacer:
    """Maps bag log times to wall-clock times at a rate, sleeping interruptibly.

    Args:
        bag_start_ns: the bag time that plays ``delay_s`` after construction.
        rate: playback speed factor.
        stop: set to interrupt waits; its ``wait`` is the only way this sleeps.
        clock: monotonic seconds (injectable for tests).
        delay_s: wall-clock seconds before ``bag_start_ns`` plays; bag time stands still until then.
    """

    def __init__(
        self,
        bag_start_ns: int,
        rate: float,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        delay_s: float = 0.0,
    ) -> None:
        self._bag_start_ns = bag_start_ns
        self._rate = rate
        self._stop = stop
        self._clock = clock
        self._wall_start = clock() + delay_s

    def now_bag_ns(self) -> int:
        """The bag time that corresponds to the current wall time (the start time during the delay)."""
        elapsed_s = max(self._clock() - self._wall_start, 0.0)
        return self._bag_start_ns + seconds_to_ns(elapsed_s * self._rate)

    def wait_until(self, log_time_ns: int, tick_s: float | None, on_tick: Callable[[int], None] | None) -> bool:
        """Sleep until ``log_time_ns`` is due, calling ``on_tick(bag_ns)`` every ``tick_s``; False if stopped."""
        due = self._wall_start + (log_time_ns - self._bag_start_ns) / (self._rate * NS_PER_S)
        while not self._stop.is_set():
            remaining = due - self._clock()
            if remaining <= 0:
                return True
            if on_tick is not None and tick_s is not None:
                on_tick(self.now_bag_ns())
                remaining = min(remaining, tick_s)
            self._stop.wait(remaining)
        return False


class BagPlayer:
    """Publishes a bag through an rclpy node (the node is the caller's; nothing here spins it).

    Args:
        node: the rclpy node that owns the publishers.
        bag_path: rosbag2 directory.
        options: how to play it.
        clock: monotonic seconds that pace the playback (injectable for tests).
    """

    def __init__(
        self, node: Any, bag_path: str | Path, options: ReplayOptions, clock: Callable[[], float] = time.monotonic
    ) -> None:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        self._node = node
        self._options = options
        self._clock = clock
        with BagReader(bag_path) as bag:
            plan = plan_topics(bag, options)
        self._bag = bag  # closed now; play() opens it again for the messages
        self.stats = PlaybackStats()
        self._publishers: dict[str, Any] = {}
        for topic in plan:
            msg_class = import_message_type(topic.msgtype)
            if msg_class is None:
                node.get_logger().warning(f'skipping {topic.bag_topic}: message type {topic.msgtype} is not installed')
                self.stats.skipped_topics.append(topic.bag_topic)
                continue
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST,
                depth=topic.depth,
                reliability=ReliabilityPolicy.RELIABLE if topic.reliable else ReliabilityPolicy.BEST_EFFORT,
                durability=DurabilityPolicy.TRANSIENT_LOCAL if topic.transient_local else DurabilityPolicy.VOLATILE,
            )
            self._publishers[topic.bag_topic] = node.create_publisher(msg_class, topic.out_topic, qos)
            self.stats.published[topic.bag_topic] = 0
        self._clock_pub = None
        if options.clock_hz is not None:
            from rosgraph_msgs.msg import Clock

            clock_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # as rclcpp::ClockQoS
            self._clock_pub = node.create_publisher(Clock, '/clock', clock_qos)

    @property
    def topics(self) -> list[str]:
        """Bag topics that are played (after skipping unknown types)."""
        return list(self._publishers)

    def wait_for_subscribers(self, timeout_s: float, stop: threading.Event) -> bool:
        """Wait until every topic of ``options.wait_topics`` has at least one matched subscription.

        Raises:
            ConfigError: a topic to wait for is not played.
        """
        wanted = self._options.wait_topics if self._options.wait_topics is not None else tuple(self._publishers)
        missing = sorted(set(wanted) - set(self._publishers))
        if missing:
            msg = f'replay: cannot wait for subscribers of {missing}: not played; played topics: {self.topics}'
            raise ConfigError(msg)
        publishers = [self._publishers[topic] for topic in wanted]
        deadline = self._clock() + timeout_s
        while not stop.is_set():
            if all(pub.get_subscription_count() > 0 for pub in publishers):
                return True
            if self._clock() >= deadline:
                return False
            stop.wait(0.05)
        return False

    def _publish_clock(self, bag_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = sec_nanosec(bag_ns)
        self._clock_pub.publish(msg)

    def _play_once(self, stop: threading.Event, delay_s: float) -> bool:
        start_ns = self._bag.start_ns + seconds_to_ns(self._options.start_offset_s)
        pacer = Pacer(start_ns, self._options.rate, stop, self._clock, delay_s)
        tick_s = 1.0 / self._options.clock_hz if self._clock_pub is not None else None
        on_tick = self._publish_clock if self._clock_pub is not None else None
        for topic, log_time_ns, rawdata in self._bag.raw_messages(topics=list(self._publishers), start=start_ns):
            if not pacer.wait_until(log_time_ns, tick_s, on_tick):
                return False
            if on_tick is not None:
                on_tick(log_time_ns)
            self._publishers[topic].publish(rawdata)
            self.stats.published[topic] += 1
        return not stop.is_set()

    def play(self, stop: threading.Event) -> PlaybackStats:
        """Play (once, or until ``stop`` with ``loop``) after ``options.delay_s``; returns what was published."""
        from rclpy.duration import Duration

        with self._bag:  # opened once for every loop
            while not stop.is_set():
                # The delay holds back the first pass only, as ros2 bag play's --delay.
                if not self._play_once(stop, self._options.delay_s if self.stats.loops == 0 else 0.0):
                    break
                self.stats.loops += 1
                if not self._options.loop:
                    break
        self.stats.stopped = stop.is_set()
        # Give reliable subscribers the tail before the publishers go away, within one
        # shared second (acknowledgements arrive with the DDS heartbeat, not at once).
        deadline = time.monotonic() + 1.0
        for pub in self._publishers.values():
            pub.wait_for_all_acked(Duration(seconds=max(deadline - time.monotonic(), 0.0)))
        return self.stats


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='anovox-replay', description='Replay a rosbag2 with rclpy (like ros2 bag play).'
    )
    parser.add_argument('bag', type=Path, help='rosbag2 directory')
    parser.add_argument('--rate', type=float, default=1.0, help='playback speed factor (default 1.0)')
    parser.add_argument('--loop', action='store_true', help='restart at the end until stopped')
    parser.add_argument(
        '--clock', type=float, nargs='?', const=40.0, default=None, metavar='HZ', help='publish /clock (default 40 Hz)'
    )
    parser.add_argument('--topics', nargs='+', default=None, help='topics to play (default: all)')
    parser.add_argument('--start-offset', type=float, default=0.0, metavar='S', help='skip S seconds from the start')
    parser.add_argument('--remap', nargs='+', default=[], metavar='OLD:=NEW', help='rename topics')
    parser.add_argument('--qos', choices=_QOS_MODES, default='bag', help='QoS of the publishers (default: as recorded)')
    parser.add_argument(
        '--wait-for-subscribers',
        type=float,
        default=0.0,
        metavar='S',
        help='wait up to S seconds for a subscriber on every topic of --wait-topics before starting',
    )
    parser.add_argument('--wait-topics', nargs='+', default=None, help='topics to wait for (default: all played)')
    parser.add_argument(
        '--delay',
        type=float,
        default=0.0,
        metavar='S',
        help='wait S seconds (after --wait-for-subscribers) before the first message',
    )
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``anovox-replay``; returns the exit status."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    argv = list(sys.argv[1:] if argv is None else argv)
    # Split by hand: rcl would take our `--remap old:=new` values for its own (deprecated) remap syntax.
    split = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    args = _parse_args(argv[:split])
    ros_args = argv[split:]
    try:
        options = ReplayOptions(
            rate=args.rate,
            loop=args.loop,
            clock_hz=args.clock,
            topics=tuple(args.topics) if args.topics else None,
            start_offset_s=args.start_offset,
            remaps=dict(parse_remap(r) for r in args.remap),
            qos=args.qos,
            wait_for_subscribers_s=args.wait_for_subscribers,
            wait_topics=tuple(args.wait_topics) if args.wait_topics else None,
            delay_s=args.delay,
        )
    except ConfigError as err:
        print(f'anovox-replay: {err}', file=sys.stderr)
        return 2

    stop = threading.Event()
    # Our own handlers: the playback loop does not spin, so it polls this event instead.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=['anovox-replay', *ros_args], signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('anovox_replay')
    try:
        player = BagPlayer(node, args.bag, options)
        if options.wait_for_subscribers_s > 0 and not player.wait_for_subscribers(options.wait_for_subscribers_s, stop):
            node.get_logger().warning('not every topic has a subscriber; playing anyway')
        stats = player.play(stop)
        node.get_logger().info(f'published {sum(stats.published.values())} messages {stats.published}')
        return 0
    except AnovoxError as err:
        node.get_logger().error(str(err))
        return 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == '__main__':
    sys.exit(main())
