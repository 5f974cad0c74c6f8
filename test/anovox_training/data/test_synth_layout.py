"""Synthetic world: the generator writes Layout B with AnoVox's conventions (docs/LAYOUT_B.md), deterministically."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anovox_perception.core.errors import ConfigError
from anovox_training.data.labels import CATEGORY_TO_LABEL, LABEL_NAMES
from anovox_training.data.synth import SPLIT_CATEGORIES, GenerateConfig, encode_depth, generate
from anovox_training.data.synth.__main__ import main
from anovox_training.data.synth.variation import RigVariation

PREFIXES = ('RGB-CAM', 'DEPTH_CAM', 'SEMANTIC-CAM', 'INSTANCE-CAM', 'LIDAR', 'SEMANTIC-LIDAR')
FRAMES = 3


def _config(out: Path, **kw) -> GenerateConfig:
    args = {
        'out': out,
        'split': 'test',
        'scenarios': 1,
        'frames': FRAMES,
        'seed': 5,
        'width': 96,
        'height': 64,
        'lidar_azimuth_steps': 256,
        'normal_share': 0.0,
        # AnoVox's MONO rig on a flat road: the conventions below are checked on its known numbers.
        'variation': RigVariation.fixed(),
    }
    args.update(kw)
    return GenerateConfig(**args)


@pytest.fixture(scope='module')
def scenario(tmp_path_factory) -> Path:
    folders, _ = generate(_config(tmp_path_factory.mktemp('synth')))
    return folders[0]


def _sensor_dir(scenario: Path, prefix: str) -> Path:
    (match,) = [
        p for p in scenario.iterdir() if re.fullmatch(re.escape(prefix) + r'\(0, 0, 1\.8\)\(0, 0, 0\)_\d+', p.name)
    ]
    return match


def _frame_ids(folder: Path, ext: str) -> list[int]:
    ids = []
    for p in folder.iterdir():
        m = re.fullmatch(re.escape(folder.name) + r'_(\d+)\.' + ext, p.name)
        assert m, f'unexpected file {p.name}'
        ids.append(int(m.group(1)))
    return sorted(ids)


def _csv(path: Path) -> dict[str, str]:
    rows = {}
    for line in path.read_text().splitlines():
        key, value = line.split(' ; ', 1)
        rows[key] = value
    return rows


def test_scenario_folder_is_named_by_uuid_and_holds_every_stream(scenario: Path):
    assert re.fullmatch(r'Scenario_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', scenario.name)
    ids = None
    for prefix in PREFIXES:
        folder = _sensor_dir(scenario, prefix)
        found = _frame_ids(folder, 'npy' if 'LIDAR' in prefix else 'png')
        assert ids is None or found == ids
        ids = found
    for extra, ext in (('VOXEL_GRID', 'npy'), ('ACTION', 'csv'), ('ANOMALY', 'csv')):
        assert _frame_ids(scenario / extra, ext) == ids
    assert len(ids) == FRAMES and ids == list(range(ids[0], ids[0] + FRAMES))


def test_camera_images_have_the_configured_size_and_anovox_encodings(scenario: Path):
    frame = _frame_ids(scenario / 'ACTION', 'csv')[1]

    def image(prefix: str, mode: str) -> np.ndarray:
        folder = _sensor_dir(scenario, prefix)
        img = Image.open(folder / f'{folder.name}_{frame}.png')
        assert img.mode == mode and img.size == (96, 64)
        return np.asarray(img)

    rgb, depth, instance = (image(p, 'RGB') for p in ('RGB-CAM', 'DEPTH_CAM', 'INSTANCE-CAM'))
    # AnoVox saves the semantic camera as one channel of label ids.
    semantic = image('SEMANTIC-CAM', 'L')
    assert rgb.std() > 5
    assert set(np.unique(semantic)) <= set(LABEL_NAMES)
    np.testing.assert_array_equal(instance[..., 0], semantic)
    metres = 1000.0 * (depth[..., 0] + 256.0 * depth[..., 1] + 65536.0 * depth[..., 2]) / (256**3 - 1)
    sky = semantic == 11
    np.testing.assert_allclose(metres[sky], 1000.0, atol=1e-3)
    assert (metres[~sky] < 1000.0).all() and (metres[~sky] > 0.1).all()


def test_point_clouds_and_voxels_have_anovox_dtypes(scenario: Path):
    frame = _frame_ids(scenario / 'ACTION', 'csv')[0]
    lidar_dir, sem_dir = _sensor_dir(scenario, 'LIDAR'), _sensor_dir(scenario, 'SEMANTIC-LIDAR')
    points = np.load(lidar_dir / f'{lidar_dir.name}_{frame}.npy')
    semantic = np.load(sem_dir / f'{sem_dir.name}_{frame}.npy')
    voxels = np.load(scenario / 'VOXEL_GRID' / f'VOXEL_GRID_{frame}.npy')
    # AnoVox: float32 LiDAR; float64 semantic LiDAR (float32 points concatenated with uint32 tags).
    assert points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 4
    assert semantic.dtype == np.float64 and semantic.shape == points.shape
    assert np.all(np.linalg.norm(points[:, :3], axis=1) < 101.0)
    assert np.all((points[:, 3] >= 0) & (points[:, 3] <= 1))
    tags = semantic[:, 3]
    assert np.all(tags == np.round(tags)) and set(np.unique(tags).astype(int)) <= set(LABEL_NAMES)
    # Ground below the sensor: the lowest points sit about 1.8 m down.
    assert -1.9 < np.percentile(semantic[:, 2], 1) < -1.6
    assert voxels.dtype == np.uint16 and voxels.ndim == 2 and voxels.shape[1] == 4
    assert voxels[:, 0].max() < 1000 and voxels[:, 1].max() < 1000 and voxels[:, 2].max() < 64


def test_sensor_setup_json_describes_each_sensor_folder_as_anovox_does(scenario: Path):
    setup = json.loads((scenario / 'sensor_setup.json').read_text())
    assert list(setup) == [_sensor_dir(scenario, p).name for p in PREFIXES]
    for prefix in PREFIXES:
        entry = setup[_sensor_dir(scenario, prefix).name]
        assert list(entry) == ['sensor_type', 'file_ending', 'location', 'rotation', 'args', 'save_data']
        assert entry['sensor_type'] == prefix and entry['file_ending'] == ('.npy' if 'LIDAR' in prefix else '.png')
        assert entry['location'] == [0, 0, 1.8] and entry['rotation'] == [0, 0, 0] and entry['save_data'] is True
    assert setup[_sensor_dir(scenario, 'RGB-CAM').name]['args'] == {
        'image_height': 64,
        'image_width': 96,
        'camera_fov': 90.0,
    }
    lidar = setup[_sensor_dir(scenario, 'LIDAR').name]['args']
    assert (lidar['channels'], lidar['upper_fov'], lidar['lower_fov'], lidar['range']) == (64, 15.0, -25.0, 100.0)
    assert lidar['noise_stddev'] == 0.1
    assert lidar['points_per_second'] == 64 * 256 * 10 and lidar['dropoff_rate'] == 0.0
    assert 'beam_elevations' not in lidar and 'intensity_mode' not in lidar
    assert 'noise_stddev' not in setup[_sensor_dir(scenario, 'SEMANTIC-LIDAR').name]['args']


def test_action_csv_holds_anovox_keys_carla_transforms_and_the_timestamp(scenario: Path):
    frames = _frame_ids(scenario / 'ACTION', 'csv')
    rows = [_csv(scenario / 'ACTION' / f'ACTION_{f}.csv') for f in frames]
    for f, row in zip(frames, rows, strict=True):
        assert int(row['frame_id']) == f and f'Scenario_{row["scenario_id"]}' == scenario.name
        matrix = {key: np.array(ast.literal_eval(row[f'{key} transformation matrix'])) for key in ('lidar', 'camera')}
        lidar = matrix['lidar']
        assert lidar.shape == (4, 4) and np.allclose(lidar, matrix['camera'])
        np.testing.assert_allclose(lidar[:3, :3] @ lidar[:3, :3].T, np.eye(3), atol=1e-9)
        for key in ('lidar', 'camera'):
            inverse = np.array(ast.literal_eval(row[f'{key} inverse transformation matrix']))
            np.testing.assert_allclose(matrix[key] @ inverse, np.eye(4), atol=1e-9)
        location = ast.literal_eval(row['ego_location'])
        np.testing.assert_allclose(lidar[:3, 3], np.array(location) + [0, 0, 1.8], atol=1e-9)
        velocity = np.array(ast.literal_eval(row['ego_velocity']))
        assert float(row['speed']) == pytest.approx(3.6 * np.linalg.norm(velocity))  # AnoVox: km/h
        assert len(ast.literal_eval(row['ego_rotation'])) == 3
    times = [float(r['timestamp']) for r in rows]
    np.testing.assert_allclose(np.diff(times), 0.1, atol=1e-6)


def test_anomaly_csv_gives_anovox_keys_and_test_split_categories_with_their_labels(scenario: Path):
    seen = 0
    for f in _frame_ids(scenario / 'ANOMALY', 'csv'):
        row = _csv(scenario / 'ANOMALY' / f'ANOMALY_{f}.csv')
        assert int(row['frame_id']) == f and f'Scenario_{row["scenario_id"]}' == scenario.name
        categories = {k: v for k, v in row.items() if k.startswith('category')}
        for key, category in categories.items():
            suffix = key[len('category') :]
            assert category in SPLIT_CATEGORIES['test']
            label = CATEGORY_TO_LABEL[category]
            assert int(row[f'label{suffix}']) == label and ast.literal_eval(row[f'semantic_tags{suffix}']) == [label]
            assert int(row[f'anomaly_id{suffix}']) == int(row[f'instance_id{suffix}']) > 0
            assert row[f'anomaly_type_id{suffix}'] == 'static.prop.' + row[f'name{suffix}'].replace('/', '_')
            location, size = ast.literal_eval(row[f'location{suffix}']), ast.literal_eval(row[f'size{suffix}'])
            assert isinstance(location, tuple) and len(location) == 3 and len(size) == 3
            assert -180.0 <= float(row[f'yaw{suffix}']) <= 180.0
            seen += 1
    assert seen > 0


def test_frames_without_anomaly_write_category_none(tmp_path: Path):
    (folder,), _ = generate(_config(tmp_path, frames=1, normal_share=1.0))
    (path,) = (folder / 'ANOMALY').iterdir()
    frame = _frame_ids(folder / 'ANOMALY', 'csv')[0]
    assert _csv(path) == {'frame_id': str(frame), 'scenario_id': folder.name[len('Scenario_') :], 'category': 'none'}


def test_same_arguments_write_identical_bytes_with_any_worker_count(scenario: Path, tmp_path: Path):
    folders, _ = generate(_config(tmp_path, workers=2))
    again = folders[0]
    assert again.name == scenario.name
    files = sorted(p.relative_to(scenario) for p in scenario.rglob('*') if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob('*') if p.is_file())
    for rel in files:
        assert (scenario / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_another_seed_gives_another_scenario(scenario: Path, tmp_path: Path):
    folders, _ = generate(_config(tmp_path, seed=6, frames=1))
    assert folders[0].name != scenario.name


def test_depth_encoding_round_trips_to_within_its_resolution():
    depth = np.array([[0.0, 0.05, 1.8, 12.345678], [99.99, 250.0, 999.9, 1000.0]], np.float32)
    png = encode_depth(depth).astype(np.float64)
    decoded = 1000.0 * (png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]) / (256**3 - 1)
    np.testing.assert_allclose(decoded, depth, atol=1000.0 / (256**3 - 1))


def test_cli_writes_a_scenario_and_rejects_bad_settings(tmp_path: Path, capsys):
    args = ['--out', str(tmp_path), '--split', 'train', '--scenarios', '1', '--frames', '1', '--seed', '1']
    assert main([*args, '--width', '64', '--height', '48', '--lidar-azimuth-steps', '128', '--no-progress']) == 0
    assert len(list(tmp_path.glob('Scenario_*/VOXEL_GRID/*.npy'))) == 1
    fixed = tmp_path / 'fixed'
    size = ['--width', '64', '--height', '48', '--lidar-azimuth-steps', '128']
    assert main([*args, '--out', str(fixed), *size, '--fixed-rig', '--no-progress']) == 0
    assert len(list(fixed.glob(r'Scenario_*/LIDAR(0, 0, 1.8)(0, 0, 0)_*'))) == 1
    assert main([*args, '--split', 'holdout', '--no-progress']) == 2
    assert "unknown split 'holdout'" in capsys.readouterr().err


def test_existing_scenarios_are_kept_unless_overwrite_is_asked(tmp_path: Path):
    generate(_config(tmp_path, frames=2))
    with pytest.raises(ConfigError, match='already exist.*--overwrite'):
        generate(_config(tmp_path, frames=1))
    folders, _ = generate(_config(tmp_path, frames=1, overwrite=True))
    assert len(list((folders[0] / 'VOXEL_GRID').iterdir())) == 1


def test_invalid_settings_raise_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match='frames must be >= 1'):
        generate(_config(tmp_path, frames=0))
    with pytest.raises(ConfigError, match=r"unknown or empty categories \['unicorn'\]"):
        generate(_config(tmp_path, categories=('unicorn',)))
