"""Writing AnoVox frames as rosbag2 and reading them back (no middleware)."""

from __future__ import annotations

import numpy as np
import pytest

from anovox_perception.core import msg_decode
from anovox_perception.core.errors import ConfigError, DataError, DecodeError, GeometryError
from anovox_perception.core.geometry import CameraModel, camera_from_lidar, rotation_from_rpy
from anovox_perception.core.msg_layout import POINT_DTYPE
from anovox_perception.core.stamps import stamp_to_ns
from anovox_perception.tools import bag_messages as bm
from anovox_perception.tools.bag_reader import BagReader
from anovox_perception.tools.bags import BagFrame, BagTiming, BagTopics, write_bag
from anovox_training.data.carla_mount import carla_mount_to_body

WIDTH, HEIGHT = 96, 64
PERIOD_S = 0.1
START_NS = 1_700_000_000 * 1_000_000_000


def make_frames(count: int = 4, seed: int = 0) -> list[BagFrame]:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        points = rng.normal(0.0, 10.0, size=(50 + i, 4)).astype(np.float32)
        voxels = np.column_stack([rng.integers(400, 600, size=(7, 3)), rng.integers(0, 35, size=7)]).astype(np.uint16)
        rgb = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
        frames.append(BagFrame(frame_id=100 + i, time_s=i * PERIOD_S, rgb=rgb, points=points, voxels=voxels))
    return frames


def rig() -> tuple[CameraModel, np.ndarray]:
    camera = CameraModel.from_fov(WIDTH, HEIGHT, 90.0)
    t_cam_lidar = camera_from_lidar(
        carla_mount_to_body((0.5, 0.1, 1.6), (-5.0, 2.0, 0.0)), carla_mount_to_body((0, 0, 1.8), (0, 0, 0))
    )
    return camera, t_cam_lidar


def by_topic(path, raw: bool = False) -> dict[str, list]:
    """(log time, message) per topic: decoded, or serialized bytes with ``raw``."""
    out: dict[str, list] = {}
    with BagReader(path) as bag:
        for topic, log_time_ns, message in bag.raw_messages() if raw else bag.messages():
            out.setdefault(topic, []).append((log_time_ns, message))
    return out


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_round_trip_returns_every_frame_unchanged(tmp_path, storage):
    frames = make_frames()
    camera, t_cam_lidar = rig()
    summary = write_bag(
        tmp_path / 'bag', frames, scenario='Scenario_x', camera=camera, T_cam_lidar=t_cam_lidar, storage=storage
    )
    topics = BagTopics()
    assert summary.message_counts == {
        topics.image: 4,
        topics.camera_info: 4,
        topics.points: 4,
        topics.voxels: 4,
        topics.tf_static: 1,
    }
    messages = by_topic(tmp_path / 'bag')
    for frame, (_, img), (_, info), (_, pc), (_, voxels) in zip(
        frames,
        messages[topics.image],
        messages[topics.camera_info],
        messages[topics.points],
        messages[topics.voxels],
        strict=True,
    ):
        assert (img.encoding, img.width, img.height, img.step, img.header.frame_id) == (
            'rgb8',
            WIDTH,
            HEIGHT,
            3 * WIDTH,
            'camera',
        )
        np.testing.assert_array_equal(img.data.reshape(HEIGHT, WIDTH, 3), frame.rgb)
        assert msg_decode.camera_info_to_model(info) == camera
        assert pc.header.frame_id == 'lidar'
        records = np.frombuffer(pc.data.tobytes(), dtype=POINT_DTYPE)
        got = np.column_stack([records[name] for name in ('x', 'y', 'z', 'intensity')])
        np.testing.assert_array_equal(got, frame.points)
        np.testing.assert_array_equal(msg_decode.voxels_from_message(voxels), frame.voxels)
        assert voxels.header.stamp == pc.header.stamp
    ((_, tf),) = messages[topics.tf_static]
    np.testing.assert_allclose(bm.transform_from_tf(tf, 'lidar', 'camera'), t_cam_lidar, atol=1e-12)


def test_bag_metadata_records_scenario_timing_camera_and_frames(tmp_path):
    camera, t_cam_lidar = rig()
    timing = BagTiming(camera_offset_ms=-12.5, camera_jitter_ms=3.0, lidar_jitter_ms=1.0, seed=7)
    write_bag(
        tmp_path / 'bag', make_frames(3), scenario='Scenario_y', camera=camera, T_cam_lidar=t_cam_lidar, timing=timing
    )
    with BagReader(tmp_path / 'bag') as bag:
        meta = bag.description
        assert meta.scenario == 'Scenario_y'
        assert meta.timing == timing
        assert meta.frame_ids == [100, 101, 102]
        assert meta.camera == camera
        np.testing.assert_allclose(meta.T_cam_lidar, t_cam_lidar)
        assert bag.topics[meta.topics.points].msgtype == 'sensor_msgs/msg/PointCloud2'
        assert bag.topics[meta.topics.points].count == 3
        assert bag.topics[meta.topics.tf_static].offered_qos[0].durability.name == 'TRANSIENT_LOCAL'


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_stamps_follow_frame_time_plus_offset_and_bounded_seeded_jitter(tmp_path, storage):
    timing = BagTiming(camera_offset_ms=-20.0, camera_jitter_ms=5.0, lidar_jitter_ms=3.0, receive_delay_ms=4.0, seed=3)
    frames = make_frames(8)
    summary = write_bag(tmp_path / 'bag', frames, scenario='s', camera=rig()[0], timing=timing, storage=storage)
    frame_ns = START_NS + np.arange(8) * 100_000_000
    lidar = np.array(summary.lidar_stamps_ns) - frame_ns
    camera = np.array(summary.camera_stamps_ns) - frame_ns + 20_000_000
    assert np.abs(lidar).max() <= 3_000_000 and np.abs(camera).max() <= 5_000_000
    assert len(set(lidar.tolist())) == 8 and len(set(camera.tolist())) == 8  # jitter actually applied

    messages = by_topic(tmp_path / 'bag')
    for topic, expected in (
        (BagTopics().points, summary.lidar_stamps_ns),
        (BagTopics().image, summary.camera_stamps_ns),
    ):
        stamps = [stamp_to_ns(m.header.stamp) for _, m in messages[topic]]
        assert stamps == expected
        assert [log_time_ns for log_time_ns, _ in messages[topic]] == [s + 4_000_000 for s in expected]
    with BagReader(tmp_path / 'bag') as bag:
        log_times = [log_time_ns for _, log_time_ns, _ in bag.raw_messages()]
    assert log_times == sorted(log_times)

    again = write_bag(tmp_path / 'again', frames, scenario='s', timing=timing)
    other = write_bag(tmp_path / 'other', frames, scenario='s', timing=BagTiming(**{**timing.__dict__, 'seed': 4}))
    assert again.lidar_stamps_ns == summary.lidar_stamps_ns
    assert other.lidar_stamps_ns != summary.lidar_stamps_ns


def test_frames_without_a_sensor_leave_out_only_that_sensors_messages(tmp_path):
    frames = make_frames(3)
    frames[1].rgb = None
    frames[2].voxels = None
    summary = write_bag(tmp_path / 'bag', frames, scenario='s', camera=rig()[0])
    topics = BagTopics()
    assert summary.message_counts[topics.image] == 2
    assert summary.message_counts[topics.camera_info] == 2
    assert summary.message_counts[topics.points] == 3
    assert summary.message_counts[topics.voxels] == 2
    assert topics.tf_static not in summary.message_counts


def test_custom_topics_and_frames_are_used(tmp_path):
    topics = BagTopics(image='/cam/img', points='/lidar/cloud', lidar_frame='velodyne', camera_frame='cam_optical')
    write_bag(tmp_path / 'bag', make_frames(1), scenario='s', topics=topics, T_cam_lidar=rig()[1])
    messages = by_topic(tmp_path / 'bag')
    assert messages['/lidar/cloud'][0][1].header.frame_id == 'velodyne'
    assert messages['/cam/img'][0][1].header.frame_id == 'cam_optical'
    with BagReader(tmp_path / 'bag') as bag:
        assert bag.description.topics == topics


def test_bags_written_here_decode_with_rclpy_serialization(tmp_path):
    serialization = pytest.importorskip('rclpy.serialization')
    from sensor_msgs.msg import Image, PointCloud2

    frame = make_frames(1)[0]
    write_bag(tmp_path / 'bag', [frame], scenario='s')
    messages = by_topic(tmp_path / 'bag', raw=True)
    img = serialization.deserialize_message(messages[BagTopics().image][0][1], Image)
    np.testing.assert_array_equal(np.frombuffer(bytes(img.data), np.uint8).reshape(HEIGHT, WIDTH, 3), frame.rgb)
    cloud = serialization.deserialize_message(messages[BagTopics().voxels][0][1], PointCloud2)
    np.testing.assert_array_equal(msg_decode.voxels_from_message(cloud), frame.voxels)


def test_jitter_of_half_the_frame_period_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match='jitter 50.0 ms is too large'):
        write_bag(tmp_path / 'bag', make_frames(2), scenario='s', timing=BagTiming(lidar_jitter_ms=50.0))
    assert not (tmp_path / 'bag').exists()


def test_frame_times_that_do_not_increase_are_rejected(tmp_path):
    frames = make_frames(2)
    frames[1].time_s = frames[0].time_s
    with pytest.raises(DataError, match='frame 101: frame times must increase'):
        write_bag(tmp_path / 'bag', frames, scenario='s')


def test_images_of_another_size_than_the_camera_are_rejected(tmp_path):
    with pytest.raises(DataError, match='image is 96x64 but the camera model is 48x32'):
        write_bag(tmp_path / 'bag', make_frames(1), scenario='s', camera=CameraModel.from_fov(48, 32, 90.0))


def test_writer_refuses_existing_output_and_unknown_storage(tmp_path):
    (tmp_path / 'bag').mkdir()
    with pytest.raises(ConfigError, match='exists already'):
        write_bag(tmp_path / 'bag', make_frames(1), scenario='s')
    with pytest.raises(ConfigError, match="storage must be one of .* got 'rosbag1'"):
        write_bag(tmp_path / 'new', make_frames(1), scenario='s', storage='rosbag1')


def test_bad_timing_and_topics_are_rejected():
    with pytest.raises(ConfigError, match='camera_jitter_ms must be >= 0'):
        BagTiming(camera_jitter_ms=-1.0)
    with pytest.raises(ConfigError, match='must be an absolute ROS name'):
        BagTopics(image='camera/image')
    with pytest.raises(ConfigError, match='topics must be distinct'):
        BagTopics(image='/same', points='/same')


def test_voxel_decoder_rejects_clouds_of_another_layout():
    cloud = bm.points_message(np.zeros((3, 4), np.float32), 0, 'lidar')
    with pytest.raises(DecodeError, match='expected little-endian fields'):
        msg_decode.voxels_from_message(cloud)


def test_voxel_clouds_outside_the_uint16_range_are_rejected():
    with pytest.raises(DecodeError, match='must lie in 0..65535'):
        bm.voxels_message(np.array([[-1, 0, 0, 1]]), 0, 'lidar')


@pytest.mark.parametrize('seed', range(5))
def test_quaternions_round_trip_rotations_including_half_turns(seed):
    rng = np.random.default_rng(seed)
    rotations = [
        rotation_from_rpy(*rng.uniform(-np.pi, np.pi, 3)),
        rotation_from_rpy(np.pi, 0, 0),
        rotation_from_rpy(0, 0, np.pi),
    ]
    for rotation in rotations:
        quat = bm.quaternion_from_matrix(rotation)
        assert quat[3] >= 0 and np.isclose(np.linalg.norm(quat), 1.0)
        np.testing.assert_allclose(bm.matrix_from_quaternion(quat), rotation, atol=1e-12)


def test_quaternion_of_a_reflection_is_rejected():
    with pytest.raises(GeometryError, match='expected a 3x3 rotation matrix'):
        bm.quaternion_from_matrix(np.diag([1.0, 1.0, -1.0]))
