"""Recorder: options without a middleware, recording over real rclpy processes."""

from __future__ import annotations

import signal

import pytest
from bag_samples import make_bag, unique_topics
from ros_processes import finish, ros_env, start

from anovox_perception.core.errors import ConfigError
from anovox_perception.tools.bag_reader import BagReader
from anovox_perception.tools.recorder import RecorderOptions


def test_options_reject_relative_topics_bad_limits_and_existing_output(tmp_path):
    with pytest.raises(ConfigError, match=r"absolute names .* got \['points'\]"):
        RecorderOptions(out=tmp_path / 'a', topics=('points',))
    with pytest.raises(ConfigError, match='--max-messages must be >= 1'):
        RecorderOptions(out=tmp_path / 'a', topics=('/p',), max_messages=0)
    with pytest.raises(ConfigError, match='--idle-timeout must be > 0 s'):
        RecorderOptions(out=tmp_path / 'a', topics=('/p',), idle_timeout_s=0.0)
    (tmp_path / 'exists').mkdir()
    with pytest.raises(ConfigError, match='exists already'):
        RecorderOptions(out=tmp_path / 'exists', topics=('/p',))


def replay_args(bag, *topics: str) -> list[str]:
    return ['-m', 'anovox_perception.tools.replay', str(bag), '--topics', *topics, '--wait-for-subscribers', '10']


def recorded(bag) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    with BagReader(bag) as reader:
        for topic, _, rawdata in reader.raw_messages():
            out.setdefault(topic, []).append(rawdata)
    return out


def same_cdr(received: list[bytes], sent: list[bytes]) -> bool:
    """Equal byte for byte, except that the middleware may pad a message's end to 4 bytes with zeros."""
    return len(received) == len(sent) and all(
        r[: len(s)] == s and len(r) - len(s) < 4 and not any(r[len(s) :]) for r, s in zip(received, sent, strict=True)
    )


@pytest.mark.ros
@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_recording_a_replay_keeps_every_message_as_sent(tmp_path, storage):
    topics = make_bag(tmp_path / 'bag', topics=unique_topics())
    env = ros_env()
    recorder = start(
        [
            '-m',
            'anovox_perception.tools.recorder',
            '--out',
            str(tmp_path / 'rec'),
            '--storage',
            storage,
            '--topics',
            topics.points,
            topics.image,
            '--max-messages',
            '10',
        ],
        env,
        tmp_path / 'recorder.log',
    )
    # The replay waits until the recorder has subscribed (it does once it sees the publishers).
    replay = start(replay_args(tmp_path / 'bag', topics.points, topics.image), env, tmp_path / 'replay.log')
    assert finish(replay) == 0, (tmp_path / 'replay.log').read_text()
    assert finish(recorder) == 0, (tmp_path / 'recorder.log').read_text()
    assert 'recorded 10 messages' in (tmp_path / 'recorder.log').read_text()
    source, copy = recorded(tmp_path / 'bag'), recorded(tmp_path / 'rec')
    assert set(copy) == {topics.points, topics.image}
    assert same_cdr(copy[topics.points], source[topics.points]) and same_cdr(copy[topics.image], source[topics.image])
    with BagReader(tmp_path / 'rec') as bag:
        msgtypes = {name: info.msgtype for name, info in bag.topics.items()}
        log_times = [log_time_ns for _, log_time_ns, _ in bag.raw_messages()]
    assert msgtypes == {topics.points: 'sensor_msgs/msg/PointCloud2', topics.image: 'sensor_msgs/msg/Image'}
    assert log_times == sorted(log_times)


@pytest.mark.ros
def test_sigint_ends_the_recording_and_keeps_what_arrived(tmp_path):
    topics = make_bag(tmp_path / 'bag', frames=3, topics=unique_topics())
    env = ros_env()
    recorder = start(
        ['-m', 'anovox_perception.tools.recorder', '--out', str(tmp_path / 'rec'), '--topics', topics.points],
        env,
        tmp_path / 'recorder.log',
    )
    replay = start(replay_args(tmp_path / 'bag', topics.points), env, tmp_path / 'replay.log')
    assert finish(replay) == 0, (tmp_path / 'replay.log').read_text()
    recorder.send_signal(signal.SIGINT)
    assert finish(recorder, timeout_s=10.0) == 0, (tmp_path / 'recorder.log').read_text()
    copy = recorded(tmp_path / 'rec')
    assert set(copy) == {topics.points}
    assert same_cdr(copy[topics.points], recorded(tmp_path / 'bag')[topics.points])


@pytest.mark.ros
def test_idle_timeout_ends_a_recording_that_got_nothing(tmp_path):
    env = ros_env()
    recorder = start(
        [
            '-m',
            'anovox_perception.tools.recorder',
            '--out',
            str(tmp_path / 'rec'),
            '--topics',
            '/nobody',
            '--idle-timeout',
            '0.5',
        ],
        env,
        tmp_path / 'recorder.log',
    )
    assert finish(recorder, timeout_s=15.0) == 0, (tmp_path / 'recorder.log').read_text()
    assert 'no message for 0.5 s; wrote 0 messages' in (tmp_path / 'recorder.log').read_text()
    with BagReader(tmp_path / 'rec') as bag:
        assert bag.topics == {}
