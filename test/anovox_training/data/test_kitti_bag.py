"""A KITTI frame as a rosbag2 and its rig's parameter file; the node's offline path on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anovox_perception.core import msg_decode
from anovox_perception.core.detector import DetectorConfig
from anovox_perception.core.errors import ConfigError
from anovox_perception.core.parameters import load_params_file
from anovox_perception.tools import bag_messages as bm
from anovox_perception.tools.bag_reader import BagReader
from anovox_perception.tools.bags import BagTopics
from anovox_perception.tools.offline import main as offline_main
from anovox_training.data.kitti import KittiFolder
from anovox_training.data.kitti_bag import frame_to_bag, rig_parameters, write_params_file

ROOT = Path(__file__).resolve().parents[3]
FRAME_DIR = ROOT / 'real' / 'kitti_000008'
MODEL = ROOT / 'models' / 'anovox_base.onnx'


@pytest.fixture(scope='module')
def frame():
    return KittiFolder(FRAME_DIR).read('kitti_000008')


def test_bag_holds_cloud_with_intensity_rgb8_image_camera_info_and_the_transform(tmp_path, frame):
    summary = frame_to_bag(frame, tmp_path / 'bag')
    topics = BagTopics()
    assert summary.frames == 1
    assert summary.message_counts == {topics.image: 1, topics.camera_info: 1, topics.points: 1, topics.voxels: 0,
                                      topics.tf_static: 1}  # fmt: skip
    with BagReader(summary.path) as bag:
        decoded = {topic: msg for topic, _, msg in bag.messages()}
        meta = bag.description
    cloud = msg_decode.pointcloud2_to_xyzi(decoded[topics.points])
    np.testing.assert_array_equal(cloud.points, frame.points)
    image = decoded[topics.image]
    assert image.encoding == 'rgb8'
    np.testing.assert_array_equal(msg_decode.image_to_rgb(image), frame.rgb)
    assert msg_decode.camera_info_to_model(decoded[topics.camera_info]) == frame.camera
    transform = bm.transform_from_tf(decoded[topics.tf_static], topics.lidar_frame, topics.camera_frame)
    # A quaternion is a perfect rotation; KITTI's matrices are orthonormal to float32 precision only.
    np.testing.assert_allclose(transform, frame.T_cam_lidar, atol=1e-6)
    assert meta.scenario == 'kitti_000008' and meta.camera == frame.camera


def test_bag_refuses_an_existing_output(tmp_path, frame):
    (tmp_path / 'bag').mkdir()
    with pytest.raises(ConfigError, match='exists already'):
        frame_to_bag(frame, tmp_path / 'bag')


def test_params_file_reads_back_bit_for_bit_as_the_node_reads_it(tmp_path, frame):
    path = write_params_file(rig_parameters(frame), tmp_path / 'rig.yaml')
    values = load_params_file(path)
    config = DetectorConfig.from_parameters(values)
    assert config.intrinsics_source == 'parameters' and config.extrinsics_source == 'parameters'
    assert (config.fx, config.fy, config.cx, config.cy) == (
        frame.camera.fx,
        frame.camera.fy,
        frame.camera.cx,
        frame.camera.cy,
    )
    np.testing.assert_array_equal(config.T_cam_lidar_array, frame.T_cam_lidar)


def test_offline_cli_runs_the_kitti_bag_with_the_camera(tmp_path, frame, capsys):
    bag = frame_to_bag(frame, tmp_path / 'bag').path
    params = write_params_file(rig_parameters(frame, 'camera_info'), tmp_path / 'bag.params.yaml')
    code = offline_main([str(bag), '--params-file', str(params), '--model', str(MODEL), '--backend', 'onnxruntime'])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary['frames'] == 1 and summary['clouds'] == 1 and summary['images'] == 1
    assert summary['lidar_only'] == 0 and summary['bad_input'] == {}
