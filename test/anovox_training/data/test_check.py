"""The dataset check collects every problem and sets the exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from handmade_scenarios import CAMERA_FOLDERS_B, LIDAR_FOLDERS_B, write_layout_a, write_layout_b

from anovox_training.data.check import check_dataset, main, voxel_agreement


def test_clean_dataset_of_both_layouts_passes_with_exit_code_zero(tmp_path, capsys):
    write_layout_b(tmp_path)
    write_layout_b(tmp_path, name='Scenario_c', style='anovox')
    write_layout_a(tmp_path)
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == 'checked 3 scenario(s), 6 frame(s): OK'


def test_every_problem_is_reported_not_just_the_first(tmp_path, capsys):
    truth = write_layout_b(tmp_path)
    base = truth.path
    depth, rgb = CAMERA_FOLDERS_B['depth'], CAMERA_FOLDERS_B['rgb']
    (base / depth / f'{depth}_101.png').unlink()
    (base / rgb / f'{rgb}_101.png').write_bytes(b'\x89PNG broken')
    (base / 'ACTION' / 'ACTION_100.csv').write_text('frame ; 100\nbroken line\n')
    np.save(base / 'VOXEL_GRID' / 'VOXEL_GRID_100.npy', np.zeros((4, 3), np.uint16))
    (base / 'VOXEL_GRID' / 'README').write_text('stray')
    assert main([str(tmp_path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == 'checked 1 scenario(s), 2 frame(s): 5 problem(s)'
    body = '\n'.join(lines[:-1])
    assert 'Scenario_b VOXEL_GRID/README: unexpected entry in the voxels folder' in body
    assert f'Scenario_b frame 101 {depth}/{depth}_101.png: no depth file for this frame' in body
    assert f'Scenario_b frame 101 {rgb}/{rgb}_101.png: not a readable image' in body
    assert 'Scenario_b frame 100 ACTION/ACTION_100.csv: line 2: expected "key ; value"' in body
    assert 'Scenario_b frame 100 VOXEL_GRID/VOXEL_GRID_100.npy: voxel grid: expected an (M, 4) integer array' in body


def test_json_report_lists_problems_with_their_location(tmp_path, capsys):
    truth = write_layout_b(tmp_path)
    (truth.path / 'ANOMALY' / 'ANOMALY_101.csv').write_text('category ; dragon\nlocation ; [1, 2, 3]\n')
    assert main([str(tmp_path), '--json']) == 1
    report = json.loads(capsys.readouterr().out)
    assert report['ok'] is False and report['scenarios'] == 1 and report['frames'] == 2
    (problem,) = report['problems']
    assert problem['scenario'] == 'Scenario_b' and problem['frame'] == 101
    assert problem['file'] == 'ANOMALY/ANOMALY_101.csv' and 'dragon' in problem['message']


def test_points_in_the_wrong_y_convention_are_caught_by_the_voxel_agreement(tmp_path):
    truth = write_layout_b(tmp_path)
    folder = LIDAR_FOLDERS_B['semantic_points']
    for frame_id, frame in truth.frames.items():
        # Stored as is although sensor_setup says y is negated: the reader mirrors them.
        np.save(truth.path / folder / f'{folder}_{frame_id}.npy', frame.semantic_points)
    report = check_dataset(tmp_path)
    assert len(report.problems) == 2
    assert 'semantic LiDAR points fall into occupied voxels' in report.problems[0].message
    assert 'with y negated 100% do, so the point y convention looks flipped' in report.problems[0].message
    assert check_dataset(tmp_path, consistency=False).ok


def test_voxel_agreement_counts_only_points_inside_the_grid():
    points = np.array([[0.1, 0.1, 0.1, 1], [5.2, 0.1, 0.1, 1], [1000.0, 0, 0, 1]])
    voxels = np.array([[500, 500, 32, 1]])
    assert voxel_agreement(points, voxels) == 0.5
    assert np.isnan(voxel_agreement(points[2:], voxels))


def test_max_frames_limits_the_scan(tmp_path):
    truth = write_layout_b(tmp_path)
    (truth.path / 'ACTION' / 'ACTION_101.csv').write_text('garbage')
    report = check_dataset(tmp_path, max_frames=1)
    assert report.ok and report.frames == 1


def test_root_without_scenarios_is_a_problem_and_the_module_runs_as_a_script(tmp_path):
    result = subprocess.run(
        [sys.executable, '-m', 'anovox_training.data.check', str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert 'no AnoVox scenario (Scenario_* folder with sensor data)' in result.stdout
    assert result.stdout.strip().endswith('checked 0 scenario(s), 0 frame(s): 1 problem(s)')
