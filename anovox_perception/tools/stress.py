"""Overload and fault scenarios against the detector node, longer than the tests run them.

    python -m anovox_perception.tools.stress --out stress_out [--duration-s 15] [--model models/X.onnx]

What `make stress` runs. Each in-process scenario builds a `DetectorNode` and calls its
subscription callbacks from a sender loop at the scenario's rates (the poll timer the
executor would run is called from the same loop), so it measures the node, not the
middleware. The shutdown scenario starts real ``anovox-detect`` processes and signals them.

Prints a table and writes ``<out>/stress.json``: one row per scenario with ``sent``
(messages offered), ``processed`` (frames published), ``dropped`` (synced pairs the
latest-only worker overwrote, frames whose inference failed, clouds skipped without
a camera), ``rejected`` (messages refused as bad input), ``crashes`` (exceptions
escaping a callback, a dead worker, an unclean process exit: must be 0), RSS at the
start and end (MB) and the cloud-received -> outputs-published latency p50 / p99 (ms;
for ``shutdown``: signal -> process exit).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anovox_perception.core.stamps import NS_PER_S

__all__ = ['SCENARIOS', 'StressRow', 'get_args_parser', 'main', 'run_stress']

_MB = 1024 * 1024


@dataclass
class StressRow:
    """One scenario's outcome (the keys of stress.json)."""

    scenario: str
    sent: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    crashes: int = 0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The row as stress.json stores it (notes are printed, not stored)."""
        out = asdict(self)
        del out['notes']
        return out


def rss_mb() -> float:
    """Resident set size of this process now (MB)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / _MB


def _percentiles(samples: list[float]) -> tuple[float, float]:
    if not samples:
        return 0.0, 0.0
    arr = np.asarray(samples)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


class _Rig:
    """A DetectorNode driven by a sender loop, with synthetic camera and LiDAR messages."""

    def __init__(self, model_path: str, domain_id: int, **overrides: Any) -> None:
        import rclpy
        from rclpy.parameter import Parameter
        from std_msgs.msg import Header

        from anovox_perception.ros import msg_codec
        from anovox_perception.ros.node import DetectorNode

        self._rclpy, self._codec, self._header = rclpy, msg_codec, Header
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        params = {'model_path': model_path, 'warn_throttle_s': 3600.0, **overrides}
        self.node = DetectorNode(
            context=self.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
        )
        self.latencies_ms: list[float] = []
        self.crashes = 0
        publish = self.node._publish

        def timed_publish(result: Any) -> None:
            publish(result)
            if result.received_s is not None:
                self.latencies_ms.append((time.monotonic() - result.received_s) * 1e3)

        self.node._publish = timed_publish
        self.levels: list[tuple[float, int, str]] = []
        card = self.node._detector.card
        rng = np.random.default_rng(0)
        ground = rng.uniform([-15, -39, -2.0, 0], [63, 39, -1.7, 1], (60_000, 4))
        objects = rng.uniform([5, -10, -1.7, 0.3], [40, 10, 1.5, 1], (15_000, 4))
        self.points = np.concatenate([ground, objects]).astype(np.float32)
        self.rgb = rng.integers(0, 255, (card.camera.height, card.camera.width, 3), dtype=np.uint8)
        self.sent = 0
        # Watch the diagnostics the node publishes (level and message per period).
        diag_pub = self.node._pub_diag
        rig = self

        class _Watch:
            def publish(self, msg: Any) -> None:
                (status,) = msg.status
                rig.levels.append((time.monotonic(), status.level[0], status.message))
                diag_pub.publish(msg)

        self.node._pub_diag = _Watch()
        # Warm the worker up (its first frames allocate), so RSS at start is after that and counts start at 0.
        self.frame_ms = self._warm_up()
        self.rss_start_mb = rss_mb()
        self._stop = threading.Event()
        self._timers = threading.Thread(target=self._run_timers, name='stress_timers', daemon=True)
        self._timers.start()

    def _warm_up(self, frames: int = 6) -> float:
        """Median seconds per frame through the worker, in ms; the warm-up frames are not counted."""
        from anovox_perception.core import pipeline_stats as ps
        from anovox_perception.core.detector import CloudFrame
        from anovox_perception.core.sync import SyncedPair

        stats = self.node._stats
        times = []
        for i in range(frames):
            done = stats.total(ps.FRAMES_OUT) + 1
            t0 = time.perf_counter()
            self.node._on_pair(SyncedPair(i, CloudFrame(self.points, 'lidar', time.monotonic()), self.rgb, i))
            while stats.total(ps.FRAMES_OUT) < done:
                time.sleep(0.001)
            times.append((time.perf_counter() - t0) * 1e3)
        self.node._stats = ps.PipelineStats()
        self.node._intake._stats = self.node._stats
        self.latencies_ms.clear()
        return float(np.median(times[1:]))

    def _run_timers(self) -> None:
        # The node's steady-clock timers, as the executor would run them: sync poll every 20 ms,
        # diagnostics every second.
        last_diag = time.monotonic()
        while not self._stop.wait(0.02):
            self.node._poll_sync()
            if time.monotonic() - last_diag >= 1.0:
                last_diag = time.monotonic()
                self.node._publish_diagnostics()

    @property
    def processable_hz(self) -> float:
        """Frames per second one worker gets through on this machine now."""
        return 1000.0 / self.frame_ms

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        return self._header(stamp=self._codec.ns_to_stamp(stamp_ns), frame_id=frame_id)

    def _call(self, fn: Callable[[Any], None], msg: Any) -> None:
        self.sent += 1
        try:
            fn(msg)
        except Exception:  # what the node must never let out of a callback
            self.crashes += 1

    def cloud(self, stamp_ns: int) -> None:
        msg = self._codec.xyzi_to_pointcloud2(self.points, self.header(stamp_ns, 'lidar'))
        self._call(self.node._on_points, msg)

    def image(self, stamp_ns: int) -> None:
        msg = self._codec.rgb_to_image(self.rgb, self.header(stamp_ns, 'camera'))
        self._call(self.node._on_image, msg)

    def bad(self, kind: str, msg: Any) -> None:
        self._call(self.node._on_points if kind == 'points' else self.node._on_image, msg)

    def diagnose(self) -> tuple[int, str]:
        """Publish diagnostics now; their level and message."""
        self.node._publish_diagnostics()
        _, level, message = self.levels[-1]
        return level, message

    def finish(self, row: StressRow, drain_s: float = 1.0) -> StressRow:
        time.sleep(drain_s)  # pending clouds time out, the worker finishes its frame
        self._stop.set()
        self._timers.join()
        from anovox_perception.core import pipeline_stats as ps

        stats = self.node._stats
        sync = self.node._current_sync().counters()
        row.sent = self.sent
        row.processed = stats.total(ps.FRAMES_OUT)
        row.dropped = stats.total(ps.DROPPED) + stats.total(ps.INFERENCE_ERRORS) + sync.get('skipped', 0)
        totals = stats.snapshot().totals
        row.rejected = sum(v for k, v in totals.items() if k.startswith(ps.BAD_INPUT_PREFIX))
        row.crashes = self.crashes + (0 if self.node._worker.is_alive() else 1)
        row.rss_end_mb = rss_mb()
        row.p50_ms, row.p99_ms = _percentiles(self.latencies_ms)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
        return row


def _pace(rate_hz: float, duration_s: float, step: Callable[[int, int], None]) -> None:
    """Call ``step(i, stamp_ns)`` at ``rate_hz`` for ``duration_s`` (stamps on the monotonic clock)."""
    period = 1.0 / rate_hz
    start = time.monotonic()
    i = 0
    while True:
        due = start + i * period
        if due - start > duration_s:
            return
        time.sleep(max(0.0, due - time.monotonic()))
        step(i, int(due * NS_PER_S))
        i += 1


def _paired_step(rig: _Rig) -> Callable[[int, int], None]:
    def step(i: int, stamp_ns: int) -> None:
        rig.image(stamp_ns - 5_000_000)
        rig.cloud(stamp_ns)

    return step


def scenario_nominal(model: str, duration_s: float, domain: int) -> StressRow:
    rig = _Rig(model, domain)
    rate = 0.5 * rig.processable_hz
    row = StressRow('nominal', rss_start_mb=rig.rss_start_mb)
    _pace(rate, duration_s, _paired_step(rig))
    row = rig.finish(row)
    row.notes.append(f'{rate:.1f} Hz camera + LiDAR (half of 1 / {rig.frame_ms:.0f} ms per frame)')
    return row


def scenario_overload(model: str, duration_s: float, domain: int) -> StressRow:
    rig = _Rig(model, domain)
    rate, infer_ms = 5.0 * rig.processable_hz, rig.frame_ms
    row = StressRow('overload_5x', rss_start_mb=rig.rss_start_mb)
    _pace(rate, duration_s, _paired_step(rig))
    row = rig.finish(row)
    growth = 100.0 * (row.rss_end_mb - row.rss_start_mb) / row.rss_start_mb
    row.notes.append(f'{rate:.0f} Hz in (5 x 1 / {infer_ms:.0f} ms per frame); RSS growth {growth:+.1f} % (limit 10 %)')
    return row


def scenario_bad_input(model: str, duration_s: float, domain: int) -> StressRow:
    from sensor_msgs.msg import Image, PointCloud2, PointField

    rig = _Rig(model, domain)
    row = StressRow('bad_input_mixed', rss_start_mb=rig.rss_start_mb)
    rng = np.random.default_rng(1)

    def garbage(i: int, stamp_ns: int) -> None:
        header = rig.header(stamp_ns, 'lidar')
        cloud = PointCloud2(header=header, height=1, width=int(rng.integers(0, 200)), point_step=16)
        cloud.row_step = int(rng.choice([cloud.width * 16, int(rng.integers(0, 4000))]))
        names = rng.choice(['x', 'y', 'z', 'i', 'rgb', 'q'], size=int(rng.integers(0, 5)))
        cloud.fields = [
            PointField(name=str(n), offset=int(rng.integers(0, 20)), datatype=int(rng.integers(0, 10)), count=1)
            for n in names
        ]
        cloud.data = rng.bytes(int(rng.integers(0, 4000)))
        rig.bad('points', cloud)
        image = Image(header=header, width=int(rng.integers(0, 64)), height=int(rng.integers(0, 64)))
        image.encoding = str(rng.choice(['rgb8', 'bgr8', 'yuv422', 'mono16', '']))
        image.step = int(rng.integers(0, 300))
        image.data = rng.bytes(int(rng.integers(0, 5000)))
        rig.bad('image', image)

    every = max(1, round(50.0 / (0.5 * rig.processable_hz)))

    def step(i: int, stamp_ns: int) -> None:
        garbage(i, stamp_ns)
        if i % every == 0:  # good pairs at half the processable rate between garbage at 50 Hz
            _paired_step(rig)(i, stamp_ns)

    _pace(50.0, duration_s, step)
    return rig.finish(row)


def scenario_camera_stops(model: str, duration_s: float, domain: int) -> StressRow:
    rig = _Rig(model, domain, **{'diagnostics.input_timeout_s': 1.0})
    row = StressRow('camera_stops', rss_start_mb=rig.rss_start_mb)
    rate = 0.5 * rig.processable_hz
    third = int(rate * duration_s / 3)

    def step(i: int, stamp_ns: int) -> None:
        if not third <= i < 2 * third:
            rig.image(stamp_ns - 5_000_000)
        rig.cloud(stamp_ns)

    _pace(rate, duration_s, step)
    warned = any('no usable camera image' in message for _, _, message in rig.levels)
    recovered = 'no usable camera image' not in rig.diagnose()[1]
    from anovox_perception.core import pipeline_stats as ps

    lidar_only = rig.node._stats.total(ps.LIDAR_ONLY)
    row = rig.finish(row)
    row.notes.append(f'{lidar_only} frames ran LiDAR-only; camera WARN seen: {warned}; recovered: {bool(recovered)}')
    return row


def scenario_lidar_stops(model: str, duration_s: float, domain: int) -> StressRow:
    rig = _Rig(model, domain, **{'diagnostics.input_timeout_s': 1.0})
    row = StressRow('lidar_stops', rss_start_mb=rig.rss_start_mb)
    rate, part_s = 0.5 * rig.processable_hz, max(3.0, duration_s / 3)
    _pace(rate, part_s, _paired_step(rig))
    silent_from = time.monotonic()
    cpu_from = cpu0 = None
    while time.monotonic() - silent_from < part_s:
        if cpu_from is None and time.monotonic() - silent_from >= 1.0:  # the last frame is done by now
            cpu_from, cpu0 = time.monotonic(), time.process_time()
        time.sleep(0.02)
    cpu_pct = 100.0 * (time.process_time() - cpu0) / (time.monotonic() - cpu_from)
    errors = [t - silent_from for t, level, _ in rig.levels if level == 2 and t >= silent_from]
    _pace(rate, part_s, _paired_step(rig))
    recovered = rig.diagnose()[0] != 2
    row = rig.finish(row)
    first = f'{errors[0]:.1f} s' if errors else 'never'
    row.notes.append(
        f'ERROR {first} after the last cloud (input_timeout_s 1, diagnostics every 1 s); '
        f'CPU {cpu_pct:.1f} % of a core while silent (no busy loop); recovered: {recovered}'
    )
    return row


def scenario_backend_faults(model: str, duration_s: float, domain: int) -> StressRow:
    rig = _Rig(model, domain)
    backend = rig.node._detector.backend
    real_run = backend.run
    calls = [0]
    rate = 0.5 * rig.processable_hz
    expected = rate * duration_s
    burst = range(int(0.4 * expected), int(0.4 * expected) + max(5, int(0.2 * expected)))  # failures in a row

    def flaky(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls[0] += 1
        if calls[0] % 10 == 0 or calls[0] in burst:
            msg = f'injected backend failure on call {calls[0]}'
            raise RuntimeError(msg)
        return real_run(inputs)

    backend.run = flaky
    row = StressRow('backend_faults', rss_start_mb=rig.rss_start_mb)
    _pace(rate, duration_s, _paired_step(rig))
    errored = any(level == 2 for _, level, _ in rig.levels)
    from anovox_perception.core import pipeline_stats as ps

    failures = rig.node._stats.total(ps.INFERENCE_ERRORS)
    row = rig.finish(row)
    row.notes.append(f'{failures} inference failures dropped and counted; ERROR during the burst: {errored}')
    return row


def scenario_shutdown(model: str, duration_s: float, domain: int, reps: int = 2) -> StressRow:
    """Real ``anovox-detect`` processes stopped by SIGINT, SIGTERM, SIGINT twice, and SIGINT while starting."""
    row = StressRow('shutdown_signals', rss_start_mb=0.0)
    env = {**os.environ, 'ROS_DOMAIN_ID': str(domain), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    cmd = [sys.executable, '-m', 'anovox_perception.ros.node', '--ros-args', '-p', f'model_path:={model}']
    stops = []
    variants = [
        ('SIGINT', [signal.SIGINT], True),
        ('SIGTERM', [signal.SIGTERM], True),
        ('SIGINT x2', [signal.SIGINT, signal.SIGINT], True),
        ('SIGINT while starting', [signal.SIGINT], False),
    ]
    for _ in range(reps):
        for name, sigs, wait_ready in variants:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            lines: list[str] = []
            reader = threading.Thread(target=lambda p=proc, out=lines: out.extend(p.stdout), daemon=True)
            reader.start()
            deadline = time.monotonic() + 60
            while wait_ready and not any(' on onnxruntime' in x or ' on tensorrt' in x for x in lines):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            if not wait_ready:
                time.sleep(0.5)  # inside imports / model loading
            t0 = time.monotonic()
            for i, sig in enumerate(sigs):
                if i:
                    time.sleep(0.05)
                proc.send_signal(sig)
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            stops.append((time.monotonic() - t0) * 1e3)
            reader.join(timeout=5)
            row.sent += 1
            output = ''.join(lines)
            if code == 0 and 'Traceback' not in output:
                row.processed += 1
            else:
                row.crashes += 1
                row.notes.append(f'{name}: exit {code}: {output.strip().splitlines()[-1:]}')
    row.p50_ms, row.p99_ms = _percentiles(stops)
    row.notes.append(f'signal -> exit at most {max(stops):.0f} ms (limit 2000 ms)')
    return row


SCENARIOS: dict[str, Callable[..., StressRow]] = {
    'nominal': scenario_nominal,
    'overload': scenario_overload,
    'bad_input': scenario_bad_input,
    'camera_stops': scenario_camera_stops,
    'lidar_stops': scenario_lidar_stops,
    'backend_faults': scenario_backend_faults,
    'shutdown': scenario_shutdown,
}


def run_stress(model: str, duration_s: float, names: list[str]) -> list[StressRow]:
    """Run the named scenarios in order; one ROS domain each, kept away from the tests' domains."""
    domain = 150 + os.getpid() % 50
    return [SCENARIOS[name](model, duration_s, domain + i) for i, name in enumerate(names)]


def _table(rows: list[StressRow]) -> str:
    keys = [
        'scenario',
        'sent',
        'processed',
        'dropped',
        'rejected',
        'crashes',
        'rss_start_mb',
        'rss_end_mb',
        'p50_ms',
        'p99_ms',
    ]
    lines = ['| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys)]
    for row in rows:
        values = row.to_json()
        cells = [f'{values[k]:.1f}' if isinstance(values[k], float) else str(values[k]) for k in keys]
        lines.append('| ' + ' | '.join(cells) + ' |')
    notes = [f'- {row.scenario}: {note}' for row in rows for note in row.notes]
    return '\n'.join(lines + ([''] + notes if notes else []))


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Overload and fault scenarios against the detector node.')
    parser.add_argument('--out', type=Path, default=Path('stress_out'), help='folder for stress.json')
    parser.add_argument('--duration-s', type=float, default=15.0, help='seconds each in-process scenario runs')
    parser.add_argument('--model', default='', help='ONNX model (default: the shipped one)')
    parser.add_argument('--scenarios', nargs='+', choices=list(SCENARIOS), default=list(SCENARIOS))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write ``<out>/stress.json``; exit 1 if any scenario crashed."""
    args = get_args_parser().parse_args(argv)
    if args.duration_s <= 0:
        get_args_parser().error('--duration-s must be > 0')
    from anovox_perception.core.detector import resolve_model_path

    model = str(resolve_model_path(args.model))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    rows = run_stress(model, args.duration_s, args.scenarios)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'stress.json').write_text(json.dumps([r.to_json() for r in rows], indent=2) + '\n')
    print(f'model {model}, {args.duration_s:g} s per scenario')
    print(_table(rows))
    print(f'wrote {args.out / "stress.json"}')
    return 1 if any(r.crashes for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
