"""ScenarioReader on hand-built Layout B scenarios (AnoVox's conventions and the legacy generator output)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from handmade_scenarios import (
    CAMERA_FOLDERS_B,
    HEIGHT,
    LIDAR_FOLDERS_B,
    WIDTH,
    sensor_setup_b,
    write_anomaly,
    write_layout_b,
)
from PIL import Image

from anovox_perception.core.errors import ConfigError, DataError
from anovox_perception.core.geometry import CameraModel, transform_points
from anovox_training.data.frame import SENSORS
from anovox_training.data.reader import ScenarioReader, find_scenarios

ARRAYS = ('rgb', 'depth_m', 'semantic', 'instance', 'points', 'semantic_points', 'voxels')


@pytest.mark.parametrize('style', ['carla', 'anovox'])
def test_every_sensor_reads_back_what_was_written_in_the_rep103_lidar_frame(tmp_path, style):
    truth = write_layout_b(tmp_path, style=style)
    reader = ScenarioReader(truth.path)
    assert reader.layout == 'B' and reader.name == 'Scenario_b'
    assert reader.frame_ids == [100, 101] and reader.sensors == SENSORS
    # The legacy generator output stores y negated; AnoVox's files are already REP-103.
    assert reader.points_y_negated is (style == 'carla')
    for frame_id, expected in truth.frames.items():
        frame = reader.read(frame_id)
        assert (frame.scenario, frame.frame_id) == ('Scenario_b', frame_id)
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(frame, name), getattr(expected, name), err_msg=name)
        assert frame.rgb.dtype == np.uint8 and frame.depth_m.dtype == np.float32
        assert frame.points.dtype == np.float32 and frame.semantic_points.dtype == np.float32
        assert frame.voxels.dtype == np.uint16 and frame.instance.dtype == np.int32
        (anomaly,) = frame.anomalies
        assert (anomaly.category, anomaly.label) == ('animal', 30)
        np.testing.assert_allclose(anomaly.location_m, [10.0, 3.0, -1.2])


def test_camera_comes_from_sensor_setup_and_the_mono_rig_gives_a_pure_axis_swap(tmp_path):
    reader = ScenarioReader(write_layout_b(tmp_path).path)
    assert reader.camera == CameraModel.from_fov(WIDTH, HEIGHT, 90.0)
    # Forward in the LiDAR frame is +z in the optical frame; left is -x.
    cam = transform_points(reader.T_cam_lidar, np.array([[5.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    np.testing.assert_allclose(cam, [[0, 0, 5], [-2, 0, 0]], atol=1e-12)


def test_action_csv_is_parsed_with_timestamp_and_matrices(tmp_path):
    truth = write_layout_b(tmp_path)
    frame = ScenarioReader(truth.path).read(101, ['action'])
    assert frame.timestamp_s == pytest.approx(10.1)
    np.testing.assert_array_equal(frame.action['lidar_transformation'], truth.frames[101].lidar_matrix)
    assert frame.action['weather'] == 'ClearNoon' and frame.rgb is None and frame.anomalies == []


@pytest.mark.parametrize(
    ('style', 'rotation'),
    [('carla', [0, 90, 0]), ('anovox', [0, 0, 90])],  # [pitch, yaw, roll] vs AnoVox's [roll, pitch, yaw]
)
def test_mount_rotation_order_follows_the_writer_so_a_right_facing_camera_sees_right(tmp_path, style, rotation):
    truth = write_layout_b(tmp_path, style=style)
    setup = sensor_setup_b(style)
    setup[CAMERA_FOLDERS_B['rgb']]['rotation'] = rotation
    (truth.path / 'sensor_setup.json').write_text(json.dumps(setup))
    t_cam_lidar = ScenarioReader(truth.path).T_cam_lidar
    # A point 5 m to the right (REP-103 y = -5) lies on the optical axis of a camera yawed 90 deg right.
    np.testing.assert_allclose(transform_points(t_cam_lidar, np.array([[0.0, -5.0, 0.0]])), [[0, 0, 5]], atol=1e-9)


def test_semantic_lidar_folder_is_never_taken_for_the_lidar(tmp_path):
    truth = write_layout_b(tmp_path)
    shutil.rmtree(truth.path / LIDAR_FOLDERS_B['points'])
    reader = ScenarioReader(truth.path)
    assert 'points' not in reader.sensors and 'semantic_points' in reader.sensors
    with pytest.raises(DataError, match=r'Scenario_b frame 100: no points data: expected a folder .*LIDAR\.\.\.'):
        reader.read(100, ['points'])


def test_missing_file_is_reported_with_scenario_frame_and_expected_path(tmp_path):
    truth = write_layout_b(tmp_path)
    folder = CAMERA_FOLDERS_B['depth']
    (truth.path / folder / f'{folder}_101.png').unlink()
    reader = ScenarioReader(truth.path)
    assert reader.frame_ids == [100, 101]
    assert reader.incomplete_frames() == {101: ['depth']}
    reader.read(101, ['rgb', 'points'])  # the other sensors of the frame still read
    expected = r'Scenario_b frame 101 DEPTH_CAM.*_222/DEPTH_CAM.*_222_101\.png: no depth file for this frame'
    with pytest.raises(DataError, match=expected + r' \(the folder has 1 frames, 100\.\.100\)'):
        reader.read(101)


def test_truncated_png_names_the_file_and_what_was_expected(tmp_path):
    truth = write_layout_b(tmp_path)
    folder = CAMERA_FOLDERS_B['rgb']
    path = truth.path / folder / f'{folder}_100.png'
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r'Scenario_b frame 100 RGB-CAM.*_100\.png: not a readable image'):
        ScenarioReader(truth.path).read(100, ['rgb'])


def test_wrongly_shaped_point_array_is_rejected(tmp_path):
    truth = write_layout_b(tmp_path)
    folder = LIDAR_FOLDERS_B['semantic_points']
    np.save(truth.path / folder / f'{folder}_100.npy', np.zeros((10, 3), np.float32))
    with pytest.raises(DataError, match=r'frame 100 SEMANTIC-LIDAR.*semantic point cloud: expected an \(N, 4\)'):
        ScenarioReader(truth.path).read(100, ['semantic_points'])


def test_unparsable_action_csv_reports_the_line(tmp_path):
    truth = write_layout_b(tmp_path)
    (truth.path / 'ACTION' / 'ACTION_101.csv').write_text('frame ; 101\nno separator here\n')
    with pytest.raises(DataError, match=r'Scenario_b frame 101 ACTION/ACTION_101\.csv: line 2: expected "key ; value"'):
        ScenarioReader(truth.path).read(101, ['action'])


def test_bad_sensor_setup_json_fails_at_construction(tmp_path):
    truth = write_layout_b(tmp_path)
    (truth.path / 'sensor_setup.json').write_text('{"RGB-CAM": ')
    with pytest.raises(DataError, match=r'Scenario_b sensor_setup\.json: invalid JSON at line 1'):
        ScenarioReader(truth.path)


def test_bad_mount_in_sensor_setup_names_the_entry(tmp_path):
    truth = write_layout_b(tmp_path)
    setup = sensor_setup_b()
    setup[CAMERA_FOLDERS_B['rgb']]['location'] = [0, 1.8]
    (truth.path / 'sensor_setup.json').write_text(json.dumps(setup))
    with pytest.raises(DataError, match=r'sensor_setup\.json: RGB-CAM.*\.location: expected 3 numbers, got 2'):
        ScenarioReader(truth.path)


def test_image_that_disagrees_with_the_camera_size_is_rejected(tmp_path):
    truth = write_layout_b(tmp_path)
    folder = CAMERA_FOLDERS_B['rgb']
    Image.fromarray(np.zeros((HEIGHT, WIDTH + 2, 3), np.uint8)).save(truth.path / folder / f'{folder}_100.png')
    with pytest.raises(DataError, match=rf'image is {WIDTH + 2}x{HEIGHT}, expected the camera size {WIDTH}x{HEIGHT}'):
        ScenarioReader(truth.path).read(100, ['rgb'])


def test_unknown_sensor_names_and_frames_are_refused(tmp_path):
    reader = ScenarioReader(write_layout_b(tmp_path).path)
    with pytest.raises(ConfigError, match=r"unknown sensors \['lidar'\]"):
        reader.read(100, ['lidar'])
    with pytest.raises(DataError, match=r'Scenario_b frame 5: no such frame; the scenario has 2 frames, 100\.\.101'):
        reader.read(5)


def test_normality_frames_and_scenarios_without_anomaly_folder_have_no_anomalies(tmp_path):
    truth = write_layout_b(tmp_path)
    write_anomaly(truth.path / 'ANOMALY' / 'ANOMALY_100.csv', style='none')
    reader = ScenarioReader(truth.path)
    assert reader.read(100, ['anomaly']).anomalies == []
    assert len(reader.read(101, ['anomaly']).anomalies) == 1
    shutil.rmtree(truth.path / 'ANOMALY')
    assert ScenarioReader(truth.path).read(101, ['anomaly']).anomalies == []


def test_stray_and_duplicate_files_are_listed_as_issues_and_npy_wins(tmp_path):
    truth = write_layout_b(tmp_path)
    folder = LIDAR_FOLDERS_B['points']
    (truth.path / folder / 'notes.txt').write_text('x')
    (truth.path / folder / f'{folder}_100.pcd').write_text('not read')
    (truth.path / folder / '.hidden').write_text('ignored')
    reader = ScenarioReader(truth.path)
    stray, duplicate = sorted(reader.issues, key=lambda issue: issue.frame is not None)
    assert stray.file == f'{folder}/notes.txt' and 'unexpected entry in the points folder' in stray.message
    assert duplicate.frame == 100 and duplicate.file == f'{folder}/{folder}_100.pcd'
    assert duplicate.message.startswith('second points file for this frame')
    np.testing.assert_array_equal(reader.read(100, ['points']).points, truth.frames[100].points)


def test_without_sensor_setup_the_camera_takes_the_image_size_and_the_folder_name_mounts(tmp_path):
    truth = write_layout_b(tmp_path, style='anovox')
    (truth.path / 'sensor_setup.json').unlink()
    reader = ScenarioReader(truth.path)
    assert reader.camera == CameraModel.from_fov(WIDTH, HEIGHT, 90.0)
    assert not reader.points_y_negated
    np.testing.assert_allclose(transform_points(reader.T_cam_lidar, np.array([[5.0, 0, 0]])), [[0, 0, 5]], atol=1e-12)


def test_a_second_rig_is_ignored_in_favour_of_the_lidar_mount(tmp_path):
    truth = write_layout_b(tmp_path)
    other = 'RGB-CAM(0, -1, 1.8)(0, 0, -15)_999'
    (truth.path / other).mkdir()
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(truth.path / other / f'{other}_100.png')
    reader = ScenarioReader(truth.path)
    assert reader.sources['rgb'].folder.name == CAMERA_FOLDERS_B['rgb'] and reader.issues == []


def test_find_scenarios_walks_nested_roots_and_skips_configuration_folders(tmp_path):
    write_layout_b(tmp_path / 'Final_Output_1', name='Scenario_z')
    write_layout_b(tmp_path / 'Final_Output_1', name='Scenario_a')
    write_layout_b(tmp_path / 'Final_Output_2', name='Scenario_m')
    (tmp_path / 'Final_Output_1' / 'Scenario_Configuration_Files').mkdir()
    found = [p.relative_to(tmp_path).as_posix() for p in find_scenarios(tmp_path)]
    assert found == ['Final_Output_1/Scenario_a', 'Final_Output_1/Scenario_z', 'Final_Output_2/Scenario_m']
    assert find_scenarios(tmp_path / 'Final_Output_2' / 'Scenario_m') == [tmp_path / 'Final_Output_2' / 'Scenario_m']
    with pytest.raises(DataError, match='no AnoVox scenario'):
        find_scenarios(tmp_path / 'Final_Output_1' / 'Scenario_Configuration_Files')
    with pytest.raises(DataError, match='is not a directory'):
        find_scenarios(tmp_path / 'missing')


def test_a_folder_without_sensor_data_is_not_a_scenario(tmp_path):
    (tmp_path / 'Scenario_empty' / 'ROUTE_MAP').mkdir(parents=True)
    with pytest.raises(DataError, match='Scenario_empty is not an AnoVox scenario'):
        ScenarioReader(tmp_path / 'Scenario_empty')
