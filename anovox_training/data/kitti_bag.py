"""A KITTI frame as a rosbag2, and the node parameters of its rig.

The bag is written by the runtime's bag writer (``anovox_perception.tools.bags.write_bag``), as
``anovox-make-bag`` writes AnoVox scenarios: the Velodyne cloud as a PointCloud2 (x, y, z,
intensity = reflectance), image_2 as an rgb8 Image with its CameraInfo (intrinsics of P2), and
``/tf_static`` placing the camera in the LiDAR frame. The node takes ``T_cam_lidar`` from its
parameters, not from TF, so the rig's parameter file goes beside the bag:

    python -m anovox_perception.tools.offline BAG --params-file BAG.params.yaml --model models/anovox_base.onnx

runs the node's offline pipeline on it; ``anovox-detect --params-file`` takes the same file live.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from anovox_perception.core.parameters import params_document, validate_values
from anovox_perception.tools.bags import BagFrame, BagSummary, write_bag
from anovox_training.data.kitti import KittiFrame

__all__ = ['frame_to_bag', 'rig_parameters', 'write_params_file']

_PARAMS_HEADER = """\
# Detector parameters of a KITTI rig (image_2 + Velodyne); use with anovox-detect or
# python -m anovox_perception.tools.offline --params-file. T_cam_lidar: LiDAR -> image_2 optical frame,
# row-major 4x4, metres: R0_rect @ Tr_velo_to_cam with P2's camera offset K^-1 P2[:, 3] added.
"""


def rig_parameters(frame: KittiFrame, intrinsics_source: str = 'parameters') -> dict[str, Any]:
    """The node parameters (dotted names) that describe ``frame``'s camera and its mount.

    Args:
        frame: The frame.
        intrinsics_source: ``'parameters'`` (camera.fx, fy, cx, cy) or ``'camera_info'`` (the
            camera_info topic, as in the bag; the values here then stand by).
    """
    camera = frame.camera
    return {
        'camera.intrinsics_source': intrinsics_source,
        'camera.fx': float(camera.fx),
        'camera.fy': float(camera.fy),
        'camera.cx': float(camera.cx),
        'camera.cy': float(camera.cy),
        'camera.extrinsics_source': 'parameters',
        'camera.T_cam_lidar': [float(v) for v in frame.T_cam_lidar.reshape(-1)],
    }


def write_params_file(values: Mapping[str, Any], path: str | Path) -> Path:
    """Write dotted-name parameter values as a ROS 2 parameter file; returns the path.

    Raises:
        ConfigError: A name is not a detector parameter or a value is invalid (nothing is written).
    """
    path = Path(path)
    validate_values(values, where=f'parameters for {path}')
    # yaml writes floats with repr, so they read back bit for bit.
    path.write_text(_PARAMS_HEADER + yaml.safe_dump(params_document(values), sort_keys=False), encoding='utf-8')
    return path


def frame_to_bag(frame: KittiFrame, out: str | Path, *, storage: str = 'mcap') -> BagSummary:
    """Write one KITTI frame as a one-frame bag at ``out`` (which must not exist).

    Raises:
        ConfigError: ``out`` exists or the storage is unknown.
        DataError: The bag cannot be written.
    """
    frame_id = int(frame.name) if frame.name.isdigit() else 0
    bag_frame = BagFrame(frame_id=frame_id, time_s=0.0, rgb=frame.rgb, points=frame.points)
    return write_bag(
        out, [bag_frame], scenario=frame.name, camera=frame.camera, T_cam_lidar=frame.T_cam_lidar, storage=storage
    )
