"""End to end over real ROS 2 processes on loopback: anovox-replay -> anovox-detect -> recorder.

A small held-out synthetic scenario is written as a bag and replayed through
the node; what the recorder captured must cover every frame sent, carry the
clouds' stamps and frame, and give the same AnoVox metrics as the offline
pipeline (same model, same frames) to 1e-3. The model is the trained one in
models/ when there is one (then anomaly voxels must also outscore normal
ones), else a hand-built ONNX graph with predictable, non-trivial outputs.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('rclpy')

sys.path.insert(0, str(Path(__file__).parent / 'anovox_perception'))
from fake_onnx_model import write_fake_model

from anovox_perception.core.detector import Detector, DetectorConfig, resolve_model_path
from anovox_perception.core.errors import ConfigError
from anovox_perception.core.geometry import anovox_voxel_index
from anovox_perception.core.model_card import load_card
from anovox_perception.tools.bags import BagTiming
from anovox_perception.tools.offline import run_offline
from anovox_training.data.labels import is_anomaly
from anovox_training.integration.node_eval import evaluate_offline, evaluate_published, frame_truths
from anovox_training.integration.node_run import (
    RunOptions,
    read_diagnostics,
    read_ground_truth,
    read_node_outputs,
    run_node_on_bag,
    write_scenario_bag,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

FRAMES = 8
# Replay speed: 5 Hz for the hand-built graph; 2 Hz for a trained full-size model, whose CPU
# inference (100-400 ms on 2 busy cores) must keep up so that no frame is dropped.
RATE_FAKE, RATE_TRAINED = 0.5, 0.2
DOMAIN_ID = 71


def trained_model() -> Path | None:
    try:
        return resolve_model_path('')
    except ConfigError:
        return None


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """One replay -> node -> recorder run, shared by the assertions below (one ROS domain)."""
    root = tmp_path_factory.mktemp('e2e')
    model = trained_model() or write_fake_model(root / 'model' / 'fake_tiny.onnx')
    rate = RATE_FAKE if model.name == 'fake_tiny.onnx' else RATE_TRAINED
    cmd = [
        sys.executable, '-m', 'anovox_training.data.synth', '--out', str(root / 'data'), '--split', 'test',
        '--scenarios', '1', '--frames', str(FRAMES), '--seed', '4', '--normal-share', '0',
        '--width', '192', '--height', '128', '--lidar-azimuth-steps', '512', '--no-progress',
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    (scenario,) = sorted((root / 'data').glob('Scenario_*'))
    bag = root / 'bag'
    # Camera stamps 3 ms after the LiDAR's: the synchroniser pairs them, live and offline alike.
    summary = write_scenario_bag(scenario, bag, timing=BagTiming(camera_offset_ms=3.0))
    node_run = run_node_on_bag(
        RunOptions(
            model_path=model,
            bag=bag,
            work_dir=root / 'run',
            backend='onnxruntime',
            rate=rate,
            domain_id=DOMAIN_ID,
            params={'backend_options.num_threads': 1, 'diagnostics.period_s': 0.5},
            grace_s=2.0,
        )
    )
    return {
        'model': model,
        'trained': model != root / 'model' / 'fake_tiny.onnx',
        'scenario': scenario,
        'bag': bag,
        'sent': summary.lidar_stamps_ns,
        'outputs': read_node_outputs(node_run.recorded_bag),
        'diagnostics': read_diagnostics(node_run.recorded_bag),
        'truths': frame_truths(bag, read_ground_truth(bag), scenario),
    }


def test_the_node_publishes_outputs_for_every_frame_sent(run):
    assert len(run['sent']) == FRAMES
    assert sorted(run['outputs']) == sorted(run['sent'])
    final = run['diagnostics'][-1]
    assert final['total.frames_out'] == str(FRAMES)
    assert not any(key.startswith('total.bad_input') for key in final)
    assert 'total.dropped_pairs' not in final


def test_outputs_carry_the_clouds_stamp_and_frame_and_a_latency(run):
    for stamp, out in run['outputs'].items():
        assert out.stamp_ns == stamp
        assert out.frame_id == 'lidar'
        assert out.score_grid is not None
        assert out.latency_ms is not None and out.latency_ms > 0


def test_node_metrics_match_the_offline_evaluation_of_the_same_model(run):
    grid = load_card(run['model']).make_input_spec().grid
    live = evaluate_published(run['outputs'].values(), run['truths'], grid)
    detector = Detector(DetectorConfig(model_path=str(run['model']), backend='onnxruntime', num_threads=1))
    try:
        frames = run_offline(run['bag'], detector=detector)
        offline = evaluate_offline(frames, run['truths'], grid, detector.occupancy_threshold)
    finally:
        detector.close()
    assert live['Normality_Included']['voxels'] > 0, 'the comparison needs evaluated voxels'
    assert live.keys() == offline.keys()
    for subset in ('Anomalies_Only', 'Normality_Included'):
        for key, value in offline[subset].items():
            other = live[subset][key]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                assert other is None or math.isnan(other), (subset, key)
            else:
                assert other == pytest.approx(value, abs=1e-3), (subset, key)
    assert live['by_category'].keys() == offline['by_category'].keys()


def test_a_trained_model_scores_anomaly_voxels_above_normal_ones(run):
    if not run['trained']:
        pytest.skip('no trained model in models/ (make model); the hand-built graph is not an anomaly detector')
    anomalous, normal = [], []
    for stamp, out in run['outputs'].items():
        truth = run['truths'][stamp].voxels
        index = anovox_voxel_index(out.voxel_scores[:, :3])
        published = {tuple(v): s for v, s in zip(index.tolist(), out.voxel_scores[:, 3], strict=True)}
        for ix, iy, iz, label in truth:
            score = published.get((int(ix), int(iy), int(iz)))
            if score is not None:
                (anomalous if is_anomaly(np.array([label]))[0] else normal).append(score)
    assert anomalous and normal
    assert np.mean(anomalous) > np.mean(normal)
