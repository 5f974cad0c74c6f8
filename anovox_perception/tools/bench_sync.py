"""Benchmark of the synchroniser's cost per message: 10 Hz LiDAR and 20 Hz camera with jitter.

The stream is what a car delivers: LiDAR stamps every 100 ms with 2 ms jitter,
camera stamps every 50 ms, 20 ms before the LiDAR's phase, with 5 ms jitter, each
message arriving 5-15 ms after its stamp (so the topics interleave out of stamp
order at times), and the node's 20 ms poll timer in between. Each ``add_*`` and
``poll`` call of the synchroniser the node's default ``sync.*`` parameters build
is timed on its own.
"""

from __future__ import annotations

import time

import numpy as np

from anovox_perception.core.sync import LidarDrivenSync, StampedMsg, make_sync

__all__ = ['message_stream', 'sync_cost_per_message']

_MS = 1_000_000


def message_stream(seconds: float = 30.0, seed: int = 0) -> list[tuple[int, str, int]]:
    """``(arrival_ns, kind, stamp_ns)`` of every LiDAR, camera and poll event, in arrival order."""
    rng = np.random.default_rng(seed)
    events = []
    n_clouds = int(seconds * 10)
    for i in range(n_clouds):
        stamp = i * 100 * _MS + int(rng.normal(0, 2) * _MS)
        events.append((stamp + int(rng.uniform(5, 15) * _MS), 'points', stamp))
    for i in range(n_clouds * 2):
        stamp = i * 50 * _MS - 20 * _MS + int(rng.normal(0, 5) * _MS)
        events.append((stamp + int(rng.uniform(5, 15) * _MS), 'image', stamp))
    for i in range(int(seconds * 50)):
        events.append((i * 20 * _MS, 'poll', 0))
    events.sort()
    return events


def sync_cost_per_message(rounds: int = 10, seconds: float = 30.0) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Milliseconds per call over ``rounds`` replays of the stream, and the last round's counters.

    Returns:
        ``({'message': add_points and add_image calls, 'poll': poll calls}, counters)``.
    """
    events = message_stream(seconds)
    times: dict[str, list[float]] = {'message': [], 'poll': []}
    counters: dict[str, int] = {}
    for _ in range(rounds):
        sync = make_sync({}, callback=None)
        if not isinstance(sync, LidarDrivenSync):
            msg = 'bench_sync: the default sync.policy is expected to be lidar_driven'
            raise TypeError(msg)
        for arrival_ns, kind, stamp_ns in events:
            start = time.perf_counter()
            if kind == 'poll':
                sync.poll(arrival_ns)
            elif kind == 'points':
                sync.add_points(StampedMsg(stamp_ns, None, received_ns=arrival_ns))
            else:
                sync.add_image(StampedMsg(stamp_ns, None, received_ns=arrival_ns))
            times['poll' if kind == 'poll' else 'message'].append((time.perf_counter() - start) * 1e3)
        counters = {k: v for k, v in sync.counters().items() if v}
    return {kind: np.asarray(values) for kind, values in times.items()}, counters
