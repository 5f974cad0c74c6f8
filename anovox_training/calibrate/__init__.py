"""Calibration after training: the score rule chosen on validation."""
