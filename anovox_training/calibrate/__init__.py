"""Calibration after training: the score rule and then the node's operating point, chosen on validation."""
