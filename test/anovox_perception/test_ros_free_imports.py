"""The decoders and the middleware-free core import and run without any ROS 2 message package or rosbags.

Each check runs in a fresh interpreter whose import system refuses the ROS
packages, so a module that imports one at import time (directly or through
another module) fails here even where the ROS wheels are installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

BLOCKED = (
    'rclpy',
    'rcl_interfaces',
    'rosgraph_msgs',
    'builtin_interfaces',
    'std_msgs',
    'sensor_msgs',
    'geometry_msgs',
    'nav_msgs',
    'visualization_msgs',
    'diagnostic_msgs',
    'tf2_msgs',
    'rosbags',
)
ROS_FREE_MODULES = (
    'anovox_perception.core.stamps',
    'anovox_perception.core.msg_layout',
    'anovox_perception.core.msg_decode',
    'anovox_perception.core.detector',
    'anovox_perception.core.intake',
    'anovox_perception.core.sync',
    'anovox_perception.core.preprocess',
    'anovox_perception.core.postprocess',
)

_BLOCKER = """
import importlib.abc
import sys

BLOCKED = {blocked!r}


class BlockRos(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'{{name}} is blocked: this code must run without ROS 2 packages')
        return None


for name in [m for m in sys.modules if m.split('.')[0] in BLOCKED]:
    del sys.modules[name]
sys.meta_path.insert(0, BlockRos())
"""


def run_without_ros(body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a new interpreter with the ROS packages blocked from import."""
    script = _BLOCKER.format(blocked=BLOCKED) + textwrap.dedent(body)
    return subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120, check=False)


def test_decode_module_and_core_import_and_decode_without_ros() -> None:
    done = run_without_ros(
        f"""
        import importlib
        from types import SimpleNamespace

        import numpy as np

        for module in {ROS_FREE_MODULES!r}:
            importlib.import_module(module)
        leaked = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)
        assert not leaked, leaked

        from anovox_perception.core import msg_decode

        # Messages as plain objects: the decoders read attributes only.
        stamp = SimpleNamespace(sec=12, nanosec=345)
        rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
        image = SimpleNamespace(
            header=SimpleNamespace(stamp=stamp, frame_id='camera'), height=2, width=3, encoding='rgb8',
            is_bigendian=0, step=9, data=rgb.tobytes(),
        )
        assert (msg_decode.image_to_rgb(image) == rgb).all()
        assert msg_decode.stamp_to_ns(image.header.stamp) == 12_000_000_345
        points = np.array([[1.0, 2.0, 3.0, 0.5], [np.nan, 0.0, 0.0, 1.0]], np.float32)
        fields = [SimpleNamespace(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate('xyz')]
        fields.append(SimpleNamespace(name='intensity', offset=12, datatype=7, count=1))
        cloud = SimpleNamespace(
            height=1, width=2, point_step=16, row_step=32, is_bigendian=False, fields=fields, data=points.tobytes(),
        )
        decoded = msg_decode.pointcloud2_to_xyzi(cloud)
        assert decoded.points.tolist() == [[1.0, 2.0, 3.0, 0.5]] and decoded.nonfinite_points == 1
        print('decoded without ROS')
        """
    )
    assert done.returncode == 0, done.stderr
    assert 'decoded without ROS' in done.stdout


@pytest.mark.parametrize('module', ['anovox_perception.ros.msg_encode', 'anovox_perception.ros.msg_codec'])
def test_the_blocker_refuses_modules_that_need_ros(module: str) -> None:
    # The check above only means something if the blocker stops a real ROS import.
    done = run_without_ros(f'import {module}')
    assert done.returncode != 0
    assert 'is blocked: this code must run without ROS 2 packages' in done.stderr
