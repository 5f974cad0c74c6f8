"""Generator -> reader -> check: a tiny synthetic scenario reads back consistent with its own scene."""

from __future__ import annotations

import numpy as np
import pytest

from anovox_perception.geometry import CameraModel, anovox_voxel_center, transform_points
from anovox_training.data.check import check_dataset
from anovox_training.data.frame import SENSORS, AnomalyInfo
from anovox_training.data.labels import is_anomaly
from anovox_training.data.reader import ScenarioReader, find_scenarios
from anovox_training.data.synth.__main__ import main as synth_main

VOXEL_HALF_DIAGONAL_M = 0.5 * np.sqrt(3) / 2


@pytest.fixture(scope='module')
def scenario(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth')
    args = ['--out', str(out), '--scenarios', '1', '--frames', '2', '--width', '96', '--height', '64']
    assert synth_main([*args, '--seed', '1', '--normal-share', '0', '--no-progress']) == 0
    (path,) = find_scenarios(out)
    return path


def box_excess_m(points: np.ndarray, anomaly: AnomalyInfo) -> np.ndarray:
    """How far (m, per axis, <= 0 inside) each point lies outside the anomaly's yawed box."""
    d = points[:, :3] - anomaly.location_m
    yaw = np.radians(anomaly.yaw_deg)
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.column_stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]])
    return np.abs(local) - anomaly.size_m / 2


def inside_some_box(points: np.ndarray, anomalies: list[AnomalyInfo], tolerance_m: float) -> np.ndarray:
    inside = np.zeros(len(points), dtype=bool)
    for anomaly in anomalies:
        inside |= np.all(box_excess_m(points, anomaly) <= tolerance_m, axis=1)
    return inside


def test_generated_scenario_passes_the_check(scenario):
    report = check_dataset(scenario.parent)
    assert report.ok, [str(p) for p in report.problems]
    assert (report.scenarios, report.frames) == (1, 2)


def test_generated_scenario_reads_as_layout_b_with_its_camera(scenario):
    reader = ScenarioReader(scenario)
    assert reader.layout == 'B' and reader.sensors == SENSORS and len(reader.frame_ids) == 2
    assert reader.points_y_negated and reader.camera == CameraModel.from_fov(96, 64, 90.0)
    frame = reader.read(reader.frame_ids[1])
    assert frame.rgb.shape == (64, 96, 3) and frame.depth_m.shape == (64, 96)
    assert frame.timestamp_s == pytest.approx(reader.read(reader.frame_ids[0], ['action']).timestamp_s + 0.1)


def test_anomaly_points_and_voxels_lie_inside_the_boxes_the_anomaly_csv_gives(scenario):
    reader = ScenarioReader(scenario)
    hits = 0
    for frame_id in reader.frame_ids:
        frame = reader.read(frame_id)
        assert frame.anomalies, 'normal-share 0 must place an anomaly'
        labels = {a.label for a in frame.anomalies}
        points = frame.semantic_points[is_anomaly(frame.semantic_points[:, 3])]
        voxels = frame.voxels[is_anomaly(frame.voxels[:, 3])]
        assert set(np.unique(points[:, 3]).astype(int)) <= labels
        assert set(np.unique(voxels[:, 3]).astype(int)) <= labels
        # LiDAR hits on an anomaly lie on its surface, so inside its box; voxel centres within half a diagonal.
        assert inside_some_box(points, frame.anomalies, 0.05).all()
        assert inside_some_box(anovox_voxel_center(voxels), frame.anomalies, VOXEL_HALF_DIAGONAL_M).all()
        hits += len(points)
    assert hits > 20


def test_lidar_points_project_onto_matching_camera_labels_and_depths(scenario):
    # End to end: point y convention, T_cam_lidar, camera model, semantic and depth decoding agree.
    reader = ScenarioReader(scenario)
    frame = reader.read(reader.frame_ids[0], ['semantic', 'depth', 'semantic_points'])
    cam = transform_points(frame.T_cam_lidar, frame.semantic_points)
    uv, visible = frame.camera.project(cam)
    assert visible.sum() > 500
    u, v = uv[visible, 0].astype(int), uv[visible, 1].astype(int)
    agreement = np.mean(frame.semantic[v, u] == frame.semantic_points[visible, 3])
    depth_error = np.median(np.abs(frame.depth_m[v, u] - cam[visible, 2]))
    assert agreement > 0.85, agreement
    assert depth_error < 0.3, depth_error
