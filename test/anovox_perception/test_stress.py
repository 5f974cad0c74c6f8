"""anovox_perception.tools.stress: the scenarios run, and stress.json has the documented rows."""

from __future__ import annotations

import json

import pytest

pytest.importorskip('rclpy')

from fake_onnx_model import write_fake_model

from anovox_perception.tools import stress

pytestmark = pytest.mark.ros

KEYS = [
    'scenario',
    'sent',
    'processed',
    'dropped',
    'rejected',
    'crashes',
    'rss_start_mb',
    'rss_end_mb',
    'p50_ms',
    'p99_ms',
]


def test_a_short_stress_run_writes_one_row_per_scenario_without_crashes(tmp_path, capsys):
    model = write_fake_model(tmp_path / 'fake_tiny.onnx')
    out = tmp_path / 'stress_out'
    argv = ['--out', str(out), '--model', str(model), '--duration-s', '1', '--scenarios', 'overload', 'bad_input']
    assert stress.main(argv) == 0
    rows = json.loads((out / 'stress.json').read_text())
    assert [r['scenario'] for r in rows] == ['overload_5x', 'bad_input_mixed']
    assert all(list(r) == KEYS for r in rows)
    overload, bad = rows
    assert overload['crashes'] == bad['crashes'] == 0
    assert overload['sent'] > 0 and overload['dropped'] > 0, 'inputs beyond the processable rate are dropped'
    assert bad['rejected'] > 0 and bad['processed'] > 0, 'garbage is rejected, the good frames between it processed'
    table = capsys.readouterr().out
    assert '| scenario | sent | processed | dropped | rejected | crashes |' in table
