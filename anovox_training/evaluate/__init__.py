"""Evaluation: the AnoVox metrics, object-level metrics, the geometric baseline, the
test-reading ledger and the real-frame check.

    python -m anovox_training.evaluate --checkpoint ... --data ...
"""
