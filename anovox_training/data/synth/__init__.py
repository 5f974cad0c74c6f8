"""Synthetic AnoVox world: procedural driving scenes with anomalies, ray-cast into AnoVox's sensors.

Run ``python -m anovox_training.data.synth --out DIR --split train|val|test --scenarios N --frames F --seed S``
(``--width/--height`` for the camera, ``--workers`` for parallel rendering, ``--help`` for the rest).
The output is AnoVox Layout B with the conventions of AnoVox's own generator (docs/LAYOUT_B.md),
read by anovox_training.data.reader like real AnoVox data.

- Scenes: a straight urban road (lanes, road lines, crosswalks, kerbs, sidewalks,
  verges) lined with buildings, walls, fences, trees, lamps, signs and traffic
  lights; parked, stopped and moving vehicles, cyclists, pedestrians, and normal
  clutter on the road (cones, barriers, bins, bollards). The ego drives at 10 Hz,
  swerving around what blocks its lane and stopping before what it cannot pass.
- Anomalies of the six AnoVox categories (anomalies.py), one to three 5-60 m
  ahead in most frames; each split draws its own categories (train: home,
  special; val: nature; test: animal, airplane, falling), each category its
  own shape families (`SHAPE_KINDS`, anomaly_shapes/), and a share of
  scenarios (default 15 %) has none.
- Sensors (MONO rig at (0, 0, 1.8) m): RGB, depth, semantic and instance
  camera (768x512, 90 deg by default), 64-beam LiDAR (+15/-25 deg, 100 m, range
  noise, intensity by material) and semantic LiDAR, all cast from one scene
  description per frame. Voxel ground truth follows AnoVox's rule on the
  observed surfaces (semantic LiDAR plus unprojected depth camera).
- Same arguments give byte-identical files, for any number of workers.
"""

from __future__ import annotations

from anovox_training.data.synth.anomalies import SHAPE_KINDS, SPLIT_CATEGORIES, build_anomaly
from anovox_training.data.synth.generate import GenerateConfig, generate
from anovox_training.data.synth.pipeline import FrameData, FrameRenderer, SensorRig
from anovox_training.data.synth.scene import Scenario
from anovox_training.data.synth.world import WorldSettings, build_scenario, scenario_uuid
from anovox_training.data.synth.writer import LayoutBWriter, encode_depth

__all__ = [
    'SHAPE_KINDS',
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
