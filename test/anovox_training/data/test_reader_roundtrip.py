"""Generator -> reader -> check: a tiny synthetic scenario reads back consistent with its own scene.

The generator writes AnoVox's own conventions (point clouds already in the REP-103
LiDAR frame, anomaly locations in CARLA world coordinates), so these tests also
pin down that the reader takes its AnoVox branch for them, and that a wrong point
y convention would show.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anovox_perception.core.geometry import CameraModel, anovox_voxel_center, camera_from_lidar, transform_points
from anovox_perception.core.preprocess import InputSpec, camera_geometry
from anovox_training.data.cache import sample_arrays
from anovox_training.data.check import check_dataset
from anovox_training.data.frame import SENSORS, AnomalyInfo
from anovox_training.data.labels import LABEL_IDS, is_anomaly
from anovox_training.data.reader import ScenarioReader, find_scenarios
from anovox_training.data.synth import GenerateConfig, WorldSettings, build_scenario, generate
from anovox_training.data.synth.__main__ import main as synth_main
from anovox_training.data.synth.variation import RigVariation

VOXEL_HALF_DIAGONAL_M = 0.5 * np.sqrt(3) / 2
FRAMES, SEED, SPLIT = 2, 1, 'train'


@pytest.fixture(scope='module')
def scenario(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth')
    args = ['--out', str(out), '--split', SPLIT, '--scenarios', '1', '--frames', str(FRAMES)]
    args += [
        '--width',
        '96',
        '--height',
        '64',
        '--seed',
        str(SEED),
        '--normal-share',
        '0',
        '--no-progress',
        '--fixed-rig',
    ]
    assert synth_main(args) == 0
    (path,) = find_scenarios(out)
    return path


# A rig unlike AnoVox's: KITTI-shaped camera ahead of and below a pitched HDL-64E, on a sloped road.
KITTI_LIKE = RigVariation(
    beam_layout_weights=(('hdl64e', 1.0),),
    camera_shape_weights=(('kitti', 1.0),),
    lidar_pitch_deg=(1.5, 2.0),
    camera_offset_x_m=(0.25, 0.3),
    camera_offset_z_m=(-0.1, -0.06),
    grade=(0.05, 0.07),
)


@pytest.fixture(scope='module')
def varied(tmp_path_factory):
    cfg = GenerateConfig(
        out=tmp_path_factory.mktemp('varied'),
        split=SPLIT,
        scenarios=1,
        frames=FRAMES,
        seed=SEED,
        width=192,
        height=128,
        lidar_azimuth_steps=512,
        normal_share=0.0,
        variation=KITTI_LIKE,
    )
    (path,), _ = generate(cfg)
    return path, cfg.rig(0)


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


def anomaly_points(reader: ScenarioReader, frame_id: int) -> tuple[np.ndarray, list[AnomalyInfo]]:
    frame = reader.read(frame_id, ['semantic_points', 'anomaly'])
    return frame.semantic_points[is_anomaly(frame.semantic_points[:, 3])], frame.anomalies


def camera_agreement(reader: ScenarioReader) -> tuple[int, float, float]:
    """Projected semantic points: how many are visible, share whose label matches the pixel, median depth error."""
    frame = reader.read(reader.frame_ids[0], ['semantic', 'depth', 'semantic_points'])
    cam = transform_points(frame.T_cam_lidar, frame.semantic_points)
    uv, visible = frame.camera.project(cam)
    u, v = uv[visible, 0].astype(int), uv[visible, 1].astype(int)
    agreement = float(np.mean(frame.semantic[v, u] == frame.semantic_points[visible, 3]))
    depth_error = float(np.median(np.abs(frame.depth_m[v, u] - cam[visible, 2])))
    return int(visible.sum()), agreement, depth_error


def test_generated_scenario_passes_the_check(scenario):
    report = check_dataset(scenario.parent)
    assert report.ok, [str(p) for p in report.problems]
    assert (report.scenarios, report.frames) == (1, FRAMES)


def test_generated_scenario_reads_as_anovox_layout_b_with_its_camera(scenario):
    reader = ScenarioReader(scenario)
    assert reader.layout == 'B' and reader.sensors == SENSORS and len(reader.frame_ids) == FRAMES
    # AnoVox's branch: stored clouds are taken as REP-103 as they are.
    assert not reader.points_y_negated and reader.camera == CameraModel.from_fov(96, 64, 90.0)
    frame = reader.read(reader.frame_ids[1])
    assert frame.rgb.shape == (64, 96, 3) and frame.depth_m.shape == (64, 96) and frame.semantic.shape == (64, 96)
    assert frame.semantic_points.dtype == np.float32 and frame.action['frame_id'] == reader.frame_ids[1]
    assert frame.timestamp_s == pytest.approx(reader.read(reader.frame_ids[0], ['action']).timestamp_s + 0.1)


def test_anomalies_read_back_as_the_generator_placed_them(scenario):
    # The ANOMALY csv holds CARLA world locations and yaws; the reader brings them into the LiDAR frame.
    world = build_scenario(SPLIT, 0, SEED, WorldSettings(FRAMES, None, 0.0))
    reader = ScenarioReader(scenario)
    assert scenario.name == f'Scenario_{world.scenario_id}'
    for k, frame_id in enumerate(reader.frame_ids):
        boxes = world.anomaly_boxes(k)
        read = reader.read(frame_id, ['anomaly']).anomalies
        assert boxes and len(read) == len(boxes)
        for box, anomaly in zip(boxes, read, strict=True):
            assert (anomaly.category, anomaly.label) == (box.anomaly.category, box.anomaly.label)
            assert anomaly.instance_id == box.instance_id
            np.testing.assert_allclose(anomaly.location_m, box.center_m, atol=1e-9)
            np.testing.assert_allclose(anomaly.size_m, box.size_m, atol=1e-9)
            assert anomaly.yaw_deg == pytest.approx(box.yaw_deg, abs=1e-9)


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


def test_reading_the_points_with_y_flipped_misses_the_anomaly_boxes(scenario):
    # The anomaly csv goes through CARLA world coordinates, independent of the point files' y convention.
    flipped = ScenarioReader(scenario, points_y_negated=True)
    for frame_id in flipped.frame_ids:
        points, anomalies = anomaly_points(flipped, frame_id)
        assert len(points) > 10
        assert inside_some_box(points, anomalies, 0.05).mean() < 0.5


def test_lidar_points_project_onto_matching_camera_labels_and_depths(scenario):
    # End to end: point y convention, T_cam_lidar, camera model, semantic and depth decoding agree.
    visible, agreement, depth_error = camera_agreement(ScenarioReader(scenario))
    assert visible > 500
    assert agreement > 0.85, agreement
    assert depth_error < 0.3, depth_error
    # The same points read with y flipped fail both bounds: the check above would catch a wrong convention.
    _, flipped_agreement, flipped_error = camera_agreement(ScenarioReader(scenario, points_y_negated=True))
    assert flipped_agreement < 0.5 and flipped_error > 0.3, (flipped_agreement, flipped_error)


def test_a_varied_rig_reads_back_with_its_own_camera_and_extrinsics(varied):
    path, rig = varied
    reader = ScenarioReader(path)
    assert reader.camera == rig.camera.camera and reader.camera.width / reader.camera.height == pytest.approx(3.3, 0.02)
    expected = camera_from_lidar(rig.camera_mount.ego_from_sensor(), rig.lidar_mount.ego_from_sensor())
    np.testing.assert_allclose(reader.T_cam_lidar, expected, atol=1e-12)
    # The camera sits about 0.27 m ahead of the LiDAR: in the optical frame the LiDAR is behind it (z < 0).
    lidar_in_camera = reader.T_cam_lidar[:3, 3]
    assert -0.35 < lidar_in_camera[2] < -0.2
    frame = reader.read(reader.frame_ids[0])
    assert frame.rgb.shape == (rig.camera.camera.height, rig.camera.camera.width, 3)
    # ACTION's world-from-camera and world-from-LiDAR matrices differ by the mounts (CARLA axes).
    flip = np.diag([1.0, -1.0, 1.0, 1.0])
    world_from_lidar = flip @ np.asarray(frame.action['lidar transformation matrix']) @ flip
    world_from_camera = flip @ np.asarray(frame.action['camera transformation matrix']) @ flip
    np.testing.assert_allclose(np.linalg.inv(world_from_lidar) @ world_from_camera, rig.lidar_from_camera, atol=1e-6)


def test_a_varied_rig_passes_the_check_and_its_points_match_the_camera(varied):
    path, _ = varied
    report = check_dataset(path.parent)
    assert report.ok, [str(p) for p in report.problems]
    visible, agreement, depth_error = camera_agreement(ScenarioReader(path))
    assert visible > 500 and agreement > 0.85 and depth_error < 0.3, (visible, agreement, depth_error)


def test_training_inputs_of_a_varied_rig_put_object_points_on_their_pixels(varied):
    # As training builds them: the cached camera and T_cam_lidar, the image resized to the model's size.
    path, rig = varied
    reader = ScenarioReader(path)
    spec = InputSpec()
    frame = reader.read(reader.frame_ids[0])
    arrays = sample_arrays(frame, spec)
    w, h, fx, fy, cx, cy = arrays['camera']
    camera = CameraModel(int(w), int(h), fx, fy, cx, cy).scaled(spec.image_width, spec.image_height)
    assert arrays['image'].shape == (spec.image_height, spec.image_width, 3)
    semantic = np.asarray(
        Image.fromarray(frame.semantic).resize((spec.image_width, spec.image_height), Image.Resampling.NEAREST)
    )
    points = frame.semantic_points
    cam = transform_points(arrays['T_cam_lidar'], points)
    # Points the full-size depth image sees (not hidden by parallax), on objects: cars, poles, anomalies, ...
    full_uv, full_visible = frame.camera.project(cam)
    u, v = full_uv[full_visible].astype(int).T
    seen = np.flatnonzero(full_visible)[np.abs(frame.depth_m[v, u] - cam[full_visible, 2]) < 0.05]
    objects = seen[~np.isin(points[seen, 3], [LABEL_IDS['road'], LABEL_IDS['sidewalk'], LABEL_IDS['terrain']])]
    uv, visible = camera.project(cam[objects])
    u, v = uv[visible].astype(int).T
    assert visible.sum() > 200
    assert np.mean(semantic[v, u] == points[objects[visible], 3]) > 0.85
    # The model's geometry inputs from the cached arrays are those of the rig the generator drew.
    geometry = camera_geometry(spec, CameraModel(int(w), int(h), fx, fy, cx, cy), arrays['T_cam_lidar'])
    truth = camera_from_lidar(rig.camera_mount.ego_from_sensor(), rig.lidar_mount.ego_from_sensor())
    expected = camera_geometry(spec, rig.camera.camera, truth)
    np.testing.assert_allclose(geometry['cell_uv'], expected['cell_uv'], atol=1e-6)
    np.testing.assert_array_equal(geometry['cell_valid'], expected['cell_valid'])
    assert geometry['cell_valid'].mean() > 0.05
