"""Developer tools installed with pip, never needed by the node: rosbag2 reading and
writing, replay and recording stand-ins for ros2 bag, the offline bag runner, benchmarks
and stress scenarios.
"""
