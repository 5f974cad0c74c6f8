"""Run the detector node on a bag over real ROS 2 topics and read back what it published.

Three processes on loopback, as a user would run them: ``anovox-detect`` (the
node), the recorder (``python -m anovox_perception.tools.recorder``, like ``ros2 bag
record``) and ``anovox-replay`` (like ``ros2 bag play``). Each run uses its own
``ROS_DOMAIN_ID`` with discovery limited to this machine, so runs in parallel do
not hear each other. The recorder records the node's outputs, ``/diagnostics``
and the input clouds; the receive times of a cloud and of the outputs stamped
like it give the end-to-end latency of that frame, measured outside the node.

Used by ``make demo`` (anovox_training.integration.demo) and the end-to-end test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from anovox_perception.core import msg_decode
from anovox_perception.core.errors import AnovoxError, DataError
from anovox_perception.core.package_data import find_data_file
from anovox_perception.core.parameters import NODE_NAME
from anovox_perception.tools.bag_reader import BagReader
from anovox_perception.tools.bags import BagSummary, BagTiming, BagTopics, write_bag
from anovox_training.data.reader import ScenarioReader
from anovox_training.data.to_bag import scenario_frames

__all__ = [
    'FASTDDS_PROFILE',
    'FrameOutput',
    'NodeRun',
    'NodeRunError',
    'RunOptions',
    'output_topics',
    'read_diagnostics',
    'read_ground_truth',
    'read_node_outputs',
    'run_node_on_bag',
    'write_scenario_bag',
]

_PROFILE_NAME = 'fastdds_large_data.xml'
# From the package's config/ (source tree first, then where colcon / pip install the data files); None if absent.
FASTDDS_PROFILE = find_data_file('config', _PROFILE_NAME)


class NodeRunError(AnovoxError, RuntimeError):
    """A process of the run failed to start or exited with an error."""


def output_topics(node_name: str = NODE_NAME, namespace: str = '') -> dict[str, str]:
    """The node's output topic names: ``score_grid``, ``voxel_scores``, ``markers``."""
    base = f'{namespace.rstrip("/")}/{node_name}/output'
    return {name: f'{base}/{name}' for name in ('score_grid', 'voxel_scores', 'markers')}


def write_scenario_bag(
    scenario_dir: str | Path,
    out: str | Path,
    *,
    timing: BagTiming | None = None,
    frame_ids: Sequence[int] | None = None,
) -> BagSummary:
    """Write a scenario (all frames, or ``frame_ids``) as a bag, with ``timing``'s sensor stamps."""
    reader = ScenarioReader(scenario_dir)
    return write_bag(
        out,
        scenario_frames(reader, frame_ids),
        scenario=reader.name,
        camera=reader.camera,
        T_cam_lidar=reader.T_cam_lidar,
        timing=timing,
    )


@dataclass(frozen=True)
class RunOptions:
    """One node run.

    Attributes:
        model_path: The ONNX model the node loads.
        bag: The input bag (written by `write_scenario_bag` or anovox-make-bag).
        work_dir: Where the recorded bag and the process logs go (created).
        backend: Node backend parameter.
        rate: Replay speed factor.
        domain_id: ROS_DOMAIN_ID of the three processes (0..101 on loopback).
        params: Extra node parameters (name -> value), passed as ``-p name:=value``.
        topics: The bag's topics and frames.
        startup_timeout_s: Longest wait for the node to load its model and for the recorder to subscribe.
        replay_delay_s: Wall-clock wait between the replay's publishers appearing and its first message,
            so that the recorder, which subscribes to the input clouds only then, records every frame.
        grace_s: Time given to the node after the last message to publish its last outputs.
    """

    model_path: Path
    bag: Path
    work_dir: Path
    backend: str = 'auto'
    rate: float = 1.0
    domain_id: int = 42
    params: dict[str, Any] = field(default_factory=dict)
    topics: BagTopics = field(default_factory=BagTopics)
    startup_timeout_s: float = 90.0
    replay_delay_s: float = 3.0
    grace_s: float = 3.0


@dataclass(frozen=True)
class NodeRun:
    """What a run left behind."""

    recorded_bag: Path
    node_log: Path
    recorder_log: Path
    replay_log: Path
    wall_s: float


def _env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['PYTHONUNBUFFERED'] = '1'
    # Clouds and images exceed Fast DDS's default shared-memory segment; see the profile's comment.
    if FASTDDS_PROFILE is not None:
        env.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(FASTDDS_PROFILE))
    return env


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def _wait_for_lines(log: Path, needles: Sequence[str], proc: subprocess.Popen, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        text = log.read_text(errors='replace') if log.exists() else ''
        if all(n in text for n in needles):
            return
        if proc.poll() is not None:
            msg = f'{what} exited with status {proc.returncode} before it was ready; log {log}:\n{text[-3000:]}'
            raise NodeRunError(msg)
        if time.monotonic() > deadline:
            waited = f'{what} was not ready after {timeout_s:.0f} s (waiting for {list(needles)})'
            msg = f'{waited}; log {log}:\n{text[-3000:]}'
            raise NodeRunError(msg)
        time.sleep(0.05)


def _stop(proc: subprocess.Popen, timeout_s: float = 20.0) -> int:
    """SIGINT, then SIGKILL if it does not exit in time; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextlib.contextmanager
def _started(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen, IO[str]]]:
    handle = log.open('w')
    proc = subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, handle
    finally:
        _stop(proc)
        handle.close()


def run_node_on_bag(options: RunOptions) -> NodeRun:
    """Start the node and the recorder, replay the bag through them, stop both; returns the recorded bag.

    Raises:
        NodeRunError: A process failed to start or the replay failed.
    """
    work = Path(options.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    recorded = work / 'node_outputs'
    if recorded.exists():
        msg = f'{recorded} exists already; use a fresh work directory'
        raise NodeRunError(msg)
    env = _env(options.domain_id)
    t = options.topics
    outputs = output_topics()
    node_cmd = [
        sys.executable, '-m', 'anovox_perception.ros.node', '--ros-args',
        '-p', f'model_path:={options.model_path}', '-p', f'backend:={options.backend}',
        '-r', f'~/input/image:={t.image}', '-r', f'~/input/image/compressed:={t.image}/compressed',
        '-r', f'~/input/points:={t.points}', '-r', f'~/input/camera_info:={t.camera_info}',
    ]  # fmt: skip
    for name, value in options.params.items():
        node_cmd += ['-p', f'{name}:={_param(value)}']
    record_topics = [*outputs.values(), '/diagnostics', t.points]
    recorder_cmd = [
        sys.executable,
        '-m',
        'anovox_perception.tools.recorder',
        '--out',
        str(recorded),
        '--topics',
        *record_topics,
    ]
    replay_cmd = [
        sys.executable, '-m', 'anovox_perception.tools.replay', str(options.bag), '--rate', str(options.rate),
        '--topics', t.image, t.camera_info, t.points, '--wait-for-subscribers', str(options.startup_timeout_s),
        '--wait-topics', t.points, '--delay', str(options.replay_delay_s),
    ]  # fmt: skip
    logs = {name: work / f'{name}.log' for name in ('node', 'recorder', 'replay')}
    start = time.monotonic()
    with _started(node_cmd, env, logs['node']) as (node, _):
        _wait_for_lines(logs['node'], ["model '"], node, options.startup_timeout_s, 'the detector node')
        with _started(recorder_cmd, env, logs['recorder']) as (recorder, _):
            needles = [f'recording {topic}' for topic in outputs.values()]
            _wait_for_lines(logs['recorder'], needles, recorder, options.startup_timeout_s, 'the recorder')
            with logs['replay'].open('w') as handle:
                done = subprocess.run(replay_cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False)
            if done.returncode != 0:
                tail = logs['replay'].read_text(errors='replace')[-3000:]
                msg = f'anovox-replay exited with status {done.returncode}; log {logs["replay"]}:\n{tail}'
                raise NodeRunError(msg)
            time.sleep(options.grace_s)  # the last frames are still in the node's pipeline
            # Stop the node first: its last outputs are then already on the wire to the recorder.
            status = _stop(node)
            if status not in (0, -signal.SIGINT):
                msg = f'the detector node exited with status {status}; log {logs["node"]}'
                raise NodeRunError(msg)
            time.sleep(0.5)
    return NodeRun(recorded, logs['node'], logs['recorder'], logs['replay'], time.monotonic() - start)


@dataclass
class FrameOutput:
    """What the node published for one cloud (decoded from the recorded bag).

    Attributes:
        stamp_ns: The cloud's stamp, carried by every output.
        frame_id: The outputs' frame.
        voxel_scores: (K, 4) float32 x, y, z, score.
        score_grid: (ny, nx) int8 BEV scores, or None if not recorded.
        grid_origin_m: (x, y) of the score grid's cell (0, 0) corner.
        grid_resolution_m: Score grid cell size.
        boxes: Anomaly boxes drawn by the markers: (centre xyz, size xyz, text).
        latency_ms: Recorder receive time of the outputs minus that of the input cloud; None when unknown.
    """

    stamp_ns: int
    frame_id: str
    voxel_scores: np.ndarray
    score_grid: np.ndarray | None = None
    grid_origin_m: tuple[float, float] = (0.0, 0.0)
    grid_resolution_m: float = 0.5
    boxes: list[tuple[tuple[float, float, float], tuple[float, float, float], str]] = field(default_factory=list)
    latency_ms: float | None = None


def read_node_outputs(recorded_bag: str | Path, points_topic: str = BagTopics().points) -> dict[int, FrameOutput]:
    """The node's outputs by cloud stamp, with end-to-end latencies.

    Raises:
        DataError: The bag cannot be read or holds no voxel_scores output.
    """
    topics = output_topics()
    frames: dict[int, FrameOutput] = {}
    cloud_seen_ns: dict[int, int] = {}
    voxels_seen_ns: dict[int, int] = {}
    texts: dict[tuple[int, int], str] = {}
    boxes: dict[int, list[tuple[Any, Any, int]]] = {}

    def entry(stamp: int, frame_id: str) -> FrameOutput:
        # Outputs of one frame arrive on three topics in any order: merge them.
        return frames.setdefault(stamp, FrameOutput(stamp, frame_id, np.zeros((0, 4), np.float32)))

    with BagReader(recorded_bag) as bag:
        wanted = [t for t in (points_topic, *topics.values()) if t in bag.topics]
        for topic, log_time_ns, msg in bag.messages(topics=wanted):
            if topic == points_topic:
                cloud_seen_ns.setdefault(msg_decode.stamp_to_ns(msg.header.stamp), log_time_ns)
            elif topic == topics['voxel_scores']:
                stamp = msg_decode.stamp_to_ns(msg.header.stamp)
                entry(stamp, str(msg.header.frame_id)).voxel_scores = msg_decode.pointcloud2_to_xyzi(
                    msg, intensity_field='score'
                ).points
                voxels_seen_ns[stamp] = log_time_ns
            elif topic == topics['score_grid']:
                info = msg.info
                out = entry(msg_decode.stamp_to_ns(msg.header.stamp), str(msg.header.frame_id))
                out.score_grid = np.asarray(msg.data, dtype=np.int8).reshape(int(info.height), int(info.width))
                out.grid_origin_m = (float(info.origin.position.x), float(info.origin.position.y))
                out.grid_resolution_m = float(info.resolution)
            else:  # markers: boxes and their texts share an id within a frame
                for marker in msg.markers:
                    if int(marker.action) != 0:  # only ADD draws something
                        continue
                    stamp = msg_decode.stamp_to_ns(marker.header.stamp)
                    if marker.ns == msg_decode.MARKER_NAMESPACES['text']:
                        texts[(stamp, int(marker.id))] = str(marker.text)
                    elif marker.ns == msg_decode.MARKER_NAMESPACES['box']:
                        p, size = marker.pose.position, marker.scale
                        boxes.setdefault(stamp, []).append(((p.x, p.y, p.z), (size.x, size.y, size.z), int(marker.id)))
    if not frames:
        msg = f'{recorded_bag}: no {topics["voxel_scores"]} messages recorded; did the node process any frame?'
        raise DataError(msg)
    for stamp, frame_boxes in boxes.items():
        if stamp in frames:
            frames[stamp].boxes = [(c, size, texts.get((stamp, i), '')) for c, size, i in frame_boxes]
    for stamp, seen in voxels_seen_ns.items():
        if stamp in cloud_seen_ns:
            frames[stamp].latency_ms = (seen - cloud_seen_ns[stamp]) / 1e6
    return frames


def read_ground_truth(bag: str | Path, topics: BagTopics | None = None) -> dict[int, np.ndarray]:
    """Ground-truth AnoVox voxels (M, 4) uint16 ``[ix, iy, iz, label]`` by cloud stamp."""
    topics = topics or BagTopics()
    out = {}
    with BagReader(bag) as reader:
        for _, _, msg in reader.messages(topics=[topics.voxels]):
            out[msg_decode.stamp_to_ns(msg.header.stamp)] = msg_decode.voxels_from_message(msg)
    return out


def read_diagnostics(recorded_bag: str | Path, node_name: str = NODE_NAME) -> list[dict[str, str]]:
    """The node's recorded diagnostics statuses as key -> value dicts (plus ``level`` and ``message``), in order."""
    out = []
    with BagReader(recorded_bag) as bag:
        for _, _, message in bag.messages(topics=['/diagnostics']):
            for status in message.status:
                if not str(status.name).startswith(node_name):
                    continue
                values = {str(kv.key): str(kv.value) for kv in status.values}
                level = status.level
                values['level'] = str(level[0] if isinstance(level, (bytes, bytearray)) else int(level))
                values['message'] = str(status.message)
                out.append(values)
    return out
