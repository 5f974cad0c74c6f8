"""numpy arrays -> rosbags messages for AnoVox bags (no rclpy), and the TF transform of a bag.

The objects built here are rosbags dataclasses with the same field names as
rclpy messages, so code that reads attributes (``msg.header.stamp.sec``,
``msg.fields``, ``msg.data``) works on both; ``msg_decode`` reads them back.
Layouts and their checks come from ``msg_layout``, shared with the rclpy
encoder (``msg_encode``). Everything is serialised as CDR, which is what rclpy
publishers accept as raw bytes. rosbags is imported on first use, not with
this module.

Ground-truth voxel clouds (``sensor_msgs/PointCloud2``) hold one point per AnoVox
voxel in the layout of :data:`~anovox_perception.core.msg_layout.VOXEL_DTYPE`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anovox_perception.core.errors import DecodeError, GeometryError
from anovox_perception.core.geometry import CameraModel, anovox_voxel_center, invert_transform, make_transform
from anovox_perception.core.msg_layout import POINT_DTYPE, VOXEL_DTYPE, cloud_payload, image_payload
from anovox_perception.core.stamps import sec_nanosec

__all__ = [
    'CAMERA_INFO_TYPE',
    'IMAGE_TYPE',
    'POINTCLOUD2_TYPE',
    'TF_TYPE',
    'camera_info_message',
    'get_bag_typestore',
    'header',
    'image_message',
    'matrix_from_quaternion',
    'points_message',
    'quaternion_from_matrix',
    'tf_static_message',
    'transform_from_tf',
    'voxels_message',
]

IMAGE_TYPE = 'sensor_msgs/msg/Image'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
POINTCLOUD2_TYPE = 'sensor_msgs/msg/PointCloud2'
TF_TYPE = 'tf2_msgs/msg/TFMessage'

_TYPESTORE: Any = None


def get_bag_typestore() -> Any:
    """The rosbags typestore of ROS 2 Kilted message definitions (shared, built once).

    Kilted's definitions hash the same as Jazzy's for every type a bag here holds,
    so bags written with it replay into either distribution.
    """
    global _TYPESTORE  # a module-level cache: building the store parses every definition once
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_typestore

        _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
    return _TYPESTORE


def _time(stamp_ns: int) -> Any:
    sec, nanosec = sec_nanosec(stamp_ns)
    return get_bag_typestore().types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)


def header(stamp_ns: int, frame_id: str) -> Any:
    """A ``std_msgs/Header`` with a stamp in nanoseconds."""
    header_cls = get_bag_typestore().types['std_msgs/msg/Header']
    return header_cls(stamp=_time(stamp_ns), frame_id=frame_id)


def image_message(rgb: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """``sensor_msgs/Image`` (rgb8, tightly packed rows) of an (H, W, 3) uint8 array.

    Raises:
        DecodeError: ``rgb`` is not an (H, W, 3) uint8 array.
    """
    payload = image_payload(rgb, 'rgb8')
    return get_bag_typestore().types[IMAGE_TYPE](
        header=header(stamp_ns, frame_id),
        height=payload.height,
        width=payload.width,
        encoding=payload.encoding,
        is_bigendian=0,
        step=payload.step,
        data=payload.data,
    )


def camera_info_message(camera: CameraModel, stamp_ns: int, frame_id: str) -> Any:
    """``sensor_msgs/CameraInfo`` of an undistorted pinhole camera (plumb_bob, zero distortion)."""
    types = get_bag_typestore().types
    k = camera.matrix
    p = np.zeros((3, 4))
    p[:, :3] = k
    roi = types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types[CAMERA_INFO_TYPE](
        header=header(stamp_ns, frame_id),
        height=camera.height,
        width=camera.width,
        distortion_model='plumb_bob',
        d=np.zeros(5),
        k=k.reshape(-1),
        r=np.eye(3).reshape(-1),
        p=p.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def _cloud(records: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    types = get_bag_typestore().types
    field_cls = types['sensor_msgs/msg/PointField']
    payload = cloud_payload(records)
    return types[POINTCLOUD2_TYPE](
        header=header(stamp_ns, frame_id),
        height=1,
        width=payload.width,
        fields=[field_cls(name=name, offset=offset, datatype=dt, count=1) for name, offset, dt in payload.fields],
        is_bigendian=False,
        point_step=payload.point_step,
        row_step=payload.row_step,
        data=payload.data,
        is_dense=payload.is_dense,
    )


def points_message(points: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """``sensor_msgs/PointCloud2`` with float32 x, y, z, intensity of an (N, 4) array.

    Raises:
        DecodeError: ``points`` is not an (N, 4) array.
    """
    if points.ndim != 2 or points.shape[1] != 4:
        msg = f'points_message: expected an (N, 4) array of x, y, z, intensity, got shape {points.shape}'
        raise DecodeError(msg)
    records = np.empty(len(points), dtype=POINT_DTYPE)
    for column, name in enumerate(POINT_DTYPE.names):
        records[name] = points[:, column]
    return _cloud(records, stamp_ns, frame_id)


def voxels_message(voxels: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """Ground-truth ``sensor_msgs/PointCloud2`` of AnoVox voxels (M, 4) ``[ix, iy, iz, label]``.

    Raises:
        DecodeError: ``voxels`` is not an (M, 4) integer array with labels in uint16 range.
    """
    if voxels.ndim != 2 or voxels.shape[1] != 4 or not np.issubdtype(voxels.dtype, np.integer):
        msg = f'voxels_message: expected an (M, 4) integer array [ix, iy, iz, label], got {voxels.shape} {voxels.dtype}'
        raise DecodeError(msg)
    if len(voxels) and (voxels.min() < 0 or voxels.max() > np.iinfo(np.uint16).max):
        msg = 'voxels_message: voxel indices and labels must lie in 0..65535 (AnoVox stores them as uint16)'
        raise DecodeError(msg)
    centres = anovox_voxel_center(voxels)
    records = np.zeros(len(voxels), dtype=VOXEL_DTYPE)
    records['x'], records['y'], records['z'] = centres[:, 0], centres[:, 1], centres[:, 2]
    records['label'] = voxels[:, 3]
    return _cloud(records, stamp_ns, frame_id)


def quaternion_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a 3x3 rotation matrix, with w >= 0.

    Raises:
        GeometryError: the matrix is not a rotation.
    """
    r = np.asarray(rotation, dtype=np.float64)
    if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
        msg = f'quaternion_from_matrix: expected a 3x3 rotation matrix, got {r.tolist()}'
        raise GeometryError(msg)
    # Shepperd's method: divide by the largest of the four candidates for stability.
    trace = np.trace(r)
    candidates = np.array([trace, r[0, 0], r[1, 1], r[2, 2]])
    k = int(np.argmax(candidates))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, s / 4.0]
    else:
        i = k - 1
        j, m = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[m, m])
        q = [0.0, 0.0, 0.0, (r[m, j] - r[j, m]) / s]
        q[i] = s / 4.0
        q[j] = (r[j, i] + r[i, j]) / s
        q[m] = (r[m, i] + r[i, m]) / s
    quat = np.array(q)
    quat /= np.linalg.norm(quat)
    return quat if quat[3] >= 0 else -quat


def matrix_from_quaternion(quat: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix of a quaternion (x, y, z, w); it need not be normalised.

    Raises:
        GeometryError: the quaternion has zero length or is not finite.
    """
    q = np.asarray(quat, dtype=np.float64)
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or norm < 1e-12:
        msg = f'matrix_from_quaternion: quaternion {q.tolist()} has no direction'
        raise GeometryError(msg)
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def tf_static_message(t_cam_lidar: np.ndarray, stamp_ns: int, lidar_frame: str, camera_frame: str) -> Any:
    """``tf2_msgs/TFMessage`` placing the camera's optical frame in the LiDAR frame.

    The LiDAR frame is the parent (the root everything else is published in);
    the transform is the camera's pose in it, ``inverse(T_cam_lidar)``.
    """
    types = get_bag_typestore().types
    lidar_from_cam = invert_transform(t_cam_lidar)
    qx, qy, qz, qw = quaternion_from_matrix(lidar_from_cam[:3, :3])
    tx, ty, tz = lidar_from_cam[:3, 3]
    transform = types['geometry_msgs/msg/Transform'](
        translation=types['geometry_msgs/msg/Vector3'](x=float(tx), y=float(ty), z=float(tz)),
        rotation=types['geometry_msgs/msg/Quaternion'](x=float(qx), y=float(qy), z=float(qz), w=float(qw)),
    )
    stamped = types['geometry_msgs/msg/TransformStamped'](
        header=header(stamp_ns, lidar_frame), child_frame_id=camera_frame, transform=transform
    )
    return types[TF_TYPE](transforms=[stamped])


def transform_from_tf(msg: Any, lidar_frame: str, camera_frame: str) -> np.ndarray:
    """``T_cam_lidar`` (4x4) from a TF message holding the ``lidar_frame -> camera_frame`` transform.

    Raises:
        DecodeError: the message holds no such transform.
    """
    for stamped in msg.transforms:
        if stamped.header.frame_id == lidar_frame and stamped.child_frame_id == camera_frame:
            t, q = stamped.transform.translation, stamped.transform.rotation
            lidar_from_cam = make_transform(matrix_from_quaternion([q.x, q.y, q.z, q.w]), [t.x, t.y, t.z])
            return invert_transform(lidar_from_cam)
    pairs = [(s.header.frame_id, s.child_frame_id) for s in msg.transforms]
    msg_text = f'transform_from_tf: no {lidar_frame!r} -> {camera_frame!r} transform; message holds {pairs}'
    raise DecodeError(msg_text)
