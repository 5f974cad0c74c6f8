"""package.xml and setup.py: what rosdep installs, and what `colcon test` runs."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# pip requirement of the runtime -> the rosdep key a ROS 2 user's `rosdep install` resolves.
ROSDEP_KEYS = {
    'numpy': 'python3-numpy',
    'pyyaml': 'python3-yaml',
    'pillow': 'python3-pil',
    'rosbags': 'python3-rosbags-pip',
    'onnxruntime': 'python3-onnxruntime-pip',
    'tqdm': 'python3-tqdm',
}


@pytest.fixture(scope='module')
def manifest() -> ET.Element:
    return ET.parse(ROOT / 'package.xml').getroot()


def setup_keywords() -> dict[str, object]:
    """setup()'s keyword arguments from setup.py, module-level constants resolved (no setuptools run)."""
    tree = ast.parse((ROOT / 'setup.py').read_text())
    constants = {
        t.id: ast.literal_eval(s.value)
        for s in tree.body
        if isinstance(s, ast.Assign)
        for t in s.targets
        if isinstance(t, ast.Name) and isinstance(s.value, (ast.List, ast.Constant))
    }

    def resolve(node: ast.expr) -> object:
        if isinstance(node, ast.Name):
            return constants[node.id]
        if isinstance(node, ast.List):
            out: list[object] = []
            for elt in node.elts:
                out.extend(resolve(elt.value) if isinstance(elt, ast.Starred) else [resolve(elt)])
            return out
        if isinstance(node, ast.Dict):
            return {ast.literal_eval(k): resolve(v) for k, v in zip(node.keys, node.values, strict=True)}
        return ast.literal_eval(node)

    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'setup']
    return {
        k.arg: resolve(k.value)
        for k in call.keywords
        if k.arg in ('install_requires', 'extras_require', 'tests_require')
    }


def bare(requirement: str) -> str:
    for sep in '<>=!; [':
        requirement = requirement.split(sep)[0]
    return requirement.strip().lower()


def test_every_runtime_requirement_has_its_rosdep_key_in_package_xml(manifest):
    keys = setup_keywords()
    runtime = [*keys['install_requires'], *keys['extras_require']['runtime'], 'tqdm']  # tqdm: anovox-make-bag
    exec_depends = {e.text for e in manifest.iter('exec_depend') if 'condition' not in e.attrib}
    missing = {bare(r): ROSDEP_KEYS[bare(r)] for r in runtime if ROSDEP_KEYS[bare(r)] not in exec_depends}
    assert not missing, f'package.xml lacks exec_depend for {missing}'


def test_rviz2_is_an_opt_in_dependency_not_pulled_onto_headless_machines(manifest):
    rviz = [e for e in manifest.iter('exec_depend') if e.text == 'rviz2']
    assert len(rviz) == 1 and '$ANOVOX_WITH_RVIZ' in rviz[0].attrib.get('condition', '')


def test_colcon_test_selects_pytest_and_rosdep_installs_the_test_tools(manifest):
    test_depends = {e.text for e in manifest.iter('test_depend')}
    assert {'python3-pytest', 'python3-hypothesis', 'python3-jsonschema'} <= test_depends
    colcon_test = pytest.importorskip('colcon_core.task.python.test')
    keys = setup_keywords()
    assert colcon_test.has_test_dependency({'tests_require': keys['tests_require']}, 'pytest')
    assert set(keys['tests_require']) <= set(keys['extras_require']['test'])
