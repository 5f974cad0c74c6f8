"""DetectorNode under bad input and faults, its callbacks driven directly (no executor, no second process).

Bad messages of every kind, fuzzed messages, an intake defect, a backend that fails mid-run,
a camera or LiDAR that stops, and 5x overload: the callbacks never raise, everything is
counted in /diagnostics, the level says what is wrong, and the next good frame is processed.
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from fake_onnx_model import CAMERA, write_fake_model  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from test_intake import BAD_CLOUDS, BAD_IMAGES, calibrated_info, clouds, images  # noqa: E402

from anovox_perception.core import pipeline_stats as ps  # noqa: E402
from anovox_perception.ros import msg_codec  # noqa: E402
from anovox_perception.ros.node import DetectorNode  # noqa: E402

pytestmark = pytest.mark.ros

DOMAIN_ID = 71
STAMP = 1_700_000_100_000_000_000
MS = 1_000_000


class Capture:
    """Stands in for a publisher; keeps what was published."""

    def __init__(self) -> None:
        self.messages: list = []

    def publish(self, msg) -> None:
        self.messages.append(msg)


class DrivenNode:
    """A DetectorNode whose callbacks the test calls; results and diagnostics are captured."""

    def __init__(self, model_path, **overrides) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        params = {
            'model_path': str(model_path),
            'backend': 'onnxruntime',
            'backend_options.num_threads': 1,
            'sync.timeout_s': 0.0,  # a cloud is decided on arrival: paired with what is there, or LiDAR-only
            'warn_throttle_s': 0.0,
            'diagnostics.expected_rate_hz': 0.0,
            **overrides,
        }
        self.node = DetectorNode(
            context=self.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
        )
        self.results: list = []
        self._done = threading.Condition()
        self.node._publish = self._collect
        self.diagnostics = Capture()
        self.node._pub_diag = self.diagnostics

    def _collect(self, result) -> None:
        with self._done:
            self.results.append(result)
            self._done.notify_all()
        self.node._stats.count(ps.FRAMES_OUT)

    def result_for(self, stamp_ns: int, timeout_s: float = 20.0):
        with self._done:
            found = self._done.wait_for(lambda: any(r.stamp_ns == stamp_ns for r in self.results), timeout=timeout_s)
        assert found, f'no result for stamp {stamp_ns}'
        return next(r for r in self.results if r.stamp_ns == stamp_ns)

    def wait_total(self, name: str, value: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.node._stats.total(name) < value:
            assert time.monotonic() < deadline, f'{name} never reached {value}'
            time.sleep(0.005)

    def diagnose(self) -> tuple[int, str, dict[str, str]]:
        self.node._publish_diagnostics()
        (status,) = self.diagnostics.messages[-1].status
        return status.level[0], status.message, {kv.key: kv.value for kv in status.values}

    def send_cloud(self, stamp_ns: int, seed: int = 0) -> None:
        points = np.random.default_rng(seed).uniform([-7, -15, -2, 0], [23, 15, 3, 1], (800, 4)).astype(np.float32)
        self.node._on_points(msg_codec.xyzi_to_pointcloud2(points, _header(stamp_ns, 'lidar')))

    def send_image(self, stamp_ns: int) -> None:
        rgb = np.full((CAMERA.height, CAMERA.width, 3), 90, np.uint8)
        self.node._on_image(msg_codec.rgb_to_image(rgb, _header(stamp_ns, 'camera')))

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _header(stamp_ns: int, frame_id: str):
    from std_msgs.msg import Header

    return Header(stamp=msg_codec.ns_to_stamp(stamp_ns), frame_id=frame_id)


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return write_fake_model(tmp_path_factory.mktemp('model') / 'fake_tiny.onnx')


@pytest.fixture
def driven(model_path):
    node = DrivenNode(model_path)
    yield node
    node.close()


def test_every_kind_of_bad_input_is_counted_and_the_next_good_frame_is_processed(driven):
    for make, _ in BAD_CLOUDS.values():
        driven.node._on_points(make())
    for make, _ in BAD_IMAGES.values():
        driven.node._on_image(make())
    driven.node._on_camera_info(calibrated_info(fx=0.0))
    level, message, values = driven.diagnose()
    assert int(values['total.bad_input.points']) == len(BAD_CLOUDS)
    assert int(values['total.bad_input.image']) == len(BAD_IMAGES)
    assert int(values['total.bad_input.camera_info']) == 1
    assert level == ps.WARN and 'bad input skipped: camera_info x1, image x6, points x8' in message
    driven.send_image(STAMP)
    driven.send_cloud(STAMP)
    assert driven.result_for(STAMP).camera_used


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cloud=clouds(), image=images())
def test_fuzzed_messages_through_the_callbacks_never_raise(driven, cloud, image):
    # Cheap per message: the intake's own fuzzing covers 500 per kind; this checks the callback wiring.
    driven.node._on_points(cloud)
    driven.node._on_image(image)


def test_a_defect_inside_the_intake_is_counted_as_bad_input_not_raised(driven, monkeypatch):
    def broken(msg):
        raise RuntimeError('decoder defect')

    monkeypatch.setattr(driven.node._intake, 'cloud', broken)
    driven.send_cloud(STAMP)
    assert driven.node._stats.total(ps.BAD_INPUT_PREFIX + 'points') == 1


def test_backend_failures_drop_the_frame_are_counted_go_error_when_repeated_and_the_node_recovers(driven):
    backend = driven.node._detector.backend
    real_run = backend.run
    calls = []

    def failing(inputs):
        calls.append(1)
        raise RuntimeError('CUDA error: an illegal memory access was encountered')

    backend.run = failing
    try:
        for i in range(3):
            driven.send_cloud(STAMP + i * 100 * MS)
            driven.wait_total(ps.INFERENCE_ERRORS, i + 1)
        level, message, values = driven.diagnose()
        assert level == ps.ERROR and 'inference failed on all 3 frames' in message
        assert values['total.inference_errors'] == '3' and driven.results == []
        assert driven.node._worker.is_alive()
    finally:
        backend.run = real_run
    driven.send_cloud(STAMP + 1000 * MS)
    driven.result_for(STAMP + 1000 * MS)
    assert driven.diagnose()[0] != ps.ERROR


def test_a_camera_that_stops_gives_lidar_only_frames_a_warning_and_recovers(driven):
    driven.send_image(STAMP)
    driven.send_cloud(STAMP)
    assert driven.result_for(STAMP).camera_used
    driven.diagnose()
    driven.node._last_image_s -= 10.0  # the camera has been silent for 10 s
    later = STAMP + 5_000 * MS
    driven.send_cloud(later)
    assert not driven.result_for(later).camera_used
    level, message, _ = driven.diagnose()
    assert level == ps.WARN and re.search(r'no usable camera image for 10\.\d s: clouds run LiDAR-only', message)
    back = later + 100 * MS
    driven.send_image(back)
    driven.send_cloud(back)
    assert driven.result_for(back).camera_used
    assert 'no usable camera image' not in driven.diagnose()[1]


def test_a_lidar_that_stops_is_an_error_after_the_input_timeout(driven):
    driven.send_cloud(STAMP)
    driven.result_for(STAMP)
    driven.diagnose()
    driven.node._last_cloud_s -= 10.0  # the LiDAR has been silent for 10 s (input_timeout_s: 2)
    level, message, _ = driven.diagnose()
    assert level == ps.ERROR
    assert re.search(r'no usable point cloud for 10\.\d s \(LiDAR stopped\? timeout 2 s\)', message)
    driven.send_cloud(STAMP + 100 * MS)
    driven.result_for(STAMP + 100 * MS)
    assert driven.diagnose()[0] != ps.ERROR


def test_overload_drops_older_pairs_counts_them_and_always_processes_the_newest(driven):
    backend = driven.node._detector.backend
    real_run = backend.run

    def slow(inputs):
        time.sleep(0.02)  # a model slower than the input
        return real_run(inputs)

    backend.run = slow
    try:
        stamps = [STAMP + i * 4 * MS for i in range(40)]  # every 4 ms, 5x faster than 20 ms inference
        for stamp in stamps:
            driven.send_cloud(stamp, seed=1)
            time.sleep(0.004)
        driven.result_for(stamps[-1])
    finally:
        backend.run = real_run
    stats = driven.node._stats
    pairs, out, dropped = stats.total(ps.PAIRS), stats.total(ps.FRAMES_OUT), stats.total(ps.DROPPED)
    assert pairs == len(stamps) and dropped > 0
    assert out + dropped == pairs, 'every synced pair is processed or counted as dropped'
    assert [r.stamp_ns for r in driven.results] == sorted(r.stamp_ns for r in driven.results), 'never an older frame'
    _, message, values = driven.diagnose()
    assert int(values['total.dropped_pairs']) == dropped and 'synced pairs dropped' in message
