"""Synthetic AnoVox world: procedural driving scenes with anomalies, ray-cast into AnoVox's sensors.

Run ``python -m anovox_training.data.synth --out DIR --split train|val|test --scenarios N --frames F --seed S``.
The output is AnoVox Layout B (docs/LAYOUT_B.md), read by anovox_training.data.reader.
"""

from __future__ import annotations

from anovox_training.data.synth.anomalies import SPLIT_CATEGORIES, build_anomaly
from anovox_training.data.synth.generate import GenerateConfig, generate
from anovox_training.data.synth.pipeline import FrameData, FrameRenderer, SensorRig
from anovox_training.data.synth.scene import Scenario
from anovox_training.data.synth.world import WorldSettings, build_scenario, scenario_uuid
from anovox_training.data.synth.writer import LayoutBWriter, encode_depth

__all__ = [
    'SPLIT_CATEGORIES',
    'FrameData',
    'FrameRenderer',
    'GenerateConfig',
    'LayoutBWriter',
    'Scenario',
    'SensorRig',
    'WorldSettings',
    'build_anomaly',
    'build_scenario',
    'encode_depth',
    'generate',
    'scenario_uuid',
]
