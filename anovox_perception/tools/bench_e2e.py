"""End-to-end benchmark of the node's pipeline, in process: a bag replayed in real time through it.

    python -m anovox_perception.tools.bench_e2e BAG --out e2e.json [--model M.onnx] [--seconds 30]
        [--sync sync.image_interval_lower_bound_s=0.09 ...]

The node's path without the middleware: each message is taken at its replay
time by the node's :class:`~anovox_perception.core.intake.InputIntake` (decode and
checks, as its subscription callbacks do), fed to the synchroniser the ``sync.*``
parameters build (the node's defaults unless ``--sync`` sets some; polled every
20 ms, as the node's timer does), each pair is handed to one inference worker
through the node's latest-only :class:`~anovox_perception.core.handoff.LatestSlot` (an unread pair that
a newer one replaces is a drop), the worker runs
:meth:`Detector.process <anovox_perception.core.detector.Detector.process>` and builds
the three output messages. Stages: decode and sync (in the feeding thread),
``sync_wait`` (cloud arrival to its pair: the synchroniser waiting for the
nearest image), ``queue_wait`` (pair to worker), preprocess, inference,
postprocess, publish (building the messages). Latency is the cloud's arrival (its replay time) to
its output messages built: what the node's diagnostics report as pipeline
latency, with the DDS transport left out. The bag is looped with its stamps
shifted forward, so time never jumps back.

Runs, in order: the bag's own rate (10 Hz for AnoVox bags) for ``--seconds``;
a sweep of replay rates for the highest one sustained (no drop and no latency
growth); ``--overload`` times the rate the pipeline can process, for
``--overload-seconds``, with the p99 latency of each 10 s window. Peak RSS is
this process's (it loads only what the node loads), so run it as its own process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from std_msgs.msg import Header

from anovox_perception.core.allocator import retain_freed_memory
from anovox_perception.core.detector import Detector, DetectorConfig, FrameResult
from anovox_perception.core.errors import AnovoxError, ConfigError, DataError
from anovox_perception.core.handoff import LatestSlot
from anovox_perception.core.intake import InputIntake
from anovox_perception.core.parameters import validate_values
from anovox_perception.core.pipeline_stats import PipelineStats
from anovox_perception.core.stamps import ns_to_seconds, sec_nanosec
from anovox_perception.core.sync import LidarDrivenSync, SyncedPair, make_sync
from anovox_perception.ros import msg_codec
from anovox_perception.tools.bag_reader import BagReader
from anovox_perception.tools.bags import BagTopics

__all__ = ['ReplayMessage', 'RunResult', 'load_bag', 'main', 'replay_through_pipeline', 'run_report']

_POLL_S = 0.02
_WINDOW_S = 10.0


@dataclass(frozen=True)
class ReplayMessage:
    """A camera or LiDAR message of the bag: its log time, kind (``points`` | ``image``) and decoded message."""

    log_ns: int
    kind: str
    msg: Any


@dataclass
class RunResult:
    """What one replay measured (times in ms, ``done_s`` seconds since the replay started)."""

    rate: float
    duration_s: float
    clouds_in: int = 0
    images_in: int = 0
    pairs: int = 0
    dropped: int = 0
    errors: int = 0
    latency_ms: list[float] = field(default_factory=list)
    done_s: list[float] = field(default_factory=list)
    stages_ms: dict[str, list[float]] = field(default_factory=dict)

    def add_stage(self, name: str, value_ms: float) -> None:
        self.stages_ms.setdefault(name, []).append(value_ms)


def load_bag(path: str | Path, topics: BagTopics | None = None) -> list[ReplayMessage]:
    """The bag's camera images and clouds in log-time order, decoded to message objects.

    Raises:
        DataError: The bag cannot be read or holds no cloud.
    """
    topics = topics or BagTopics()
    kinds = {topics.points: 'points', topics.image: 'image'}
    with BagReader(path) as bag:
        out = [ReplayMessage(log_ns, kinds[topic], msg) for topic, log_ns, msg in bag.messages(topics=list(kinds))]
    if not any(m.kind == 'points' for m in out):
        msg = f'bench_e2e: {path} holds no {topics.points} messages'
        raise DataError(msg)
    return out


def _period_ns(messages: list[ReplayMessage]) -> int:
    """The bag's span plus one cloud period: the stamp shift of each loop."""
    clouds = [m.log_ns for m in messages if m.kind == 'points']
    step = int(np.median(np.diff(clouds))) if len(clouds) > 1 else 100_000_000
    return messages[-1].log_ns - messages[0].log_ns + step


def _publish_messages(result: FrameResult) -> None:
    """Build the node's three output messages (what publishing costs before the middleware)."""
    header = Header(stamp=msg_codec.ns_to_stamp(result.stamp_ns), frame_id=result.frame_id)
    msg_codec.make_occupancy_grid(result.score_grid, result.grid, header)
    msg_codec.xyzi_to_pointcloud2(result.voxel_scores, header, 'score')
    if result.markers:
        msg_codec.markers_to_msg(result.markers, header)


def replay_through_pipeline(
    detector: Detector,
    messages: list[ReplayMessage],
    rate: float,
    duration_s: float,
    sync_parameters: dict[str, Any] | None = None,
) -> RunResult:
    """Replay ``messages`` (looped) at ``rate`` times their recorded speed for ``duration_s`` through the pipeline."""
    result = RunResult(rate=rate, duration_s=duration_s)
    slot: LatestSlot[SyncedPair] = LatestSlot()
    lock = threading.Lock()

    emitted_s: dict[int, float] = {}

    def on_pair(pair: SyncedPair) -> None:
        with lock:
            result.pairs += 1
            emitted_s[pair.points_stamp_ns] = time.monotonic()
            dropped = slot.put(pair)
            if dropped is not None:
                result.dropped += 1
                emitted_s.pop(dropped.points_stamp_ns, None)

    sync = make_sync(sync_parameters, callback=on_pair)
    # The node's intake on the node's clock (wall time here: no /clock in this replay).
    uses_intensity = detector.uses_intensity
    intake = InputIntake(PipelineStats(), lambda kind, text: None, time.time_ns, intensity_used=uses_intensity)
    start = time.monotonic()
    stop = threading.Event()

    def work() -> None:
        while (pair := slot.take()) is not None:
            taken_s = time.monotonic()
            try:
                frame = detector.process(pair)
                t0 = time.perf_counter()
                _publish_messages(frame)
            except AnovoxError:
                result.errors += 1
                continue
            now = time.monotonic()
            with lock:
                for name, value in frame.timings_ms.items():
                    result.add_stage(name, value)
                result.add_stage('publish', (time.perf_counter() - t0) * 1e3)
                emitted = emitted_s.pop(pair.points_stamp_ns, taken_s)
                result.add_stage('queue_wait', (taken_s - emitted) * 1e3)
                if frame.received_s is not None:
                    # Arrival to pair: the synchroniser waiting for the image nearest the cloud.
                    result.add_stage('sync_wait', (emitted - frame.received_s) * 1e3)
                    result.latency_ms.append((now - frame.received_s) * 1e3)
                    result.done_s.append(now - start)

    def poll() -> None:
        while not stop.wait(_POLL_S):
            if isinstance(sync, LidarDrivenSync):
                sync.poll(time.time_ns())

    threads = [threading.Thread(target=work, daemon=True), threading.Thread(target=poll, daemon=True)]
    for thread in threads:
        thread.start()
    first, period = messages[0].log_ns, _period_ns(messages)
    loop = 0
    while True:
        for message in messages:
            offset_ns = message.log_ns - first + loop * period
            due_s = ns_to_seconds(offset_ns) / rate
            if due_s > duration_s:
                break
            wait = start + due_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            _feed(intake, sync, message, loop * period, result)
        else:
            loop += 1
            continue
        break
    time.sleep(0.5)  # the last pairs are still in the worker
    stop.set()
    slot.close()
    for thread in threads:
        thread.join(timeout=10.0)
    return result


def _restamped(msg: Any, shift_ns: int) -> Any:
    """``msg`` with its header stamp moved ``shift_ns`` later (a copy; the bag's message is kept)."""
    if shift_ns == 0:
        return msg
    stamp = msg.header.stamp
    stamp_ns = msg_codec.stamp_to_ns(stamp) + shift_ns
    sec, nanosec = sec_nanosec(stamp_ns)
    new_stamp = dataclasses.replace(stamp, sec=sec, nanosec=nanosec)
    return dataclasses.replace(msg, header=dataclasses.replace(msg.header, stamp=new_stamp))


def _feed(intake: InputIntake, sync: Any, message: ReplayMessage, shift_ns: int, result: RunResult) -> None:
    """What a subscription callback does: the node's intake (decode, checks), then the synchroniser; both timed."""
    msg = _restamped(message.msg, shift_ns)
    t0 = time.perf_counter()
    if message.kind == 'points':
        stamped = intake.cloud(msg)
        result.clouds_in += 1
    else:
        stamped = intake.image(msg)
        result.images_in += 1
    t1 = time.perf_counter()
    if stamped is None:
        result.errors += 1
        return
    (sync.add_points if message.kind == 'points' else sync.add_image)(stamped)
    result.add_stage(f'decode_{message.kind}', (t1 - t0) * 1e3)
    result.add_stage('sync', (time.perf_counter() - t1) * 1e3)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {'p50_ms': None, 'p99_ms': None}
    p50, p99 = np.percentile(values, [50, 99])
    return {'p50_ms': round(float(p50), 2), 'p99_ms': round(float(p99), 2)}


def run_report(run: RunResult, bag_hz: float) -> dict[str, Any]:
    """Latency, node overhead (latency minus inference), drops, stage times and 10 s windows of one run."""
    latency = np.asarray(run.latency_ms)
    inference = np.asarray(run.stages_ms.get('inference', []))
    sync_wait = np.asarray(run.stages_ms.get('sync_wait', []))
    overhead = latency - inference if latency.size == inference.size else np.zeros(0)
    # What the node's own work adds: the wait for the nearest image is the sync policy's (bounded by sync.timeout_s).
    compute = overhead - sync_wait if overhead.size == sync_wait.size else np.zeros(0)
    done = np.asarray(run.done_s)
    windows = []
    for start in np.arange(0.0, run.duration_s, _WINDOW_S):
        inside = latency[(done >= start) & (done < start + _WINDOW_S)]
        if inside.size:
            windows.append({'from_s': float(start), **_percentiles(inside.tolist()), 'frames': int(inside.size)})
    halves = np.array_split(latency, 2) if latency.size >= 4 else []
    growth = float(np.median(halves[1]) - np.median(halves[0])) if len(halves) == 2 else None
    return {
        'replay_rate': run.rate,
        'input_hz': round(run.rate * bag_hz, 2),
        'seconds': run.duration_s,
        'clouds_in': run.clouds_in,
        'pairs': run.pairs,
        'frames_out': int(latency.size),
        'dropped': run.dropped,
        'drop_rate': round(run.dropped / run.pairs, 4) if run.pairs else None,
        'errors': run.errors,
        'latency': _percentiles(latency.tolist()),
        'node_overhead': _percentiles(overhead.tolist()),
        'node_overhead_without_sync_wait': _percentiles(compute.tolist()),
        'latency_growth_ms': None if growth is None else round(growth, 2),
        'stages': {name: _percentiles(values) for name, values in sorted(run.stages_ms.items())},
        'windows': windows,
    }


def sustained(report: dict[str, Any]) -> bool:
    """No drop, every pair out, and the median latency of the second half within 10 ms (or 20 %) of the first."""
    growth = report['latency_growth_ms']
    base = report['latency']['p50_ms'] or 0.0
    return (
        report['dropped'] == 0 and report['frames_out'] >= report['pairs'] - 1 and growth is not None
    ) and growth <= max(10.0, 0.2 * base)


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB).

    ``VmHWM`` of ``/proc/self/status`` where there is one: ``getrusage``'s ``ru_maxrss`` survives
    ``exec`` on Linux, so a process started by a bigger one would report its parent's peak.
    """
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def sync_parameters(assignments: list[str]) -> dict[str, Any]:
    """``sync.NAME=VALUE`` strings as checked parameter values (VALUE read as YAML, as in a params file).

    Raises:
        ConfigError: An assignment is malformed, not a ``sync.*`` parameter, or its value is invalid.
    """
    values: dict[str, Any] = {}
    for text in assignments:
        name, sep, value = text.partition('=')
        if not sep or not name.startswith('sync.'):
            msg = f'--sync expects sync.NAME=VALUE (e.g. sync.image_interval_lower_bound_s=0.09), got {text!r}'
            raise ConfigError(msg)
        values[name] = yaml.safe_load(value)
    return validate_values(values, where='--sync')


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='anovox-bench-e2e', description=__doc__.splitlines()[0])
    parser.add_argument('bag', type=Path, help='rosbag2 with camera images and clouds (anovox-make-bag)')
    parser.add_argument('--out', type=Path, required=True, help='JSON report')
    parser.add_argument('--model', default='', help='model .onnx (default: the shipped one)')
    parser.add_argument('--threads', type=int, default=0, help='backend intra-op threads (0: one per core)')
    parser.add_argument('--seconds', type=float, default=30.0, help='length of the run at the bag rate')
    rates = [0.5, 0.75, 1.25, 1.5, 2.0]
    parser.add_argument('--rates', type=float, nargs='*', default=rates, help='replay rates to sweep')
    parser.add_argument('--sweep-seconds', type=float, default=10.0, help='length of each sweep run')
    parser.add_argument('--overload', type=float, default=5.0, help='overload factor over the processing rate')
    parser.add_argument('--overload-seconds', type=float, default=60.0, help='length of the overload run')
    parser.add_argument(
        '--sync', action='append', default=[], metavar='sync.NAME=VALUE', help="a sync parameter (default: the node's)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the end-to-end benchmark; 0 on success, 1 with a message on failure."""
    args = get_args_parser().parse_args(argv)
    allocator = retain_freed_memory()
    try:
        sync = sync_parameters(args.sync)
        messages = load_bag(args.bag)
        clouds = [m.log_ns for m in messages if m.kind == 'points']
        bag_hz = 1.0 / ns_to_seconds(float(np.median(np.diff(clouds)))) if len(clouds) > 1 else 10.0
        detector = Detector(DetectorConfig(model_path=args.model, backend='onnxruntime', num_threads=args.threads))
        replay_through_pipeline(detector, messages, 1.0, 2.0, sync)  # warm-up: sessions, caches, allocator
        nominal = run_report(replay_through_pipeline(detector, messages, 1.0, args.seconds, sync), bag_hz)
        sweep = [nominal] + [
            run_report(replay_through_pipeline(detector, messages, rate, args.sweep_seconds, sync), bag_hz)
            for rate in args.rates
        ]
        ok = [r['input_hz'] for r in sweep if sustained(r)]
        busy = nominal['stages']
        per_frame_ms = sum(busy[s]['p50_ms'] or 0.0 for s in ('preprocess', 'inference', 'postprocess', 'publish'))
        capacity_hz = 1000.0 / per_frame_ms if per_frame_ms > 0 else bag_hz
        overload_rate = args.overload * capacity_hz / bag_hz
        overload_run = replay_through_pipeline(detector, messages, overload_rate, args.overload_seconds, sync)
        overload = run_report(overload_run, bag_hz)
        report = {
            'bag': str(args.bag),
            'bag_hz': round(bag_hz, 2),
            'model': str(detector.model_path),
            'backend': detector.backend_name,
            'sync_parameters': sync,
            'nominal': nominal,
            'sweep': sweep,
            'highest_sustained_hz': max(ok) if ok else None,
            'capacity_hz': round(capacity_hz, 2),
            'overload': overload,
            'allocator': allocator,
            'peak_rss_mib': peak_rss_mib(),
        }
    except AnovoxError as err:
        print(f'anovox-bench-e2e: {err}', file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + '\n')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
