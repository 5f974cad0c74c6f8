"""End-to-end benchmark: a bag through the node's pipeline in process (counters and report shape, no timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bag_samples import make_bag
from fake_onnx_model import write_fake_model

from anovox_perception.core.detector import Detector, DetectorConfig
from anovox_perception.core.errors import DataError
from anovox_perception.tools import bench_e2e
from anovox_perception.tools.bags import BagTopics


@pytest.fixture(scope='module')
def bag_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp('e2e')
    make_bag(folder / 'bag', frames=5)
    return folder / 'bag', write_fake_model(folder / 'fake.onnx')


def test_replay_accounts_for_every_cloud_and_times_every_stage(bag_and_model: tuple[Path, Path]) -> None:
    bag, model = bag_and_model
    messages = bench_e2e.load_bag(bag)
    assert [m.kind for m in messages].count('points') == 5 and [m.kind for m in messages].count('image') == 5
    detector = Detector(DetectorConfig(model_path=str(model), backend='onnxruntime', num_threads=1))
    run = bench_e2e.replay_through_pipeline(detector, messages, rate=2.0, duration_s=1.2)
    # The 0.5 s bag looped at 2x for 1.2 s: 0.25 s per loop (plus one cloud period), every message of 4 loops.
    assert run.clouds_in == run.images_in and run.clouds_in >= 15
    assert run.errors == 0 and len(run.latency_ms) + run.dropped == run.pairs
    report = bench_e2e.run_report(run, bag_hz=10.0)
    assert report['input_hz'] == 20.0 and report['frames_out'] == len(run.latency_ms)
    stages = {'decode_points', 'decode_image', 'sync', 'sync_wait', 'queue_wait', 'preprocess', 'inference'}
    assert stages | {'postprocess', 'publish'} == set(report['stages'])
    assert report['windows'][0]['frames'] == report['frames_out']


def test_cli_writes_the_report_with_sweep_overload_and_peak_memory(
    bag_and_model: tuple[Path, Path], tmp_path: Path
) -> None:
    bag, model = bag_and_model
    out = tmp_path / 'e2e.json'
    argv = [str(bag), '--out', str(out), '--model', str(model), '--threads', '1', '--seconds', '0.5']
    argv += ['--rates', '2', '--sweep-seconds', '0.5', '--overload-seconds', '0.5']
    assert bench_e2e.main(argv) == 0
    report = json.loads(out.read_text())
    assert [r['replay_rate'] for r in report['sweep']] == [1.0, 2.0]
    assert report['overload']['replay_rate'] > 1.0 and report['peak_rss_mib'] > 0
    assert report['capacity_hz'] > 0 and report['backend'] == 'onnxruntime (cpu)'


def test_a_bag_without_the_cloud_topic_is_refused(tmp_path: Path) -> None:
    make_bag(tmp_path / 'bag', frames=2)
    with pytest.raises(DataError, match=r"topics \['/nowhere'\] not found"):
        bench_e2e.load_bag(tmp_path / 'bag', BagTopics(points='/nowhere'))
