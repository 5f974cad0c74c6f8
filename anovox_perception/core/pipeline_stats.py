"""Counters, rates, per-stage times and health levels of the detector pipeline.

Plain Python (no rclpy): the node counts events and records timings from any
thread, takes a `StatsSnapshot` once per diagnostics period and turns it into a
DiagnosticArray; `assess` decides OK / WARN / ERROR with the reasons spelled out.
Samples are kept per period and bounded, so memory does not grow with run time.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from anovox_perception.core.parameters import spec_by_name

__all__ = [
    'BAD_INPUT_PREFIX',
    'CAMERA_INFO_IN',
    'CLOUDS_IN',
    'DROPPED',
    'ERROR',
    'FRAMES_OUT',
    'IMAGES_IN',
    'INFERENCE_ERRORS',
    'INPUT_NOTE_PREFIX',
    'Liveness',
    'LIDAR_ONLY',
    'NONFINITE_POINTS',
    'OK',
    'PAIRS',
    'PipelineStats',
    'SKIPPED_NO_CAMERA',
    'StatsSnapshot',
    'WARN',
    'Percentiles',
    'assess',
]

# Levels, equal to diagnostic_msgs/DiagnosticStatus OK, WARN, ERROR.
OK, WARN, ERROR = 0, 1, 2

CLOUDS_IN = 'clouds_in'
IMAGES_IN = 'images_in'
CAMERA_INFO_IN = 'camera_info_in'
PAIRS = 'pairs'
LIDAR_ONLY = 'lidar_only'
SKIPPED_NO_CAMERA = 'skipped_no_camera'
DROPPED = 'dropped_pairs'
FRAMES_OUT = 'frames_out'
INFERENCE_ERRORS = 'inference_errors'
NONFINITE_POINTS = 'nonfinite_points'
BAD_INPUT_PREFIX = 'bad_input.'  # + 'points', 'image', 'compressed_image', 'camera_info', 'frame'
# Usable but suspicious input (counted and warned about, still processed): + 'no_intensity', 'is_dense',
# 'camera_info_size', 'stamp_repeated.<topic>', 'stamp_out_of_order.<topic>', 'stamp_jump_back.<topic>', ...
INPUT_NOTE_PREFIX = 'input_note.'


@dataclass(frozen=True)
class Percentiles:
    """Summary of one period's samples (ms)."""

    p50: float
    p99: float
    max: float
    count: int

    @classmethod
    def of(cls, samples: list[float]) -> Percentiles | None:
        """Summary of ``samples``, or None when there are none."""
        if not samples:
            return None
        arr = np.asarray(samples, dtype=np.float64)
        return cls(float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), float(arr.max()), len(samples))


@dataclass(frozen=True)
class StatsSnapshot:
    """What happened since the previous snapshot.

    Attributes:
        period_s: Seconds covered.
        totals: Counter totals since start.
        deltas: Counter increments during the period.
        stage_ms: Per-stage time summaries during the period.
        latency_ms: Pipeline latency summary (cloud received -> outputs published), or None.
    """

    period_s: float
    totals: dict[str, int]
    deltas: dict[str, int]
    stage_ms: dict[str, Percentiles] = field(default_factory=dict)
    latency_ms: Percentiles | None = None

    def rate_hz(self, name: str) -> float:
        """Events per second of counter ``name`` during the period."""
        return self.deltas.get(name, 0) / self.period_s if self.period_s > 0 else 0.0

    @property
    def bad_input(self) -> dict[str, int]:
        """Bad-input counts during the period, by input kind."""
        n = len(BAD_INPUT_PREFIX)
        return {k[n:]: v for k, v in self.deltas.items() if k.startswith(BAD_INPUT_PREFIX) and v}

    @property
    def input_notes(self) -> dict[str, int]:
        """Suspicious-but-used input counts during the period, by what was noted."""
        n = len(INPUT_NOTE_PREFIX)
        return {k[n:]: v for k, v in self.deltas.items() if k.startswith(INPUT_NOTE_PREFIX) and v}


@dataclass(frozen=True)
class Liveness:
    """How long the inputs have been silent, for `assess`.

    Attributes:
        since_cloud_s: Seconds since the last usable point cloud (since start when none came yet).
        since_image_s: Seconds since the last usable camera image (since start when none came yet).
        timeout_s: Silence after which a topic counts as stopped; 0 disables the check.
        on_missing_camera: What clouds do without a camera (``lidar_only`` or ``skip``), for the message.
    """

    since_cloud_s: float
    since_image_s: float
    timeout_s: float
    on_missing_camera: str = spec_by_name('sync.on_missing_camera').default


class PipelineStats:
    """Thread-safe event counters and timing samples.

    Args:
        max_samples: Samples kept per series and period (older ones are discarded).
        clock: Monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, max_samples: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._max = max_samples
        self._totals: dict[str, int] = defaultdict(int)
        self._at_last: dict[str, int] = {}
        self._stages: dict[str, deque[float]] = {}
        self._latency: deque[float] = deque(maxlen=max_samples)
        self._last_s = clock()

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        with self._lock:
            self._totals[name] += n

    def total(self, name: str) -> int:
        """Counter ``name`` since start."""
        with self._lock:
            return self._totals.get(name, 0)

    def record_times(self, timings_ms: Mapping[str, float]) -> None:
        """Record one frame's per-stage times (ms)."""
        with self._lock:
            for stage, ms in timings_ms.items():
                self._stages.setdefault(stage, deque(maxlen=self._max)).append(float(ms))

    def record_latency(self, latency_ms: float) -> None:
        """Record one frame's pipeline latency (ms)."""
        with self._lock:
            self._latency.append(float(latency_ms))

    def snapshot(self) -> StatsSnapshot:
        """Summarise the period since the previous call and start a new one."""
        with self._lock:
            now = self._clock()
            period, self._last_s = max(now - self._last_s, 0.0), now
            totals = dict(self._totals)
            deltas = {k: v - self._at_last.get(k, 0) for k, v in totals.items()}
            self._at_last = totals
            stages = {k: Percentiles.of(list(v)) for k, v in self._stages.items()}
            latency = Percentiles.of(list(self._latency))
            for series in self._stages.values():
                series.clear()
            self._latency.clear()
        return StatsSnapshot(period, totals, deltas, {k: v for k, v in stages.items() if v}, latency)


def assess(
    snap: StatsSnapshot,
    expected_rate_hz: float,
    max_latency_ms: float,
    fatal: str | None = None,
    liveness: Liveness | None = None,
) -> tuple[int, str]:
    """Health level and a one-line reason from a snapshot.

    Args:
        snap: The period's statistics.
        expected_rate_hz: Expected LiDAR rate; 0 disables the output-rate check.
        max_latency_ms: Median pipeline latency above which the level is WARN.
        fatal: A reason the pipeline cannot run at all (e.g. the backend failed), or None.
        liveness: Input silence; LiDAR silent beyond the timeout is ERROR, the camera WARN.

    Returns:
        ``(level, message)`` with level OK, WARN or ERROR.
    """
    errors, warnings = [], []
    if fatal:
        errors.append(fatal)
    clouds = snap.deltas.get(CLOUDS_IN, 0)
    out = snap.deltas.get(FRAMES_OUT, 0)
    failed = snap.deltas.get(INFERENCE_ERRORS, 0)
    if failed and not out:
        errors.append(f'inference failed on all {failed} frames')
    elif failed:
        warnings.append(f'inference failed on {failed} frames')
    lidar_stopped = liveness is not None and liveness.timeout_s > 0 and liveness.since_cloud_s >= liveness.timeout_s
    if lidar_stopped:
        errors.append(
            f'no usable point cloud for {liveness.since_cloud_s:.1f} s '
            f'(LiDAR stopped? timeout {liveness.timeout_s:g} s)'
        )
    elif liveness is not None and liveness.timeout_s > 0 and liveness.since_image_s >= liveness.timeout_s:
        fallback = 'clouds run LiDAR-only' if liveness.on_missing_camera == 'lidar_only' else 'clouds are skipped'
        warnings.append(f'no usable camera image for {liveness.since_image_s:.1f} s: {fallback}')
    if not clouds:
        if not lidar_stopped:
            warnings.append('no point clouds received')
    elif expected_rate_hz > 0 and snap.rate_hz(FRAMES_OUT) < 0.5 * expected_rate_hz:
        warnings.append(f'output rate {snap.rate_hz(FRAMES_OUT):.1f} Hz below half of {expected_rate_hz:g} Hz')
    bad = snap.bad_input
    if bad:
        warnings.append('bad input skipped: ' + ', '.join(f'{k} x{v}' for k, v in sorted(bad.items())))
    notes = snap.input_notes
    if notes:
        warnings.append('suspicious input: ' + ', '.join(f'{k} x{v}' for k, v in sorted(notes.items())))
    if snap.deltas.get(DROPPED, 0):
        warnings.append(f'{snap.deltas[DROPPED]} synced pairs dropped (inference slower than input)')
    if snap.deltas.get(SKIPPED_NO_CAMERA, 0):
        warnings.append(f'{snap.deltas[SKIPPED_NO_CAMERA]} clouds skipped without a camera image')
    if snap.deltas.get(LIDAR_ONLY, 0):
        warnings.append(f'{snap.deltas[LIDAR_ONLY]} frames ran LiDAR-only (no camera image)')
    if snap.latency_ms is not None and snap.latency_ms.p50 > max_latency_ms:
        warnings.append(f'median latency {snap.latency_ms.p50:.0f} ms above {max_latency_ms:g} ms')
    if errors:
        return ERROR, '; '.join(errors + warnings)
    if warnings:
        return WARN, '; '.join(warnings)
    return OK, 'running'
