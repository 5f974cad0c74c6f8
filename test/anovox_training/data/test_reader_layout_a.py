"""ScenarioReader on a hand-built Layout A (benchmark) scenario: colour-coded semantics and .pcd clouds."""

from __future__ import annotations

import numpy as np
import pytest
from handmade_scenarios import FOLDERS_A, HEIGHT, WIDTH, binary_compressed, write_layout_a
from PIL import Image

from anovox_perception.core.errors import DataError
from anovox_perception.core.geometry import CameraModel
from anovox_training.data.reader import ScenarioReader


def as_layout_a_labels(labels: np.ndarray) -> np.ndarray:
    """Colour coding gives every anomaly category AnoVox's one anomaly colour, read back as 100."""
    out = labels.copy()
    out[(out >= 29) & (out <= 34)] = 100
    return out


def test_layout_a_frames_read_back_with_colour_coded_semantics_and_pcd_clouds(tmp_path):
    truth = write_layout_a(tmp_path)
    reader = ScenarioReader(truth.path)
    assert reader.layout == 'A' and reader.frame_ids == [7, 8]
    assert not reader.points_y_negated  # AnoVox's clouds are stored in the REP-103 frame
    assert reader.camera == CameraModel.from_fov(WIDTH, HEIGHT, 90.0)  # image size, default FOV
    for frame_id, expected in truth.frames.items():
        frame = reader.read(frame_id)
        np.testing.assert_array_equal(frame.rgb, expected.rgb)
        np.testing.assert_array_equal(frame.depth_m, expected.depth_m)
        np.testing.assert_array_equal(frame.semantic, as_layout_a_labels(expected.semantic))
        np.testing.assert_array_equal(frame.points, expected.points)  # ascii PCD with intensity
        sem = expected.semantic_points.copy()
        sem[:, 3] = as_layout_a_labels(sem[:, 3])
        np.testing.assert_array_equal(frame.semantic_points, sem)  # binary PCD with packed rgb
        np.testing.assert_array_equal(frame.voxels, expected.voxels)
        assert frame.instance is None
        assert frame.action['scenario_id'] == 'abc' and frame.timestamp_s is None


def test_anovox_anomaly_world_location_lands_in_the_lidar_frame(tmp_path):
    truth = write_layout_a(tmp_path)
    (anomaly,) = ScenarioReader(truth.path).read(8, ['anomaly']).anomalies
    np.testing.assert_allclose(anomaly.location_m, [10.0, 3.0, -1.2], atol=1e-9)
    assert (anomaly.label, anomaly.category, anomaly.instance_id) == (30, 'animal', 4242)


def test_binary_compressed_pcd_is_read(tmp_path):
    truth = write_layout_a(tmp_path)
    expected = truth.frames[7].points
    cloud = np.zeros(len(expected), dtype=[('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('intensity', '<f4')])
    for i, name in enumerate(cloud.dtype.names):
        cloud[name] = expected[:, i]
    (truth.path / 'PCD' / 'PCD_7.pcd').write_bytes(binary_compressed(cloud))
    np.testing.assert_array_equal(ScenarioReader(truth.path).read(7, ['points']).points, expected)


def test_colours_outside_the_palette_name_the_file(tmp_path):
    truth = write_layout_a(tmp_path)
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 7, np.uint8)).save(truth.path / 'SEMANTIC_IMG' / 'SEMANTIC_IMG_8.png')
    match = r'Scenario_a frame 8 SEMANTIC_IMG/SEMANTIC_IMG_8\.png: 192 pixels have colours outside'
    with pytest.raises(DataError, match=match):
        ScenarioReader(truth.path).read(8, ['semantic'])


def test_truncated_pcd_names_scenario_frame_and_file(tmp_path):
    truth = write_layout_a(tmp_path)
    path = truth.path / 'SEMANTIC_PCD' / 'SEMANTIC_PCD_8.pcd'
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match=r'Scenario_a frame 8 SEMANTIC_PCD/SEMANTIC_PCD_8\.pcd: PCD binary body has'):
        ScenarioReader(truth.path).read(8, ['semantic_points'])


def test_missing_folder_means_the_sensor_is_absent_and_reading_it_says_which_folder(tmp_path):
    truth = write_layout_a(tmp_path)
    for path in (truth.path / FOLDERS_A['depth']).iterdir():
        path.unlink()
    (truth.path / FOLDERS_A['depth']).rmdir()
    reader = ScenarioReader(truth.path)
    assert 'depth' not in reader.sensors
    with pytest.raises(DataError, match='Scenario_a frame 7: no depth data: expected a folder DEPTH_IMG'):
        reader.read(7, ['depth'])
