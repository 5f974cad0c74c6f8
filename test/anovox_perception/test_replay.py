"""anovox-replay: planning and pacing without a middleware, playback over real rclpy processes."""

from __future__ import annotations

import signal
import threading

import pytest
from bag_samples import bag_stamps, make_bag, unique_topics
from ros_processes import finish, read_probe, ros_env, start, start_probe, wait_for_file

from anovox_perception.core.errors import ConfigError
from anovox_perception.tools.bag_reader import BagReader
from anovox_perception.tools.replay import Pacer, ReplayOptions, import_message_type, parse_remap, plan_topics

IMAGE = 'sensor_msgs/msg/Image'
CLOUD = 'sensor_msgs/msg/PointCloud2'


# --- without a middleware -------------------------------------------------------------------


def test_remaps_parse_and_bad_ones_are_rejected():
    assert parse_remap('/a/b:=/c') == ('/a/b', '/c')
    with pytest.raises(ConfigError, match='must look like /old/topic:=/new/topic'):
        parse_remap('/a/b=/c')


def test_options_reject_non_positive_rate_and_unknown_qos():
    with pytest.raises(ConfigError, match='--rate must be > 0'):
        ReplayOptions(rate=0.0)
    with pytest.raises(ConfigError, match="--qos must be one of .* got 'fast'"):
        ReplayOptions(qos='fast')
    with pytest.raises(ConfigError, match='--delay must be >= 0'):
        ReplayOptions(delay_s=-1.0)


def test_plan_selects_remaps_and_adapts_qos_to_the_recording(tmp_path):
    topics = make_bag(tmp_path / 'bag', frames=2)
    with BagReader(tmp_path / 'bag') as bag:
        plan = {p.bag_topic: p for p in plan_topics(bag, ReplayOptions())}
    assert set(plan) == set(bag.topics)
    assert plan[topics.points].msgtype == 'sensor_msgs/msg/PointCloud2'
    assert plan[topics.points].reliable and not plan[topics.points].transient_local
    assert plan[topics.tf_static].transient_local and plan[topics.tf_static].depth == 1

    options = ReplayOptions(topics=(topics.points, topics.tf_static), remaps={topics.points: '/x'}, qos='sensor')
    plan = {p.bag_topic: p for p in plan_topics(bag, options)}
    assert set(plan) == {topics.points, topics.tf_static}
    assert plan[topics.points].out_topic == '/x' and not plan[topics.points].reliable
    assert plan[topics.tf_static].reliable  # latched topics keep their QoS under --qos sensor


def test_plan_rejects_topics_that_are_not_in_the_bag(tmp_path):
    make_bag(tmp_path / 'bag', frames=1)
    bag = BagReader(tmp_path / 'bag')
    with bag, pytest.raises(ConfigError, match=r"topics \['/missing'\] are not in bag"):
        plan_topics(bag, ReplayOptions(topics=('/missing',)))


def test_message_types_import_when_installed_and_none_otherwise():
    pytest.importorskip('sensor_msgs.msg')
    assert import_message_type(IMAGE).__name__ == 'Image'
    assert import_message_type('no_such_msgs/msg/Thing') is None


class FakeClock:
    """Monotonic time that only moves when the pacer waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def event(self) -> threading.Event:
        clock = self

        class Stop(threading.Event):
            def wait(self, timeout=None):
                clock.waits.append(timeout)
                clock.now += timeout
                return False

        return Stop()


def test_pacer_scales_bag_time_by_the_rate_and_ticks_the_clock():
    clock = FakeClock()
    pacer = Pacer(bag_start_ns=5_000_000_000, rate=2.0, stop=clock.event(), clock=clock)
    ticks: list[int] = []
    assert pacer.wait_until(6_000_000_000, tick_s=0.2, on_tick=ticks.append)
    assert clock.now == pytest.approx(100.5)  # 1 s of bag time at rate 2
    assert ticks == [5_000_000_000, 5_400_000_000, 5_800_000_000]
    assert pacer.wait_until(5_500_000_000, tick_s=None, on_tick=None)  # already due: no wait
    assert clock.now == pytest.approx(100.5)


def test_pacer_delay_shifts_the_schedule_and_holds_bag_time_at_the_start():
    clock = FakeClock()
    pacer = Pacer(bag_start_ns=5_000_000_000, rate=2.0, stop=clock.event(), clock=clock, delay_s=3.0)
    ticks: list[int] = []
    assert pacer.wait_until(5_000_000_000, tick_s=1.0, on_tick=ticks.append)
    assert clock.now == pytest.approx(103.0)  # the start plays after the delay
    assert ticks == [5_000_000_000] * 3  # /clock stays at the start during the delay
    assert pacer.wait_until(6_000_000_000, tick_s=None, on_tick=None)
    assert clock.now == pytest.approx(103.5)  # then bag time runs at the rate


def test_pacer_returns_false_once_stopped():
    stop = threading.Event()
    stop.set()
    assert not Pacer(0, 1.0, stop).wait_until(10**12, None, None)


# --- real rclpy processes -------------------------------------------------------------------


@pytest.mark.ros
def test_replay_delivers_every_message_with_the_bag_stamps_in_order(tmp_path):
    topics = make_bag(tmp_path / 'bag', topics=unique_topics())
    env = ros_env()
    probe, ready, out = start_probe(tmp_path, env, {'/renamed/image': IMAGE, topics.points: CLOUD}, expected=10)
    wait_for_file(ready, probe)
    replay = start(
        [
            '-m',
            'anovox_perception.tools.replay',
            str(tmp_path / 'bag'),
            '--rate',
            '2.0',
            '--remap',
            f'{topics.image}:=/renamed/image',
            '--wait-for-subscribers',
            '10',
            '--wait-topics',
            topics.image,
            topics.points,
            '--delay',
            '0.5',
        ],
        env,
        tmp_path / 'replay.log',
    )
    assert finish(replay) == 0, (tmp_path / 'replay.log').read_text()
    assert finish(probe) == 0
    received = read_probe(out)
    assert [s for t, s in received if t == '/renamed/image'] == bag_stamps(tmp_path / 'bag', topics.image)
    assert [s for t, s in received if t == topics.points] == bag_stamps(tmp_path / 'bag', topics.points)
    if import_message_type('tf2_msgs/msg/TFMessage') is None:
        assert (
            'skipping /tf_static: message type tf2_msgs/msg/TFMessage is not installed'
            in (tmp_path / 'replay.log').read_text()
        )


@pytest.mark.ros
def test_looping_replay_with_clock_repeats_the_bag_and_stops_cleanly_on_sigint(tmp_path):
    topics = make_bag(tmp_path / 'bag', frames=3, topics=unique_topics())
    with BagReader(tmp_path / 'bag') as bag:
        start_ns, end_ns = bag.start_ns, bag.end_ns
    env = ros_env()
    probe, ready, out = start_probe(
        tmp_path, env, {topics.points: CLOUD, '/clock': 'rosgraph_msgs/msg/Clock:best_effort'}, expected=7
    )
    wait_for_file(ready, probe)
    replay = start(
        [
            '-m',
            'anovox_perception.tools.replay',
            str(tmp_path / 'bag'),
            '--loop',
            '--clock',
            '50',
            '--rate',
            '3.0',
            '--topics',
            topics.points,
            '--wait-for-subscribers',
            '10',
        ],
        env,
        tmp_path / 'replay.log',
    )
    assert finish(probe) == 0
    replay.send_signal(signal.SIGINT)
    assert finish(replay, timeout_s=10.0) == 0, (tmp_path / 'replay.log').read_text()
    received = read_probe(out)
    clouds = [s for t, s in received if t == topics.points]
    one_pass = bag_stamps(tmp_path / 'bag', topics.points)
    assert len(clouds) >= 7 and clouds[:6] == one_pass * 2  # the bag repeats, stamps unchanged
    clock = [s for t, s in received if t == '/clock']
    assert clock and all(start_ns <= c <= end_ns for c in clock)
    assert any(b < a for a, b in zip(clock, clock[1:], strict=False))  # /clock jumps back at each loop


class FakePublisher:
    def __init__(self, log: list, topic: str, stop_after: int | None, stop: threading.Event) -> None:
        self.log, self.topic, self.stop_after, self.stop = log, topic, stop_after, stop

    def publish(self, data) -> None:
        self.log.append((self.topic, data))
        if self.stop_after is not None and len(self.log) >= self.stop_after:
            self.stop.set()

    def wait_for_all_acked(self, timeout) -> bool:
        return True


class FakeNode:
    """Just enough of an rclpy node for BagPlayer: publishers that log what they get."""

    def __init__(self, stop: threading.Event, stop_after: int | None = None) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.stop, self.stop_after = stop, stop_after

    def create_publisher(self, msg_class, topic, qos):
        return FakePublisher(self.published, topic, self.stop_after, self.stop)

    def get_logger(self):
        import logging

        return logging.getLogger('fake_node')


def test_player_skips_the_start_offset_and_publishes_the_raw_bytes_in_log_order(tmp_path):
    pytest.importorskip('rclpy')
    from anovox_perception.tools.replay import BagPlayer

    topics = make_bag(tmp_path / 'bag', frames=4)
    stop = threading.Event()
    node = FakeNode(stop)
    options = ReplayOptions(rate=1000.0, start_offset_s=0.15, topics=(topics.points, topics.image))
    stats = BagPlayer(node, tmp_path / 'bag', options).play(stop)
    with BagReader(tmp_path / 'bag') as bag:
        start = bag.start_ns + 150_000_000
        expected = [(topic, data) for topic, _, data in bag.raw_messages([topics.points, topics.image], start)]
    assert node.published == expected and len(expected) == 4  # frames 2 and 3 only
    assert stats.published == {topics.points: 2, topics.image: 2} and stats.loops == 1 and not stats.stopped


def test_looping_player_repeats_until_stopped(tmp_path):
    pytest.importorskip('rclpy')
    from anovox_perception.tools.replay import BagPlayer

    topics = make_bag(tmp_path / 'bag', frames=2)
    stop = threading.Event()
    node = FakeNode(stop, stop_after=5)
    stats = BagPlayer(node, tmp_path / 'bag', ReplayOptions(rate=1000.0, loop=True, topics=(topics.points,))).play(stop)
    assert [data for _, data in node.published] == [data for _, data in node.published[:2]] * 2 + [node.published[0][1]]
    assert stats.loops == 2 and stats.stopped


class TimedNode(FakeNode):
    """A FakeNode whose publishers log the (fake) time of each publish instead of the bytes."""

    def __init__(self, stop: threading.Event, clock: FakeClock, stop_after: int) -> None:
        super().__init__(stop, stop_after)
        self.clock = clock

    def create_publisher(self, msg_class, topic, qos):
        node = self

        class Timed(FakePublisher):
            def publish(self, data) -> None:
                super().publish(node.clock.now)

        return Timed(self.published, topic, self.stop_after, self.stop)


def test_delay_holds_back_the_first_message_once_and_keeps_the_bag_spacing(tmp_path):
    pytest.importorskip('rclpy')
    from anovox_perception.tools.replay import BagPlayer

    topics = make_bag(tmp_path / 'bag', frames=3)
    clock = FakeClock()
    stop = clock.event()
    node = TimedNode(stop, clock, stop_after=6)
    options = ReplayOptions(rate=2.0, loop=True, topics=(topics.points,), delay_s=4.0)
    BagPlayer(node, tmp_path / 'bag', options, clock=clock).play(stop)
    times = [t for _, t in node.published]
    with BagReader(tmp_path / 'bag') as bag:
        offsets_s = [(log_ns - bag.start_ns) / 1e9 / 2.0 for _, log_ns, _ in bag.raw_messages([topics.points])]
    first_pass = [100.0 + 4.0 + o for o in offsets_s]
    second_pass = [first_pass[-1] + o for o in offsets_s]  # the loop restarts without a second delay
    assert times == pytest.approx(first_pass + second_pass)
