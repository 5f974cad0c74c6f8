"""What runs on the vehicle inside ROS 2: the node and the rclpy message encoders."""
