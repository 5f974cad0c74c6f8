"""What runs on the vehicle, without a middleware: the detector pipeline (intake, sync,
preprocess, postprocess, tracker), its geometry, the model card and parameters, and the
decoders of ROS messages (no ROS import).
"""
