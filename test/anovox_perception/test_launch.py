"""launch/detect.launch.py: read without launch_ros (AST), and everything it names is installed by colcon."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from anovox_perception.node import INPUT_CAMERA_INFO, INPUT_COMPRESSED_IMAGE, INPUT_IMAGE, INPUT_POINTS

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / 'launch' / 'detect.launch.py'
PACKAGE = 'anovox_perception'
REQUIRED_ARGUMENTS = {
    'params_file',
    'model_path',
    'backend',
    'image_topic',
    'points_topic',
    'camera_info_topic',
    'namespace',
    'use_sim_time',
    'rviz',
}


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Every call of ``name(...)`` (plain or attribute) in the tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, 'attr', None)
            if called == name:
                found.append(node)
    return found


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def value(expr: ast.expr, tree: ast.Module) -> object:
    """A literal, or a module-level constant (``PACKAGE``) resolved to its literal."""
    if isinstance(expr, ast.Name):
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and any(getattr(t, 'id', None) == expr.id for t in stmt.targets):
                return ast.literal_eval(stmt.value)
        raise AssertionError(f'{expr.id} is not a module-level constant')
    return ast.literal_eval(expr)


@pytest.fixture(scope='module')
def tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def test_every_launch_argument_is_declared_with_a_description(tree):
    declared = {}
    for call in calls(tree, 'DeclareLaunchArgument'):
        name = ast.literal_eval(call.args[0])
        description = keyword(call, 'description')
        assert description is not None, f'{name} has no description'
        declared[name] = ast.literal_eval(description)
    assert set(declared) == REQUIRED_ARGUMENTS
    assert all(len(text) > 15 for text in declared.values())
    used = {ast.literal_eval(c.args[0]) for c in calls(tree, 'LaunchConfiguration')}
    assert used == REQUIRED_ARGUMENTS, 'every argument is used and only declared ones are'


def test_launch_file_defines_generate_launch_description(tree):
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in functions


def test_remappings_cover_every_node_input(tree):
    (node_call,) = [c for c in calls(tree, 'Node') if value(keyword(c, 'executable'), tree) == 'anovox-detect']
    remapped = {ast.literal_eval(pair.elts[0]) for pair in keyword(node_call, 'remappings').elts}
    assert remapped == {INPUT_IMAGE, INPUT_COMPRESSED_IMAGE, INPUT_POINTS, INPUT_CAMERA_INFO}


def share_files(tree: ast.Module) -> list[tuple[str, ...]]:
    """Paths (relative to the package share) named by PathJoinSubstitution([share, ...])."""
    out = []
    for call in calls(tree, 'PathJoinSubstitution'):
        parts = call.args[0].elts
        assert isinstance(parts[0], ast.Name) and parts[0].id == 'share'
        out.append(tuple(ast.literal_eval(p) for p in parts[1:]))
    return out


@pytest.fixture(scope='module')
def install(tmp_path_factory) -> Path:
    colcon = Path(sys.executable).parent / 'colcon'
    if not colcon.exists() and shutil.which('colcon') is None:
        pytest.skip('colcon is not installed (pip install colcon-common-extensions)')
    base = tmp_path_factory.mktemp('colcon')
    cmd = [
        str(colcon if colcon.exists() else shutil.which('colcon')),
        '--log-base', str(base / 'log'),
        'build', '--base-paths', str(ROOT),
        '--build-base', str(base / 'build'), '--install-base', str(base / 'install'),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=base, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return base / 'install' / PACKAGE


def test_colcon_installs_every_file_and_executable_the_launch_file_names(tree, install):
    share = install / 'share' / PACKAGE
    named = share_files(tree)
    assert ('config', 'detector.yaml') in named and ('config', 'anovox.rviz') in named
    for parts in named:
        assert share.joinpath(*parts).is_file(), f'{"/".join(parts)} not installed in {share}'
    for call in calls(tree, 'Node'):
        package = value(keyword(call, 'package'), tree)
        assert package in (PACKAGE, 'rviz2')
        if package == PACKAGE:
            executable = value(keyword(call, 'executable'), tree)
            assert (install / 'lib' / PACKAGE / executable).is_file(), f'{executable} not in lib/{PACKAGE}'
    assert (share / 'launch' / 'detect.launch.py').is_file()
    assert (share / 'config' / 'detector.schema.json').is_file()
    assert (share / 'config' / 'fastdds_large_data.xml').is_file()
    assert (share / 'package.xml').is_file()
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE).is_file()


def test_installed_rviz_layout_shows_the_node_outputs_in_the_lidar_frame(install):
    layout = yaml.safe_load((install / 'share' / PACKAGE / 'config' / 'anovox.rviz').read_text())
    manager = layout['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == 'lidar'
    displays = {d['Topic']['Value']: d for d in manager['Displays'] if 'Topic' in d}
    assert displays['/anovox_detector/output/score_grid']['Class'] == 'rviz_default_plugins/Map'
    voxels = displays['/anovox_detector/output/voxel_scores']
    assert voxels['Class'] == 'rviz_default_plugins/PointCloud2' and voxels['Channel Name'] == 'score'
    assert displays['/anovox_detector/output/markers']['Class'] == 'rviz_default_plugins/MarkerArray'
    assert displays['/sensing/lidar/points']['Class'] == 'rviz_default_plugins/PointCloud2'
    assert displays['/sensing/camera/image_raw']['Class'] == 'rviz_default_plugins/Image'
