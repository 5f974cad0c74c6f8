"""Launch the AnoVox road-anomaly detector node (and optionally RViz2).

    ros2 launch anovox_perception detect.launch.py
    ros2 launch anovox_perception detect.launch.py model_path:=/path/model.onnx backend:=onnxruntime rviz:=true
    ros2 launch anovox_perception detect.launch.py points_topic:=/velodyne_points use_sim_time:=true

Topic arguments remap the node's private inputs (~/input/...); its outputs are
~/output/score_grid, ~/output/voxel_scores, ~/output/markers and /diagnostics.
rviz:=true needs the rviz2 package (an optional tool, not a dependency): without
it the launch fails before it starts anything, so no detector is left running.
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = 'anovox_perception'
NODE_NAME = 'anovox_detector'


def _require_rviz2() -> None:
    """Fail with the fix spelled out when rviz:=true but rviz2 is not installed."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix('rviz2')
    except PackageNotFoundError as err:
        msg = (
            "rviz:=true but package 'rviz2' is not installed; install it (apt install ros-$ROS_DISTRO-rviz2) "
            'or launch without rviz:=true. Nothing was started.'
        )
        raise RuntimeError(msg) from err


def _nodes(context, *args, **kwargs):
    """The detector node, and RViz2 when asked for; checks come first so a failure starts nothing.

    model_path and backend override the params file only when given.
    """
    with_rviz = LaunchConfiguration('rviz').perform(context).lower() in ('true', '1')
    if with_rviz:
        _require_rviz2()
    overrides = {'use_sim_time': LaunchConfiguration('use_sim_time').perform(context).lower() in ('true', '1')}
    model_path = LaunchConfiguration('model_path').perform(context)
    backend = LaunchConfiguration('backend').perform(context)
    if model_path:
        overrides['model_path'] = model_path
    if backend:
        overrides['backend'] = backend
    image_topic = LaunchConfiguration('image_topic').perform(context)
    detector = Node(
        package=PACKAGE,
        executable='anovox-detect',
        name=NODE_NAME,
        namespace=LaunchConfiguration('namespace'),
        parameters=[LaunchConfiguration('params_file'), overrides],
        remappings=[
            ('~/input/image', image_topic),
            ('~/input/image/compressed', f'{image_topic}/compressed'),
            ('~/input/points', LaunchConfiguration('points_topic')),
            ('~/input/camera_info', LaunchConfiguration('camera_info_topic')),
        ],
        output='screen',
        emulate_tty=True,
    )
    if not with_rviz:
        return [detector]
    share = FindPackageShare(PACKAGE)
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        name='anovox_rviz',
        arguments=['-d', PathJoinSubstitution([share, 'config', 'anovox.rviz'])],
        parameters=[{'use_sim_time': overrides['use_sim_time']}],
        output='screen',
    )
    return [detector, rviz]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([share, 'config', 'detector.yaml']),
            description='ROS 2 parameter file of the detector (schema: config/detector.schema.json).',
        ),
        DeclareLaunchArgument(
            'model_path',
            default_value='',
            description='ONNX model with its model card; empty keeps the params file value '
            '(by default the model shipped in share/anovox_perception/models).',
        ),
        DeclareLaunchArgument(
            'backend',
            default_value='',
            description='Inference backend: auto, tensorrt, onnxruntime or torch; empty keeps the params file value.',
        ),
        DeclareLaunchArgument(
            'image_topic',
            default_value='/sensing/camera/image_raw',
            description='sensor_msgs/Image input (its /compressed sibling is subscribed too).',
        ),
        DeclareLaunchArgument(
            'points_topic',
            default_value='/sensing/lidar/points',
            description='sensor_msgs/PointCloud2 LiDAR input (x, y, z required, intensity optional).',
        ),
        DeclareLaunchArgument(
            'camera_info_topic',
            default_value='/sensing/camera/camera_info',
            description='sensor_msgs/CameraInfo input, used when camera.intrinsics_source is camera_info.',
        ),
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of the detector node.'),
        DeclareLaunchArgument(
            'use_sim_time',
            default_value='false',
            description='Use /clock (e.g. from anovox-replay --clock) as the node clock.',
        ),
        DeclareLaunchArgument(
            'rviz',
            default_value='false',
            description='Open RViz2 with config/anovox.rviz (cloud, camera, score grid, voxel scores, markers); '
            'needs the rviz2 package, else the launch stops before starting anything.',
        ),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
