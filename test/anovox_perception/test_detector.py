"""Detector: synced pair -> model inputs -> outputs, without a middleware (hand-built ONNX model)."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import onnx
import pytest
from fake_onnx_model import CAMERA, SMALL_SPEC, expected_outputs, write_fake_model

import anovox_perception.core.package_data as package_data
from anovox_perception.core.calibration import Calibration, ChosenOn, OperatingPoint
from anovox_perception.core.detector import (
    CameraFrame,
    CloudFrame,
    Detector,
    DetectorConfig,
    resolve_model_path,
)
from anovox_perception.core.errors import ConfigError, DecodeError, ModelCardError
from anovox_perception.core.geometry import CameraModel
from anovox_perception.core.parameters import defaults
from anovox_perception.core.preprocess import points_to_bev
from anovox_perception.core.sync import SyncedPair

GRID = SMALL_SPEC.grid


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return write_fake_model(tmp_path_factory.mktemp('model') / 'fake_tiny.onnx')


@pytest.fixture
def detector(model_path):
    det = Detector(DetectorConfig(model_path=str(model_path), backend='onnxruntime', num_threads=1))
    yield det
    det.close()


def scene_points(seed: int = 0) -> np.ndarray:
    """Ground returns plus a 1 m tall box 10 m ahead: (N, 4) x, y, z, intensity."""
    rng = np.random.default_rng(seed)
    ground = rng.uniform([-7.9, -15.9, -1.9, 0.0], [23.9, 15.9, -1.6, 1.0], size=(3000, 4))
    box = rng.uniform([10.0, -1.0, -1.5, 0.5], [11.0, 1.0, 2.5, 1.0], size=(400, 4))
    return np.concatenate([ground, box]).astype(np.float32)


def test_outputs_are_stamped_with_the_cloud_and_match_the_model(detector):
    points = scene_points()
    result = detector.process(SyncedPair(1_700_000_000_123_000_000, CloudFrame(points, 'lidar_top', 12.5)))
    assert result.stamp_ns == 1_700_000_000_123_000_000
    assert result.frame_id == 'lidar_top'
    assert result.received_s == 12.5
    assert not result.camera_used and result.camera is None
    occupancy, anomaly = expected_outputs(points_to_bev(points, SMALL_SPEC), camera_valid=0.0)
    np.testing.assert_allclose(result.occupancy, occupancy, atol=1e-6)
    np.testing.assert_allclose(result.anomaly, anomaly, atol=1e-6)
    # The voxel cloud is exactly the occupied voxels, at their centres, with their scores.
    ix, iy, iz = np.nonzero(occupancy >= 0.5)
    assert result.voxel_scores.shape == (ix.size, 4)
    np.testing.assert_allclose(result.voxel_scores[:, :3], GRID.cell_center(np.stack([ix, iy, iz], 1)), atol=1e-5)
    np.testing.assert_allclose(result.voxel_scores[:, 3], anomaly[ix, iy, iz], atol=1e-6)
    assert result.score_grid.shape == (GRID.ny, GRID.nx)
    assert set(result.timings_ms) == {'preprocess', 'inference', 'postprocess'}


def test_a_tall_object_becomes_one_component_with_a_box_and_a_text_marker(detector):
    result = detector.process(SyncedPair(10, scene_points()))
    assert len(result.components) == 1
    (component,) = result.components
    assert 9.5 <= component.centroid_m[0] <= 11.5 and abs(component.centroid_m[1]) < 1.0
    assert sorted(m.kind for m in result.markers) == ['box', 'text']


def test_marker_ids_stay_stable_across_frames(detector):
    first = detector.process(SyncedPair(10, scene_points(0)))
    second = detector.process(SyncedPair(20, scene_points(1)))
    assert {m.id for m in first.markers} == {m.id for m in second.markers}


def test_reset_forgets_marker_tracks_and_returns_their_deletes(detector):
    first = detector.process(SyncedPair(10, scene_points(0)))
    deletes = detector.reset()
    assert sorted((m.kind, m.id, m.action) for m in deletes) == sorted((m.kind, m.id, 'delete') for m in first.markers)
    # Nothing is left to delete: the next frame starts new tracks without deleting old ones.
    assert detector.reset() == []
    after = detector.process(SyncedPair(20, scene_points(1)))
    assert sorted(m.kind for m in after.markers) == ['box', 'text']
    assert all(m.action == 'add' for m in after.markers)


def test_image_pairs_reach_the_model_with_the_camera_flag_set(detector):
    points = scene_points()
    rgb = np.full((CAMERA.height, CAMERA.width, 3), 90, dtype=np.uint8)
    result = detector.process(SyncedPair(10, points, CameraFrame(rgb, 'camera'), 9))
    assert result.camera_used and result.image_stamp_ns == 9
    assert result.camera == CAMERA
    _, anomaly = expected_outputs(points_to_bev(points, SMALL_SPEC), camera_valid=1.0)
    np.testing.assert_allclose(result.anomaly, anomaly, atol=1e-6)


def test_lidar_intensity_ignore_runs_every_cloud_as_one_without_intensity(model_path):
    points = scene_points()
    det = Detector(
        DetectorConfig(model_path=str(model_path), backend='onnxruntime', num_threads=1, lidar_intensity='ignore')
    )
    try:
        assert not det.uses_intensity
        result = det.process(SyncedPair(1, points))
    finally:
        det.close()
    bev_ignored = points_to_bev(points[:, :3], SMALL_SPEC)
    assert not np.array_equal(bev_ignored, points_to_bev(points, SMALL_SPEC))  # the scene's intensity matters
    _, anomaly = expected_outputs(bev_ignored, camera_valid=0.0)
    np.testing.assert_allclose(result.anomaly, anomaly, atol=1e-6)


def test_lidar_intensity_is_used_by_default_and_other_values_are_refused(detector):
    assert detector.uses_intensity and detector.config.lidar_intensity == 'use'
    with pytest.raises(ConfigError, match='lidar.intensity'):
        DetectorConfig.from_parameters({'lidar.intensity': 'scale'})


def test_card_intrinsics_scale_to_a_smaller_image_of_the_same_camera(detector):
    rgb = np.zeros((CAMERA.height // 2, CAMERA.width // 2, 3), dtype=np.uint8)
    result = detector.process(SyncedPair(10, scene_points(), rgb, 10))
    assert result.camera == CAMERA.scaled(CAMERA.width // 2, CAMERA.height // 2)


def test_intrinsics_come_from_camera_info_once_it_arrives(detector):
    detector.update(intrinsics_source='camera_info')
    assert detector.camera_for(CAMERA.width, CAMERA.height) == CAMERA  # nothing received yet: the card
    info = CameraModel(CAMERA.width, CAMERA.height, 70.0, 71.0, 60.0, 50.0)
    detector.set_camera_info(info)
    assert detector.camera_for(CAMERA.width, CAMERA.height) == info


def test_intrinsics_and_extrinsics_can_come_from_parameters(detector):
    t = np.eye(4)
    t[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]
    t[:3, 3] = [0.1, -0.2, 0.3]
    detector.update(
        intrinsics_source='parameters', fx=50.0, fy=51.0, cx=30.0, cy=20.0,
        extrinsics_source='parameters', T_cam_lidar=tuple(t.ravel()),
    )  # fmt: skip
    assert detector.camera_for(64, 48) == CameraModel(64, 48, 50.0, 51.0, 30.0, 20.0)
    np.testing.assert_array_equal(detector.extrinsics(), t)


def test_a_non_rigid_extrinsic_parameter_is_rejected():
    with pytest.raises(ConfigError, match='camera.T_cam_lidar: not a rigid transform'):
        DetectorConfig(extrinsics_source='parameters', T_cam_lidar=tuple(float(v) for v in range(16)))


def test_runtime_threshold_changes_apply_to_the_next_frame(detector):
    points = scene_points()
    before = detector.process(SyncedPair(10, points))
    detector.update(occupancy_threshold=1.0, anomaly_threshold=0.9)
    after = detector.process(SyncedPair(20, points))
    assert detector.config.occupancy_threshold == 1.0
    # The fake occupancy is exactly 0 or 1, so a threshold of 1 keeps the same voxels; markers need > 0.9.
    assert after.voxel_scores.shape == before.voxel_scores.shape
    assert all(c.max_score >= 0.9 for c in after.components)


def test_the_default_occupancy_threshold_is_the_one_calibrated_in_training(tmp_path):
    calibration = Calibration(occupancy_threshold=0.7, threshold_chosen_on=ChosenOn(('val',), 'abc'))
    calibrated = write_fake_model(tmp_path / 'calibrated.onnx', calibration=calibration)
    det = Detector(DetectorConfig(model_path=str(calibrated), backend='onnxruntime'))
    try:
        assert det.config.occupancy_threshold == -1.0
        assert det.occupancy_threshold == 0.7
        assert det.process(SyncedPair(10, scene_points())).occupancy_threshold == 0.7
        det.update(occupancy_threshold=0.25)
        assert det.occupancy_threshold == 0.25
    finally:
        det.close()


def test_the_default_operating_point_is_the_one_calibrated_in_training(tmp_path):
    points = scene_points()
    unsupported = Calibration(
        occupancy_threshold=0.5,
        operating_point=OperatingPoint(anomaly_threshold=0.5, min_component_points=10**6),
        operating_point_chosen_on=ChosenOn(('val',), 'abc'),
    )
    det = Detector(DetectorConfig(model_path=str(write_fake_model(tmp_path / 'm.onnx', calibration=unsupported))))
    try:
        assert (det.config.anomaly_threshold, det.config.min_component_points) == (-1.0, -1)
        assert det.operating_point == OperatingPoint(0.5, 10**6)
        result = det.process(SyncedPair(10, points))
        # No component holds a million LiDAR points: no marker.
        assert result.operating_point == OperatingPoint(0.5, 10**6) and result.components == []
        det.update(min_component_points=0)  # set by the user: the calibrated threshold stays
        assert det.operating_point == OperatingPoint(0.5, 0)
        result = det.process(SyncedPair(20, points))
        assert result.components and all(c.max_score >= 0.5 for c in result.components)
        det.update(anomaly_threshold=0.6)  # the box scores 0.55 (fake model)
        assert det.operating_point == OperatingPoint(0.6, 0)
        assert det.process(SyncedPair(30, points)).components == []
        det.update(anomaly_threshold=-1.0, min_component_points=-1)  # back to the calibration
        assert det.operating_point == OperatingPoint(0.5, 10**6)
    finally:
        det.close()


def test_the_training_config_of_a_card_never_sets_the_threshold(tmp_path):
    # Only the calibration does: a threshold left in the free-form training config is not read.
    leftovers = {'occupancy_threshold': 0.7, 'eval': {'occupancy_threshold': 0.4}}
    path = write_fake_model(tmp_path / 'm.onnx', training_config=leftovers)
    det = Detector(DetectorConfig(model_path=str(path), backend='onnxruntime'))
    try:
        assert det.occupancy_threshold == 0.5 == det.card.calibration.occupancy_threshold
    finally:
        det.close()


def test_a_model_whose_card_has_no_calibration_is_refused_with_the_upgrade_command(tmp_path):
    path = write_fake_model(tmp_path / 'old.onnx')
    model = onnx.load(str(path))
    card = json.loads(model.metadata_props[0].value)
    del card['calibration']
    model.metadata_props[0].value = json.dumps(card)
    onnx.save(model, str(path))
    with pytest.raises(ModelCardError, match=rf'no calibration section .*upgrade_calibration {re.escape(str(path))}'):
        Detector(DetectorConfig(model_path=str(path), backend='onnxruntime'))


def test_occupancy_thresholds_between_the_sentinel_and_zero_are_refused():
    with pytest.raises(ConfigError, match=r'occupancy_threshold: -0\.5 is not allowed: use -1 or a value from 0 to 1'):
        DetectorConfig(occupancy_threshold=-0.5)


def test_model_and_backend_cannot_change_while_running(detector):
    with pytest.raises(ConfigError, match=r"\['backend'\] cannot change while running"):
        detector.update(backend='torch')


def test_non_finite_points_are_dropped_and_counted(detector):
    points = scene_points()
    points[:10, 0] = np.nan
    points[10:15, 2] = np.inf
    result = detector.process(SyncedPair(10, points))
    assert result.points_in == len(points)
    assert result.points_dropped == 15


@pytest.mark.parametrize(
    ('points', 'message'),
    [
        (np.zeros((0, 4), np.float32), 'empty; frame skipped'),
        (np.full((5, 4), np.nan, np.float32), 'all 5 points non-finite'),
        (np.zeros((5, 2), np.float32), r'expected \(N, >=3\) points, got shape \(5, 2\)'),
    ],
)
def test_unusable_clouds_raise_decode_errors(detector, points, message):
    with pytest.raises(DecodeError, match=message):
        detector.process(SyncedPair(10, points))


def test_a_malformed_image_raises_a_decode_error(detector):
    with pytest.raises(DecodeError, match=r'expected \(H, W, 3\) uint8 RGB, got \(48, 64, 3\) float32'):
        detector.process(SyncedPair(10, scene_points(), np.zeros((48, 64, 3), np.float32), 10))


def test_config_from_the_default_parameters_is_the_default_config():
    assert DetectorConfig.from_parameters(defaults()) == DetectorConfig()
    config = DetectorConfig.from_parameters({**defaults(), 'markers.lifetime_s': 2.0, 'sync.slop_s': 0.2})
    assert config.marker_lifetime_s == 2.0
    with pytest.raises(ConfigError, match=r'anomaly_threshold: -0\.1 is not allowed: use -1 or a value from 0 to 1'):
        DetectorConfig.from_parameters({'anomaly_threshold': -0.1})
    with pytest.raises(ConfigError, match=r'markers.min_component_points: -2 is below the minimum -1'):
        DetectorConfig.from_parameters({'markers.min_component_points': -2})
    with pytest.raises(ConfigError, match="backend: 'cuda' is not one of"):
        dataclasses.replace(DetectorConfig(), backend='cuda')


def test_empty_model_path_finds_the_single_shipped_model(tmp_path, monkeypatch, model_path):
    empty, shipped = tmp_path / 'empty', tmp_path / 'shipped'
    empty.mkdir()
    shipped.mkdir()
    monkeypatch.setattr(package_data, 'model_search_dirs', lambda: [empty, shipped])
    with pytest.raises(ConfigError, match='no shipped model was found .*make model'):
        resolve_model_path('')
    (shipped / 'a.onnx').write_bytes(model_path.read_bytes())
    assert resolve_model_path('') == shipped / 'a.onnx'
    (shipped / 'b.onnx').write_bytes(model_path.read_bytes())
    with pytest.raises(ConfigError, match=r"holds several models \['a.onnx', 'b.onnx'\]; set model_path"):
        resolve_model_path('')


def test_a_missing_model_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="model_path '.*nope.onnx': no such file"):
        Detector(DetectorConfig(model_path=str(tmp_path / 'nope.onnx')))
