"""launch/detect.launch.py: read without launch_ros (AST), and everything it names is installed by colcon."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from anovox_perception.ros.node import INPUT_CAMERA_INFO, INPUT_COMPRESSED_IMAGE, INPUT_IMAGE, INPUT_POINTS

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


class _Recorded:
    """Stands in for a launch / launch_ros class: keeps its arguments (and Nodes in creation order)."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


class _Configuration(_Recorded):
    def perform(self, context: dict[str, str]) -> str:
        return context[self.args[0]]


def load_launch_file(monkeypatch, rviz2_installed: bool) -> tuple[types.ModuleType, list[_Recorded]]:
    """The launch file executed over stub launch modules; returns it and the list its Nodes land in."""
    nodes: list[_Recorded] = []

    class Node(_Recorded):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            nodes.append(self)

    stubs = {
        'launch': {'LaunchDescription': _Recorded},
        'launch.actions': {'DeclareLaunchArgument': _Recorded, 'OpaqueFunction': _Recorded},
        'launch.substitutions': {'LaunchConfiguration': _Configuration, 'PathJoinSubstitution': _Recorded},
        'launch_ros': {},
        'launch_ros.actions': {'Node': Node},
        'launch_ros.substitutions': {'FindPackageShare': _Recorded},
    }
    for name, attributes in stubs.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    from ament_index_python import packages

    def get_package_prefix(package: str) -> str:
        if package == 'rviz2' and not rviz2_installed:
            raise packages.PackageNotFoundError(f"package '{package}' not found")
        return '/opt/ros/prefix'

    monkeypatch.setattr(packages, 'get_package_prefix', get_package_prefix)
    spec = importlib.util.spec_from_file_location('detect_launch', LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, nodes


def launch_context(rviz: str) -> dict[str, str]:
    context = dict.fromkeys(REQUIRED_ARGUMENTS, '')
    context.update(rviz=rviz, use_sim_time='false', image_topic='/camera/image')
    return context


def test_rviz_without_the_rviz2_package_fails_before_starting_anything(monkeypatch):
    module, nodes = load_launch_file(monkeypatch, rviz2_installed=False)
    (opaque,) = [a for a in module.generate_launch_description().args[0] if 'function' in a.kwargs]
    with pytest.raises(RuntimeError, match=r"rviz:=true but package 'rviz2' is not installed.*Nothing was started"):
        opaque.kwargs['function'](launch_context('true'))
    assert nodes == [], 'the detector must not be started when RViz cannot be'


@pytest.mark.parametrize(('rviz', 'installed', 'packages'), [
    ('true', True, [PACKAGE, 'rviz2']),
    ('false', False, [PACKAGE]),
])  # fmt: skip
def test_launch_starts_the_detector_and_rviz_only_when_asked_and_installed(monkeypatch, rviz, installed, packages):
    module, nodes = load_launch_file(monkeypatch, rviz2_installed=installed)
    (opaque,) = [a for a in module.generate_launch_description().args[0] if 'function' in a.kwargs]
    actions = opaque.kwargs['function'](launch_context(rviz))
    assert [n.kwargs['package'] for n in actions] == packages
    assert actions == nodes


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
