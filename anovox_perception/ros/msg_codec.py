"""ROS 2 messages <-> numpy arrays for code that runs with rclpy: the decoders and the rclpy encoders in one name.

The definitions live in modules split by what they need:

- ``msg_decode``: messages -> arrays, reading attributes only (rclpy and rosbags
  messages alike); imports no ROS package, so offline tools, training and the
  demo use it without the ROS 2 wheels.
- ``msg_encode``: arrays -> rclpy messages (needs the ROS 2 message packages).
- ``bag_messages``: arrays -> rosbags messages, for bags.
- ``msg_layout`` and ``stamps``: the wire layouts and the stamp <-> nanoseconds
  conversion all of them share.

Importing this module imports the ROS 2 message packages; code that only decodes
imports ``msg_decode``.
"""

from __future__ import annotations

from anovox_perception.core.msg_decode import (
    IMAGE_ENCODINGS,
    INTENSITY_FIELDS,
    MARKER_NAMESPACES,
    DecodedCloud,
    camera_info_to_model,
    compressed_to_rgb,
    image_to_rgb,
    pointcloud2_to_xyzi,
    stamp_to_ns,
)
from anovox_perception.ros.msg_encode import (
    array_to_pointcloud2,
    header,
    make_occupancy_grid,
    markers_to_msg,
    ns_to_stamp,
    rgb_to_image,
    xyzi_to_pointcloud2,
)

__all__ = [
    'IMAGE_ENCODINGS',
    'INTENSITY_FIELDS',
    'MARKER_NAMESPACES',
    'DecodedCloud',
    'array_to_pointcloud2',
    'camera_info_to_model',
    'compressed_to_rgb',
    'header',
    'image_to_rgb',
    'make_occupancy_grid',
    'markers_to_msg',
    'ns_to_stamp',
    'pointcloud2_to_xyzi',
    'rgb_to_image',
    'stamp_to_ns',
    'xyzi_to_pointcloud2',
]
