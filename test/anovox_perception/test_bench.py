"""Latency benchmark: model choice and the shape of bench.json (tiny model, few rounds, no timing claims)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anovox_perception import bench


def test_bench_on_a_fresh_tiny_export_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(bench, 'SHIPPED_MODEL_DIRS', (tmp_path / 'no_models',))
    out = tmp_path / 'bench_out'
    assert (
        bench.main(['--out', str(out), '--size', 'tiny', '--iterations', '3', '--warmup', '1', '--threads', '1']) == 0
    )
    report = json.loads((out / 'bench.json').read_text())
    rows = {row['name']: row for row in report['rows']}
    assert list(rows) == ['preprocess_cpu', 'inference_onnxruntime_cpu', 'inference_torch_cpu', 'postprocess_cpu']
    for row in rows.values():
        assert row['n'] == 3
        assert 0 < row['min_ms'] <= row['p50_ms'] <= row['p99_ms'] <= row['max_ms']
    ort_row, torch_row = rows['inference_onnxruntime_cpu'], rows['inference_torch_cpu']
    assert ort_row['baseline'] == 'inference_torch_cpu'
    assert ort_row['speedup'] == pytest.approx(torch_row['p50_ms'] / ort_row['p50_ms'], rel=1e-2)
    assert 'random weights' in report['model']['source'] and report['model']['name'] == 'bench_tiny'
    assert max(report['parity_max_abs_diff'].values()) <= 1e-4
    assert report['machine']['threads'] == 1 and report['iterations'] == 3
    assert len(report['machine']['load_average_1min']) == 2
    table = capsys.readouterr().out
    assert 'inference_onnxruntime_cpu' in table and 'faster than inference_torch_cpu' in table


def test_shipped_model_with_a_program_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = tmp_path / 'models'
    shipped.mkdir()
    for name in ('a_no_program.onnx', 'demo.onnx', 'demo.pt2'):
        (shipped / name).write_bytes(b'')
    monkeypatch.setattr(bench, 'SHIPPED_MODEL_DIRS', (shipped,))
    path, source = bench.choose_model(None, tmp_path / 'work')
    assert path == shipped / 'demo.onnx' and source == 'shipped model demo.onnx'
    assert bench.choose_model(tmp_path / 'x.onnx', tmp_path)[1].endswith('(given with --model)')


def test_round_robin_times_every_stage_each_round() -> None:
    calls: list[str] = []
    times = bench.time_round_robin({'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')}, 3, 1)
    assert calls == ['a', 'b'] * 4
    assert {k: v.shape for k, v in times.items()} == {'a': (3,), 'b': (3,)}
    summary = bench.summarise(np.array([1.0, 2.0, 3.0, 4.0]))
    assert summary['p50_ms'] == 2.5 and summary['min_ms'] == 1.0 and summary['n'] == 4


def test_bad_arguments_fail_with_a_message(capsys: pytest.CaptureFixture) -> None:
    assert bench.main(['--iterations', '0']) == 1
    assert '--iterations and --threads must be >= 1' in capsys.readouterr().err
