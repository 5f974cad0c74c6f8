"""Offline path: a bag through sync, detector and ground-truth matching, without a middleware."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_onnx_model import CAMERA, T_CAM_LIDAR, write_fake_model

from anovox_perception.core import msg_decode
from anovox_perception.core.detector import CameraFrame, CloudFrame, Detector, DetectorConfig, FrameResult
from anovox_perception.core.errors import ConfigError, DataError
from anovox_perception.core.stamps import stamp_to_ns
from anovox_perception.core.sync import LidarDrivenSync, StampedMsg, SyncedPair, make_sync
from anovox_perception.tools.bag_reader import BagReader
from anovox_perception.tools.bags import BagFrame, BagTiming, BagTopics, write_bag
from anovox_perception.tools.offline import OfflineStats, main, run_offline


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    model = write_fake_model(tmp_path_factory.mktemp('model') / 'fake_tiny.onnx')
    return DetectorConfig(model_path=str(model), backend='onnxruntime', num_threads=1)


def frames(count: int = 4, seed: int = 0) -> list[BagFrame]:
    """Ground plus a tall box ahead; the box moves so each frame's output differs."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        ground = rng.uniform([-7.9, -15.9, -1.9, 0.0], [23.9, 15.9, -1.6, 1.0], size=(800, 4))
        box = rng.uniform([8.0 + i, -1.0, -1.5, 0.5], [9.0 + i, 1.0, 2.0, 1.0], size=(200, 4))
        points = np.concatenate([ground, box]).astype(np.float32)
        voxels = np.array([[520 + i, 500, 32, 30], [510, 498, 29, 1]], np.uint16)
        rgb = rng.integers(0, 256, (CAMERA.height, CAMERA.width, 3), dtype=np.uint8)
        out.append(BagFrame(frame_id=i, time_s=0.1 * i, rgb=rgb, points=points, voxels=voxels))
    return out


def write(tmp_path, items, timing=None, name='bag'):
    return write_bag(
        tmp_path / name,
        items,
        scenario='s',
        camera=CAMERA,
        T_cam_lidar=np.array(T_CAM_LIDAR),
        timing=timing or BagTiming(camera_offset_ms=-20.0, camera_jitter_ms=3.0, lidar_jitter_ms=2.0, seed=2),
    )


def test_every_cloud_yields_the_detectors_result_paired_with_its_image_and_ground_truth(tmp_path, config):
    items = frames()
    summary = write(tmp_path, items)
    stats = OfflineStats()
    out = list(run_offline(tmp_path / 'bag', config, stats=stats))
    assert [f.stamp_ns for f in out] == summary.lidar_stamps_ns
    direct = Detector(config)
    try:
        for frame, item, cam_stamp in zip(out, items, summary.camera_stamps_ns, strict=True):
            assert frame.result.image_stamp_ns == cam_stamp  # 20 ms apart, within the default 50 ms slop
            assert frame.result.frame_id == 'lidar'
            np.testing.assert_array_equal(frame.ground_truth, item.voxels)
            pair = SyncedPair(
                frame.stamp_ns, CloudFrame(item.points, 'lidar'), CameraFrame(item.rgb, 'camera'), cam_stamp
            )
            expected = direct.process(pair)
            np.testing.assert_array_equal(frame.result.anomaly, expected.anomaly)
            np.testing.assert_array_equal(frame.result.voxel_scores, expected.voxel_scores)
    finally:
        direct.close()
    assert (stats.frames, stats.clouds, stats.images, stats.lidar_only) == (4, 4, 4, 0)
    assert stats.sync['paired'] == 4


def test_a_frame_without_an_image_runs_lidar_only_or_is_skipped_per_the_sync_parameters(tmp_path, config):
    items = frames()
    items[1].rgb = None
    summary = write(tmp_path, items)
    out = list(run_offline(tmp_path / 'bag', config))
    assert [f.result.camera_used for f in out] == [True, False, True, True]
    assert not np.array_equal(out[1].result.anomaly, out[0].result.anomaly)

    skipped = list(run_offline(tmp_path / 'bag', config, sync_parameters={'sync.on_missing_camera': 'skip'}))
    stamps = summary.lidar_stamps_ns
    assert [f.stamp_ns for f in skipped] == [stamps[0], stamps[2], stamps[3]]
    np.testing.assert_array_equal(skipped[1].ground_truth, items[2].voxels)  # ground truth stays with its cloud


def test_a_camera_offset_beyond_the_slop_pairs_each_cloud_with_the_next_frames_image(tmp_path, config):
    summary = write(tmp_path, frames(3), timing=BagTiming(camera_offset_ms=-80.0, seed=0))
    cams = summary.camera_stamps_ns
    # Each image is 80 ms before its cloud, so the next frame's (20 ms after) is nearest; the last has none.
    out = list(run_offline(tmp_path / 'bag', config))
    assert [f.result.image_stamp_ns for f in out] == [cams[1], cams[2], None]


def test_the_camera_offset_parameter_restores_the_right_pairing(tmp_path, config):
    summary = write(tmp_path, frames(3), timing=BagTiming(camera_offset_ms=-80.0, seed=0))
    # The parameter is the expected camera stamp minus LiDAR stamp: -80 ms here.
    out = list(run_offline(tmp_path / 'bag', config, sync_parameters={'sync.camera_offset_s': -0.08}))
    assert [f.result.image_stamp_ns for f in out] == summary.camera_stamps_ns


def test_an_empty_cloud_is_skipped_and_counted_and_the_rest_processed(tmp_path, config):
    items = frames(3)
    items[1].points = np.zeros((0, 4), np.float32)
    write(tmp_path, items)
    stats = OfflineStats()
    out = list(run_offline(tmp_path / 'bag', config, stats=stats))
    # Refused by the intake, as the node refuses it: it never reaches the synchroniser.
    assert len(out) == 2 and stats.bad_input == {'points': 1}
    np.testing.assert_array_equal(out[1].ground_truth, items[2].voxels)


def test_the_approximate_policy_pairs_the_same_frames(tmp_path, config):
    summary = write(tmp_path, frames(3))
    params = {'sync.policy': 'approximate', 'sync.slop_s': 0.05}
    out = list(run_offline(tmp_path / 'bag', config, sync_parameters=params))
    assert [f.result.image_stamp_ns for f in out] == summary.camera_stamps_ns[: len(out)]
    assert len(out) >= 2  # message_filters semantics may hold back the last pair


def test_an_existing_detector_is_used_and_left_open(tmp_path, config):
    write(tmp_path, frames(2))
    detector = Detector(config)
    assert len(list(run_offline(tmp_path / 'bag', detector=detector))) == 2
    assert len(list(run_offline(tmp_path / 'bag', detector=detector))) == 2
    detector.close()


def test_missing_detector_or_lidar_topic_is_reported(tmp_path, config):
    write(tmp_path, frames(1))
    with pytest.raises(ConfigError, match='pass a detector_config or a detector'):
        list(run_offline(tmp_path / 'bag'))
    with pytest.raises(DataError, match="no LiDAR topic '/elsewhere'"):
        list(run_offline(tmp_path / 'bag', config, topics=BagTopics(points='/elsewhere')))


def test_cli_prints_a_json_summary(tmp_path, config, capsys):
    write(tmp_path, frames(2))
    assert main([str(tmp_path / 'bag'), '--model', config.model_path, '--backend', 'onnxruntime']) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary['frames'] == 2 and summary['lidar_only'] == 0 and summary['latency_ms']['p50'] > 0
    assert main([str(tmp_path / 'missing')]) == 1
    assert 'cannot open bag' in capsys.readouterr().err


def reference_results(bag, config, sync_parameters) -> list[FrameResult]:
    """The bag through decode -> frame -> sync -> poll -> detector, written out message by message."""
    sync = make_sync(sync_parameters)
    detector = Detector(config)
    pairs: list[SyncedPair] = []
    last_log_ns = 0
    try:
        with BagReader(bag) as reader:
            topics = reader.description.topics
            for topic, last_log_ns, msg in reader.messages():
                if topic == topics.points:
                    frame = CloudFrame(msg_decode.pointcloud2_to_xyzi(msg).points, msg.header.frame_id)
                    pairs += sync.add_points(StampedMsg(stamp_to_ns(msg.header.stamp), frame, last_log_ns))
                elif topic == topics.image:
                    frame = CameraFrame(msg_decode.image_to_rgb(msg), msg.header.frame_id)
                    pairs += sync.add_image(StampedMsg(stamp_to_ns(msg.header.stamp), frame, last_log_ns))
                elif topic == topics.camera_info:
                    detector.set_camera_info(msg_decode.camera_info_to_model(msg))
                if isinstance(sync, LidarDrivenSync):
                    pairs += sync.poll(last_log_ns)
        if isinstance(sync, LidarDrivenSync):
            pairs += sync.poll(last_log_ns + sync.timeout_ns + 1)
        return [detector.process(pair) for pair in pairs]
    finally:
        detector.close()


@pytest.mark.parametrize(
    ('missing_images', 'timing', 'sync_parameters'),
    [
        ((), BagTiming(camera_offset_ms=-20.0, camera_jitter_ms=3.0, lidar_jitter_ms=2.0, seed=2), {}),
        ((1, 4), BagTiming(seed=1), {}),
        ((2,), BagTiming(seed=1), {'sync.on_missing_camera': 'skip'}),
        ((), BagTiming(camera_offset_ms=-80.0, seed=0), {}),
        ((), BagTiming(camera_jitter_ms=5.0, seed=3), {'sync.policy': 'approximate', 'sync.slop_s': 0.05}),
    ],
)
def test_the_intake_path_gives_the_outputs_of_decoding_each_message_directly(
    tmp_path, config, missing_images, timing, sync_parameters
):
    items = frames(6)
    for i in missing_images:
        items[i].rgb = None
    write(tmp_path, items, timing=timing)
    stats = OfflineStats()
    out = list(run_offline(tmp_path / 'bag', config, sync_parameters=sync_parameters, stats=stats))
    expected = reference_results(tmp_path / 'bag', config, sync_parameters)
    assert [f.stamp_ns for f in out] == [r.stamp_ns for r in expected]
    for frame, reference in zip(out, expected, strict=True):
        assert frame.result.image_stamp_ns == reference.image_stamp_ns
        for name in ('occupancy', 'anomaly', 'score_grid', 'voxel_scores'):
            np.testing.assert_array_equal(getattr(frame.result, name), getattr(reference, name))
        assert frame.result.components == reference.components
        assert frame.result.markers == reference.markers
    assert (stats.clouds, stats.images, stats.bad_input, stats.input_notes) == (6, 6 - len(missing_images), {}, {})
