"""Run real rclpy processes on loopback, isolated per test.

Each call of :func:`ros_env` gives a fresh ROS_DOMAIN_ID (spread by process id,
so concurrent test runs on one machine rarely share one) and limits discovery
to this host. :data:`SUBSCRIBER` is a small probe process that subscribes to
topics and prints what it received as JSON.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

_COUNTER = itertools.count()

SUBSCRIBER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from anovox_perception.tools.replay import import_message_type

    # argv: ready_file out_file expected_total timeout_s topic=type=reliable|best_effort ...
    ready_file, out_file, expected, timeout_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    specs = [a.split('=') for a in sys.argv[5:]]
    rclpy.init()
    node = rclpy.create_node('probe')
    received = []
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def stamp_of(msg):
        stamp = msg.clock if hasattr(msg, 'clock') else msg.header.stamp
        return stamp.sec * 1_000_000_000 + stamp.nanosec

    for topic, msgtype, reliability in specs:
        policy = ReliabilityPolicy.RELIABLE if reliability == 'reliable' else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(depth=100, reliability=policy)
        node.create_subscription(
            import_message_type(msgtype), topic, lambda m, t=topic: received.append([t, stamp_of(m)]), qos
        )
    open(ready_file, 'w').close()
    deadline = time.monotonic() + timeout_s
    while not stop and time.monotonic() < deadline and sum(r[0] != '/clock' for r in received) < expected:
        rclpy.spin_once(node, timeout_sec=0.05)
    with open(out_file, 'w') as f:
        json.dump(received, f)
    # The result is written; skip the DDS teardown, which was seen to stall for over
    # 25 s on a loaded 2-core host and would fail the test for nothing it checks.
    os._exit(0)
    """
)


def ros_env() -> dict[str, str]:
    """Environment for a child process on its own ROS domain, discovery limited to localhost."""
    domain = 1 + (os.getpid() * 13 + next(_COUNTER) * 7) % 100
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
        ROS_LOCALHOST_ONLY='0',  # the pre-Iron switch must not contradict the range
        PYTHONUNBUFFERED='1',
    )
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``python -m ...`` (or a script) with output to ``log``."""
    handle = log.open('w')
    return subprocess.Popen([sys.executable, *args], env=env, stdout=handle, stderr=subprocess.STDOUT)


def start_probe(
    tmp_path: Path, env: dict[str, str], topics: dict[str, str], expected: int, timeout_s: float = 15.0
) -> tuple[subprocess.Popen, Path, Path]:
    """Start the probe subscriber; returns (process, ready file, output file).

    Args:
        topics: topic -> message type, with ``:best_effort`` appended for a best-effort
            subscription (reliable otherwise).
        expected: messages (``/clock`` not counted) after which the probe exits.
    """
    script = tmp_path / 'probe.py'
    script.write_text(SUBSCRIBER)
    ready, out = tmp_path / 'probe.ready', tmp_path / 'probe.json'
    args = [str(script), str(ready), str(out), str(expected), str(timeout_s)]
    for topic, msgtype in topics.items():
        msgtype, _, reliability = msgtype.partition(':')
        args.append(f'{topic}={msgtype}={reliability or "reliable"}')
    return start(args, env, tmp_path / 'probe.log'), ready, out


def wait_for_file(path: Path, process: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """Wait until ``path`` exists; fail if ``process`` died or time ran out."""
    import time

    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            msg = f'process exited with {process.returncode} before writing {path.name}'
            raise AssertionError(msg)
        if time.monotonic() > deadline:
            msg = f'{path.name} not written within {timeout_s} s'
            raise AssertionError(msg)
        time.sleep(0.05)


def finish(process: subprocess.Popen, timeout_s: float = 20.0) -> int:
    """Wait for a process; interrupt then kill it if it overstays. Returns its exit code."""
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError('process did not exit in time') from None


def read_probe(out: Path) -> list[tuple[str, int]]:
    return [(topic, stamp) for topic, stamp in json.loads(out.read_text())]
