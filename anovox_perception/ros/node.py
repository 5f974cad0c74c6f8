"""The anovox_detector ROS 2 node: a thin shell around `Detector`.

    anovox-detect --params-file config/detector.yaml
    anovox-detect --ros-args --params-file config/detector.yaml -r ~/input/points:=/velodyne_points
    ros2 launch anovox_perception detect.launch.py

Wiring only: parameters (declared from parameters.PARAMETERS, validated on
change), sensor-data QoS subscriptions whose callbacks decode the message
(cheap) and feed the synchroniser, one inference worker thread that takes the
newest synced pair (older unread pairs are dropped and counted, so memory
stays bounded whatever the input rate), publishers stamped with the cloud's
stamp and frame, and /diagnostics. Nothing a publisher sends can crash it: bad
input is counted, warned about (throttled) and skipped.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from anovox_perception.core import pipeline_stats as ps
from anovox_perception.core.allocator import retain_freed_memory
from anovox_perception.core.detector import Detector, DetectorConfig, FrameResult
from anovox_perception.core.errors import AnovoxError, ConfigError, DecodeError
from anovox_perception.core.handoff import LatestSlot
from anovox_perception.core.intake import InputIntake
from anovox_perception.core.parameters import NODE_NAME, PARAMETERS, ParamValue, spec_by_name, validate_values
from anovox_perception.core.sync import ApproximateSync, LidarDrivenSync, StampedMsg, SyncedPair, make_sync
from anovox_perception.ros import msg_codec

__all__ = [
    'INPUT_CAMERA_INFO',
    'INPUT_COMPRESSED_IMAGE',
    'INPUT_IMAGE',
    'INPUT_POINTS',
    'OUTPUT_MARKERS',
    'OUTPUT_SCORE_GRID',
    'OUTPUT_VOXEL_SCORES',
    'DetectorNode',
    'declare_detector_parameters',
    'main',
    'ros_argv',
]

INPUT_IMAGE = '~/input/image'
INPUT_COMPRESSED_IMAGE = '~/input/image/compressed'
INPUT_POINTS = '~/input/points'
INPUT_CAMERA_INFO = '~/input/camera_info'
OUTPUT_SCORE_GRID = '~/output/score_grid'
OUTPUT_VOXEL_SCORES = '~/output/voxel_scores'
OUTPUT_MARKERS = '~/output/markers'

# Outputs: reliable so recorders and RViz get every frame; shallow so a slow subscriber cannot hold memory.
_OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
# Shutdown waits this long for a frame in inference (SIGINT/SIGTERM must end the node within 2 s).
_WORKER_JOIN_S = 1.5
# Run-time sync parameters: a change rebuilds the synchroniser.
_SYNC_FIELDS = tuple(spec.name for spec in PARAMETERS if spec.name.startswith('sync.') and not spec.read_only)


def _descriptor(spec: Any) -> ParameterDescriptor:
    text = spec.description + (f' One of: {", ".join(spec.choices)}.' if spec.choices else '')
    descriptor = ParameterDescriptor(name=spec.name, description=text, read_only=spec.read_only)
    if spec.choices:
        descriptor.additional_constraints = f'one of {list(spec.choices)}'
    if spec.type_name == 'double' and spec.minimum is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=spec.minimum, to_value=spec.maximum)]
    if spec.type_name == 'integer' and spec.minimum is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.minimum), to_value=int(spec.maximum), step=1)]
    return descriptor


def _plain(value: Any) -> Any:
    """rclpy array parameter values (array.array) as lists, for validation."""
    return list(value) if isinstance(value, (array.array, tuple)) else value


def declare_detector_parameters(node: Node) -> dict[str, ParamValue]:
    """Declare every detector parameter on ``node`` and return the values in force.

    Raises:
        ConfigError: A value (from a params file or overrides) is invalid.
    """
    for spec in PARAMETERS:
        default = list(spec.default) if spec.type_name == 'double_array' else spec.default
        node.declare_parameter(spec.name, default, _descriptor(spec))
    values = {spec.name: _plain(node.get_parameter(spec.name).value) for spec in PARAMETERS}
    return validate_values(values, where=f'node {node.get_fully_qualified_name()} parameters')


class DetectorNode(Node):
    """Subscribes camera + LiDAR, runs `Detector` in a worker thread, publishes scores and markers.

    Args:
        **kwargs: Passed to `rclpy.node.Node` (context, parameter_overrides, cli_args, ...).

    Raises:
        ConfigError, ModelCardError, BackendError: The parameters or the model are unusable.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._values = declare_detector_parameters(self)
        self._detector = Detector(DetectorConfig.from_parameters(self._values))
        self.get_logger().info(
            f'model {self._detector.card.name!r} ({self._detector.model_path}) on {self._detector.backend_name}, '
            f'occupancy threshold {self._detector.occupancy_threshold:g}, anomaly threshold '
            f'{self._detector.operating_point.anomaly_threshold:g}, markers need '
            f'{self._detector.operating_point.min_component_points} LiDAR points: {self._detector.backend_reason}'
        )
        self._stats = ps.PipelineStats()
        self._slot: LatestSlot[SyncedPair] = LatestSlot()
        self._last_warn_s: dict[str, float] = {}
        self._warn_lock = threading.Lock()
        self._intake = InputIntake(
            self._stats,
            self._warn_throttled,
            self._now_ns,
            intensity_used=self._detector.uses_intensity,
        )
        # Monotonic arrival of the last usable cloud / image (start time until one comes), for the liveness check.
        self._last_cloud_s = self._last_image_s = time.monotonic()
        self._sync_lock = threading.Lock()
        self._sync_counts_seen: dict[str, int] = {}
        self._sync = make_sync(self._values, callback=self._on_pair)

        self._pub_grid = self.create_publisher(OccupancyGrid, OUTPUT_SCORE_GRID, _OUTPUT_QOS)
        self._pub_voxels = self.create_publisher(PointCloud2, OUTPUT_VOXEL_SCORES, _OUTPUT_QOS)
        self._pub_markers = self.create_publisher(MarkerArray, OUTPUT_MARKERS, _OUTPUT_QOS)
        self._pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(PointCloud2, INPUT_POINTS, self._on_points, qos_profile_sensor_data)
        self.create_subscription(Image, INPUT_IMAGE, self._on_image, qos_profile_sensor_data)
        self.create_subscription(CompressedImage, INPUT_COMPRESSED_IMAGE, self._on_compressed, qos_profile_sensor_data)
        self.create_subscription(CameraInfo, INPUT_CAMERA_INFO, self._on_camera_info, qos_profile_sensor_data)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        # Wall-clock timers: diagnostics and the sync timeout must run even when /clock pauses.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(float(self._values['diagnostics.period_s']), self._publish_diagnostics, clock=steady)
        if self._values['sync.policy'] == 'lidar_driven':
            self.create_timer(0.02, self._poll_sync, clock=steady)
        # Inference runs in its own thread so subscription callbacks never wait for the model.
        self._worker = threading.Thread(target=self._work, name='anovox_inference', daemon=True)
        self._worker.start()

    # ----------------------------------------------------------------- inputs
    # Each callback hands the message to the intake (decode, checks, counters, throttled
    # warnings) and the result to the synchroniser; nothing raised may escape a callback.
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_points(self, msg: PointCloud2) -> None:
        self._feed(self._intake.cloud, msg, 'points')

    def _on_image(self, msg: Image) -> None:
        self._feed(self._intake.image, msg, 'image')

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._feed(self._intake.compressed_image, msg, 'image')

    def _feed(self, intake: Callable[[Any], StampedMsg | None], msg: Any, topic: str) -> None:
        try:
            stamped = intake(msg)
            if stamped is None:
                return
            # Liveness counts usable messages only: a sensor sending garbage is as good as silent.
            sync = self._current_sync()
            if topic == 'points':
                self._last_cloud_s = time.monotonic()
                sync.add_points(stamped)
            else:
                self._last_image_s = time.monotonic()
                sync.add_image(stamped)
        except Exception as err:  # a defect, not bad input: still the node must keep running
            self._intake.bad_input(topic, err)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            camera = self._intake.camera_info(msg)
            if camera is not None:
                self._detector.set_camera_info(camera)
        except Exception as err:
            self._intake.bad_input('camera_info', err)

    def _warn_throttled(self, kind: str, text: str) -> None:
        # Throttled per kind, so a flood of bad clouds cannot hide a bad image stream.
        now = time.monotonic()
        with self._warn_lock:
            if now - self._last_warn_s.get(kind, -1e18) < float(self._values['warn_throttle_s']):
                return
            self._last_warn_s[kind] = now
        self.get_logger().warning(text)

    # ------------------------------------------------------------------- sync
    def _current_sync(self) -> LidarDrivenSync | ApproximateSync:
        with self._sync_lock:
            return self._sync

    def _poll_sync(self) -> None:
        sync = self._current_sync()
        if isinstance(sync, LidarDrivenSync):
            sync.poll(self._now_ns())

    def _on_pair(self, pair: SyncedPair) -> None:
        # Runs in the subscription callback that completed the pair: hand over, never wait.
        self._stats.count(ps.PAIRS)
        if pair.image is None:
            self._stats.count(ps.LIDAR_ONLY)
        if self._slot.put(pair) is not None:
            self._stats.count(ps.DROPPED)

    # ----------------------------------------------------------------- worker
    def _work(self) -> None:
        while True:
            pair = self._slot.take()
            if pair is None:
                return  # closed
            try:
                result = self._detector.process(pair)
            except DecodeError as err:  # an empty or all-NaN cloud, a malformed image
                self._intake.bad_input('frame', err)
                continue
            except Exception as err:
                self._stats.count(ps.INFERENCE_ERRORS)
                self._warn_throttled('inference', f'inference failed, frame skipped: {type(err).__name__}: {err}')
                continue
            if self._slot.closed:
                return
            self._publish(result)

    def _publish(self, result: FrameResult) -> None:
        t0 = time.perf_counter()
        header = msg_codec.header(result.stamp_ns, result.frame_id)
        try:
            self._pub_grid.publish(msg_codec.make_occupancy_grid(result.score_grid, result.grid, header))
            self._pub_voxels.publish(msg_codec.xyzi_to_pointcloud2(result.voxel_scores, header, 'score'))
            if result.markers:
                self._pub_markers.publish(msg_codec.markers_to_msg(result.markers, header))
        except Exception as err:
            if not self._slot.closed:
                self._stats.count(ps.INFERENCE_ERRORS)
                self._warn_throttled('publish', f'publishing failed: {type(err).__name__}: {err}')
            return
        timings = dict(result.timings_ms)
        timings['publish'] = (time.perf_counter() - t0) * 1e3
        self._stats.record_times(timings)
        if result.received_s is not None:
            self._stats.record_latency((time.monotonic() - result.received_s) * 1e3)
        self._stats.count(ps.FRAMES_OUT)

    # ------------------------------------------------------------- parameters
    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        changes: dict[str, Any] = {}
        for param in params:
            if param.name == 'use_sim_time':
                continue  # rclpy's own
            try:
                spec = spec_by_name(param.name)
            except ConfigError as err:
                return SetParametersResult(successful=False, reason=str(err))
            if spec.read_only:
                return SetParametersResult(successful=False, reason=f'{param.name} is read-only; restart the node')
            changes[param.name] = _plain(param.value)
        if not changes:
            return SetParametersResult(successful=True)
        try:
            checked = validate_values(changes, where='set_parameters')
            values = {**self._values, **checked}
            config = DetectorConfig.from_parameters(values)
            self._detector.reconfigure(config)
        except AnovoxError as err:
            return SetParametersResult(successful=False, reason=str(err))
        self._values = values
        if any(name in checked for name in _SYNC_FIELDS):
            new_sync = make_sync(values, callback=self._on_pair)
            with self._sync_lock:
                self._sync = new_sync  # buffered messages of the old one are dropped: at most a frame
        self.get_logger().info(f'parameters changed: {checked}')
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        sync_counts = self._current_sync().counters()
        skipped = sync_counts.get('skipped', 0)
        new_skips = skipped - self._sync_counts_seen.get('skipped', 0)
        if new_skips > 0:
            self._stats.count(ps.SKIPPED_NO_CAMERA, new_skips)
        self._sync_counts_seen = sync_counts
        snap = self._stats.snapshot()
        fatal = None if self._worker.is_alive() or self._slot.closed else 'the inference worker thread stopped'
        now = time.monotonic()
        liveness = ps.Liveness(
            since_cloud_s=now - self._last_cloud_s,
            since_image_s=now - self._last_image_s,
            timeout_s=float(self._values['diagnostics.input_timeout_s']),
            on_missing_camera=str(self._values['sync.on_missing_camera']),
        )
        level, message = ps.assess(
            snap,
            float(self._values['diagnostics.expected_rate_hz']),
            float(self._values['diagnostics.max_latency_ms']),
            fatal,
            liveness,
        )
        values = [
            ('backend', self._detector.backend_name),
            ('model', self._detector.card.name),
            ('occupancy_threshold', f'{self._detector.occupancy_threshold:g}'),
            ('anomaly_threshold', f'{self._detector.operating_point.anomaly_threshold:g}'),
            ('min_component_points', str(self._detector.operating_point.min_component_points)),
            ('period_s', f'{snap.period_s:.2f}'),
        ]
        for name in (ps.CLOUDS_IN, ps.IMAGES_IN, ps.CAMERA_INFO_IN, ps.PAIRS, ps.FRAMES_OUT):
            values.append((f'rate_hz.{name}', f'{snap.rate_hz(name):.2f}'))
        values.extend((f'total.{name}', str(count)) for name, count in sorted(snap.totals.items()))
        values.extend((f'sync.{name}', str(count)) for name, count in sorted(sync_counts.items()))
        for stage, summary in sorted(snap.stage_ms.items()):
            values.append((f'time_ms.{stage}.p50', f'{summary.p50:.2f}'))
            values.append((f'time_ms.{stage}.max', f'{summary.max:.2f}'))
        if snap.latency_ms is not None:
            values.append(('latency_ms.p50', f'{snap.latency_ms.p50:.2f}'))
            values.append(('latency_ms.p99', f'{snap.latency_ms.p99:.2f}'))
        status = DiagnosticStatus(
            level=bytes([level]),
            name=f'{self.get_name()}: pipeline',
            message=message,
            hardware_id=self._detector.backend_name,
            values=[KeyValue(key=k, value=v) for k, v in values],
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pub_diag.publish(msg)

    # ---------------------------------------------------------------- cleanup
    def destroy_node(self) -> None:
        """Stop the worker, release the backend, then destroy the ROS entities.

        Safe on a node whose constructor was interrupted (Ctrl-C while the model loads,
        a bad model): rclpy's context shutdown destroys every node it tracks, built or not.
        """
        slot = getattr(self, '_slot', None)
        if slot is not None:
            slot.close()
        worker = getattr(self, '_worker', None)
        if worker is not None and worker.is_alive():
            worker.join(timeout=_WORKER_JOIN_S)
        detector = getattr(self, '_detector', None)
        if worker is not None and worker.is_alive():
            # Still inside one inference call: releasing the backend under it could crash the process.
            # The thread is a daemon, so the process still exits; the OS frees the backend.
            self.get_logger().warning(f'inference still running after {_WORKER_JOIN_S:g} s; not waiting for it')
        elif detector is not None:
            detector.close()
        super().destroy_node()


def ros_argv(argv: Sequence[str]) -> list[str]:
    """Command line -> rclpy arguments: ``--params-file F`` becomes ``--ros-args --params-file F``.

    ``--ros-args ... [--]`` sections pass through unchanged.

    Raises:
        SystemExit: On unknown plain arguments (argparse prints the usage).
    """
    argv = list(argv)
    prog, rest = (argv[0], argv[1:]) if argv else ('anovox-detect', [])
    plain, ros = [], []
    i = 0
    while i < len(rest):
        if rest[i] == '--ros-args':
            end = rest.index('--', i) if '--' in rest[i:] else len(rest)
            ros.extend(rest[i : end + 1] if end < len(rest) else rest[i:end])
            i = end + 1
        else:
            plain.append(rest[i])
            i += 1
    parser = argparse.ArgumentParser(
        prog=prog,
        description='AnoVox camera+LiDAR road-anomaly detector node (ROS 2).',
        epilog='Any ROS 2 arguments may follow --ros-args, e.g. -r ~/input/points:=/lidar -p backend:=onnxruntime.',
    )
    parser.add_argument(
        '--params-file', action='append', default=[], metavar='YAML', help='ROS 2 parameter file (repeatable)'
    )
    args = parser.parse_args(plain)
    translated = [arg for path in args.params_file for arg in ('--params-file', path)]
    return [prog, *(['--ros-args', *translated, '--'] if translated else []), *ros]


@contextlib.contextmanager
def _stop_signals_ignored(restore: bool = True) -> Iterator[None]:
    """Ignore further SIGINT / SIGTERM while the node shuts down.

    The first signal already stopped the executor; a second Ctrl-C (or a launch
    SIGTERM after SIGINT) arriving in ``destroy_node`` would otherwise raise
    KeyboardInterrupt there: a traceback, a negative exit status and a worker left
    running. Shutdown is bounded (the worker join has a timeout), so nothing needs
    to interrupt it. Signal handlers can only be set from the main thread.

    Args:
        restore: Put the previous handlers back afterwards. A process that exits next
            keeps ignoring: Python's teardown resets SIGINT to the default action, so a
            signal then would still end the process with -2.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in stop_signals}
    for sig in stop_signals:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        if restore:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _shut_down(node: DetectorNode | None, exiting: bool) -> None:
    """Destroy the node (worker joined, backend released) and shut rclpy down, uninterruptibly."""
    with _stop_signals_ignored(restore=not exiting):
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``anovox-detect``; returns the process exit status.

    SIGINT and SIGTERM stop it with status 0 (once or repeatedly, while it starts,
    spins or shuts down); a configuration or model it cannot use exits with 2 and
    one ``cannot start:`` line.

    Args:
        argv: Command line; None (the console script, ``python -m``) reads ``sys.argv`` and
            treats the call as the whole process: stop signals stay ignored from shutdown
            until it exits. With an explicit ``argv`` the signal handlers are restored.
    """
    exiting = argv is None
    args = ros_argv(sys.argv if argv is None else argv)
    if exiting:
        retain_freed_memory()  # process-wide: per-frame arrays reuse pages instead of faulting (allocator.py)
    rclpy.init(args=args)
    node = None
    status = 0
    try:
        node = DetectorNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except AnovoxError as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {_one_line(str(err))}')
        status = 2
    except Exception:
        if rclpy.ok():
            raise
        # A stop signal while starting: rclpy's signal handler shut the context down under the
        # constructor (or before the executor spun), whose next rcl call then fails. A normal stop.
        rclpy.logging.get_logger(NODE_NAME).info('stopped while starting')
    finally:
        _shut_down(node, exiting)
    return status


def _one_line(text: str) -> str:
    """``text`` with line breaks folded, so a start-up failure is one log line."""
    return ' '.join(part.strip() for part in text.splitlines() if part.strip())


if __name__ == '__main__':
    sys.exit(main())
