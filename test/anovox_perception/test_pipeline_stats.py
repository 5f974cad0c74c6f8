"""PipelineStats and assess: per-period counts, rates, percentiles and OK/WARN/ERROR reasons."""

from __future__ import annotations

import pytest

from anovox_perception.core import pipeline_stats as ps


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def healthy_period(stats: ps.PipelineStats, clock: FakeClock, frames: int = 10) -> ps.StatsSnapshot:
    stats.count(ps.CLOUDS_IN, frames)
    stats.count(ps.IMAGES_IN, frames)
    stats.count(ps.PAIRS, frames)
    stats.count(ps.FRAMES_OUT, frames)
    for i in range(frames):
        stats.record_times({'inference': 10.0 + i})
        stats.record_latency(20.0 + i)
    clock.now += 1.0
    return stats.snapshot()


def test_snapshot_reports_deltas_rates_and_percentiles_of_the_period(clock):
    stats = ps.PipelineStats(clock=clock)
    snap = healthy_period(stats, clock)
    assert snap.period_s == 1.0
    assert snap.rate_hz(ps.FRAMES_OUT) == 10.0
    assert snap.stage_ms['inference'].p50 == pytest.approx(14.5)
    assert snap.stage_ms['inference'].max == 19.0
    assert snap.latency_ms.count == 10
    clock.now += 2.0
    stats.count(ps.FRAMES_OUT, 4)
    later = stats.snapshot()
    assert later.deltas[ps.FRAMES_OUT] == 4 and later.totals[ps.FRAMES_OUT] == 14
    assert later.rate_hz(ps.FRAMES_OUT) == 2.0
    assert later.latency_ms is None and later.stage_ms == {}


def test_samples_are_bounded_per_period(clock):
    stats = ps.PipelineStats(max_samples=5, clock=clock)
    for i in range(100):
        stats.record_latency(float(i))
    snap = stats.snapshot()
    assert snap.latency_ms.count == 5 and snap.latency_ms.max == 99.0


def test_a_healthy_period_is_ok(clock):
    stats = ps.PipelineStats(clock=clock)
    assert ps.assess(healthy_period(stats, clock), 10.0, 250.0) == (ps.OK, 'running')


def test_drops_bad_input_lidar_only_slow_output_and_latency_warn_with_reasons(clock):
    stats = ps.PipelineStats(clock=clock)
    stats.count(ps.CLOUDS_IN, 10)
    stats.count(ps.FRAMES_OUT, 3)
    stats.count(ps.DROPPED, 7)
    stats.count(ps.BAD_INPUT_PREFIX + 'image', 2)
    stats.count(ps.LIDAR_ONLY, 3)
    stats.record_latency(900.0)
    clock.now += 1.0
    level, message = ps.assess(stats.snapshot(), 10.0, 250.0)
    assert level == ps.WARN
    for part in (
        'output rate 3.0 Hz below half of 10 Hz',
        'bad input skipped: image x2',
        '7 synced pairs dropped',
        '3 frames ran LiDAR-only',
        'median latency 900 ms above 250 ms',
    ):
        assert part in message


def test_no_clouds_warns_and_every_frame_failing_is_an_error(clock):
    stats = ps.PipelineStats(clock=clock)
    clock.now += 1.0
    assert ps.assess(stats.snapshot(), 10.0, 250.0) == (ps.WARN, 'no point clouds received')
    stats.count(ps.CLOUDS_IN, 5)
    stats.count(ps.INFERENCE_ERRORS, 5)
    clock.now += 1.0
    level, message = ps.assess(stats.snapshot(), 0.0, 250.0)
    assert level == ps.ERROR and message.startswith('inference failed on all 5 frames')


def test_a_fatal_reason_is_an_error_whatever_the_counts(clock):
    stats = ps.PipelineStats(clock=clock)
    level, message = ps.assess(healthy_period(stats, clock), 10.0, 250.0, fatal='backend lost the GPU')
    assert level == ps.ERROR and message == 'backend lost the GPU'


def test_a_silent_lidar_is_an_error_after_the_input_timeout(clock):
    stats = ps.PipelineStats(clock=clock)
    clock.now += 1.0
    snap = stats.snapshot()
    before = ps.Liveness(since_cloud_s=1.5, since_image_s=0.1, timeout_s=2.0)
    assert ps.assess(snap, 10.0, 250.0, liveness=before) == (ps.WARN, 'no point clouds received')
    stopped = ps.Liveness(since_cloud_s=2.5, since_image_s=0.1, timeout_s=2.0)
    level, message = ps.assess(snap, 10.0, 250.0, liveness=stopped)
    assert level == ps.ERROR and message == 'no usable point cloud for 2.5 s (LiDAR stopped? timeout 2 s)'
    off = ps.Liveness(since_cloud_s=99.0, since_image_s=99.0, timeout_s=0.0)
    assert ps.assess(snap, 10.0, 250.0, liveness=off)[0] == ps.WARN


@pytest.mark.parametrize(('mode', 'text'), [('lidar_only', 'clouds run LiDAR-only'), ('skip', 'clouds are skipped')])
def test_a_silent_camera_warns_and_says_what_clouds_do_without_it(clock, mode, text):
    stats = ps.PipelineStats(clock=clock)
    snap = healthy_period(stats, clock)
    silent = ps.Liveness(since_cloud_s=0.1, since_image_s=3.0, timeout_s=2.0, on_missing_camera=mode)
    assert ps.assess(snap, 10.0, 250.0, liveness=silent) == (ps.WARN, f'no usable camera image for 3.0 s: {text}')
    back = ps.Liveness(since_cloud_s=0.1, since_image_s=0.1, timeout_s=2.0, on_missing_camera=mode)
    assert ps.assess(snap, 10.0, 250.0, liveness=back) == (ps.OK, 'running')
