"""Benchmark: the rows of bench.json and what they compare (few rounds, no timing claims)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fake_onnx_model import write_fake_model
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from anovox_perception.ros import msg_codec
from anovox_perception.tools import bench
from anovox_perception.tools.bench_pointcloud import lidar_sweep, read_points_numpy
from anovox_perception.tools.bench_sync import message_stream, sync_cost_per_message

FAST = ['--iterations', '2', '--warmup', '0', '--reference-rounds', '1', '--threads', '1']


def _rows(out: Path) -> dict[str, dict]:
    rows = json.loads((out / 'bench.json').read_text())
    assert isinstance(rows, list)
    return {row['name']: row for row in rows}


def test_cpu_sections_write_one_row_per_stage_with_its_command_and_load(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = write_fake_model(tmp_path / 'fake.onnx')
    out = tmp_path / 'bench_out'
    argv = ['--out', str(out), '--model', str(model), '--only', 'lidar', 'image', 'sync', 'pipeline', *FAST]
    assert bench.main(argv) == 0
    rows = _rows(out)
    assert list(rows) == [
        'pointcloud_decode_bev',
        'pointcloud_decode',
        'pointcloud_decode_reference',
        'pointcloud_decode_bev_reference',
        'image_768x512',
        'image_1242x375',
        'sync_per_message',
        'sync_poll',
        'preprocess_cpu',
        'postprocess_cpu',
    ]
    for row in rows.values():
        assert 0 < row['min_ms'] <= row['p50_ms'] <= row['p99_ms'] <= row['max_ms']
        assert row['command'].startswith('python -m anovox_perception.tools.bench --model ')
        assert f'--only {row["section"]}' in row['command'] and len(row['load_average_1min']) == 2
    assert rows['pointcloud_decode_bev_reference']['n'] == 1 and rows['image_768x512']['n'] == 2
    ours, ref = rows['pointcloud_decode_bev'], rows['pointcloud_decode_bev_reference']
    assert ours['baseline'] == 'pointcloud_decode_bev_reference'
    assert ours['speedup'] == pytest.approx(ref['p50_ms'] / ours['p50_ms'], rel=1e-2)
    assert rows['pointcloud_decode']['baseline'] == 'pointcloud_decode_reference'
    assert '120000 points' in ours['config']
    meta = json.loads((out / 'bench_meta.json').read_text())
    assert meta['model']['source'].endswith('(given with --model)') and meta['machine']['cpus'] >= 1
    table = capsys.readouterr().out
    assert 'pointcloud_decode_bev' in table and 'x pointcloud_decode_bev_reference (p50)' in table


@pytest.mark.slow
def test_inference_section_times_every_variant_and_torch_on_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, 'SHIPPED_MODEL_DIRS', (tmp_path / 'no_models',))
    out = tmp_path / 'bench_out'
    assert bench.main(['--out', str(out), '--size', 'tiny', '--only', 'inference', '--no-accuracy', *FAST]) == 0
    rows = _rows(out)
    ort = [name for name in rows if name.startswith('inference_ort_cpu')]
    assert ort[0] == 'inference_ort_cpu' and {'inference_ort_cpu_int8_s8', 'inference_ort_cpu_int8_u8'} <= set(ort)
    assert len(ort) == 9
    for name in ort:
        assert rows[name]['baseline'] == 'inference_torch_cpu' and rows[name]['speedup'] > 0
        assert rows[name]['config']
    torch_row = rows['inference_torch_cpu']
    assert torch_row['max_abs_diff_to_ort'] <= 1e-4  # the same weights
    assert rows['inference_ort_cpu_opt_disabled']['max_abs_diff_to_ort'] <= 1e-4
    for precision in ('fp32', 'fp16'):
        row = rows[f'inference_tensorrt_{precision}']
        assert (row['p50_ms'] is None) == row.get('note', '').startswith('skipped')
    int8 = json.loads((out / 'int8' / 'quantize.json').read_text())
    assert set(int8['models']) == {'fp32', 'int8_s8', 'int8_u8'} and 'validation' not in int8


def test_the_shipped_model_is_chosen_with_or_without_a_torch_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = tmp_path / 'models'
    shipped.mkdir()
    (shipped / 'demo.onnx').write_bytes(b'')
    monkeypatch.setattr(bench, 'SHIPPED_MODEL_DIRS', (shipped,))
    assert bench.choose_model(None, tmp_path / 'work') == (shipped / 'demo.onnx', 'shipped model demo.onnx')
    assert bench.choose_model(tmp_path / 'x.onnx', tmp_path)[1].endswith('(given with --model)')
    # From the folder above the models, the recorded path (and so every recorded command) is relative.
    monkeypatch.chdir(tmp_path)
    assert bench.choose_model(None, tmp_path / 'work')[0] == Path('models/demo.onnx')
    (shipped / 'demo.pt2').write_bytes(b'')
    assert bench.torch_model_for(shipped / 'demo.onnx', tmp_path) == (
        shipped / 'demo.onnx',
        'program demo.pt2 beside the ONNX',
    )


def test_upstream_decode_reference_equals_the_node_decode_on_packed_and_reordered_layouts() -> None:
    fields = lidar_sweep(n_beams=8, n_azimuth=50, seed=1)
    packed = msg_codec.array_to_pointcloud2(fields, Header())
    reordered = msg_codec.array_to_pointcloud2({k: fields[k] for k in ('ring', 'intensity', 'z', 'x', 'y')}, Header())
    reference = read_points_numpy(packed, ['x', 'y', 'z', 'intensity'])
    assert reference.shape[0] < 400  # NaN no-returns skipped
    fast = msg_codec.pointcloud2_to_xyzi(packed)
    general = msg_codec.pointcloud2_to_xyzi(reordered)
    np.testing.assert_array_equal(fast.points, reference)
    np.testing.assert_array_equal(general.points, reference)
    assert fast.nonfinite_points == general.nonfinite_points == 400 - reference.shape[0]


def test_sync_stream_has_10_hz_clouds_20_hz_images_and_every_cloud_is_decided() -> None:
    events = message_stream(seconds=3.0)
    kinds = [kind for _, kind, _ in events]
    assert kinds.count('points') == 30 and kinds.count('image') == 60 and kinds.count('poll') == 150
    assert [e[0] for e in events] == sorted(e[0] for e in events)
    times, counters = sync_cost_per_message(rounds=1, seconds=3.0)
    assert times['message'].shape == (90,) and times['poll'].shape == (150,)
    assert counters['paired'] + counters.get('lidar_only', 0) + counters.get('pending', 0) == 30


def test_e2e_rows_carry_latency_overhead_stages_and_overload_windows() -> None:
    run = {
        'input_hz': 10.0,
        'pairs': 50,
        'dropped': 0,
        'drop_rate': 0.0,
        'latency': {'p50_ms': 90.0, 'p99_ms': 120.0},
        'node_overhead': {'p50_ms': 12.0, 'p99_ms': 20.0},
        'node_overhead_without_sync_wait': {'p50_ms': 8.0, 'p99_ms': 10.0},
        'stages': {'inference': {'p50_ms': 70.0, 'p99_ms': 90.0}},
        'windows': [{'from_s': 0.0, 'p50_ms': 90.0, 'p99_ms': 120.0, 'frames': 50}],
    }
    overload = {**run, 'input_hz': 70.0, 'pairs': 700, 'dropped': 600, 'drop_rate': 0.857}
    report = {'nominal': run, 'overload': overload, 'highest_sustained_hz': 12.5, 'peak_rss_mib': 300.0}
    rows = bench.e2e_rows(report, 'python -m anovox_perception.tools.bench_e2e bag')
    assert list(rows) == [
        'e2e_latency_10hz',
        'e2e_node_overhead_10hz',
        'e2e_node_overhead_without_sync_wait_10hz',
        'e2e_inference_10hz',
        'e2e_latency_overload_70hz',
    ]
    assert rows['e2e_latency_10hz']['highest_sustained_hz'] == 12.5
    assert rows['e2e_latency_overload_70hz']['note'].startswith('600 of 700 pairs dropped; p99 per 10 s window [120.0]')
    assert all(row['command'] == 'python -m anovox_perception.tools.bench_e2e bag' for row in rows.values())


def test_round_robin_times_every_stage_each_round() -> None:
    calls: list[str] = []
    times = bench.time_round_robin({'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')}, 3, 1)
    assert calls == ['a', 'b'] * 4
    assert {k: v.shape for k, v in times.items()} == {'a': (3,), 'b': (3,)}
    summary = bench.summarise(np.array([1.0, 2.0, 3.0, 4.0]))
    assert summary['p50_ms'] == 2.5 and summary['min_ms'] == 1.0 and summary['n'] == 4


def test_bad_arguments_fail_with_a_message(capsys: pytest.CaptureFixture) -> None:
    assert bench.main(['--iterations', '0']) == 1
    assert '--iterations, --reference-rounds and --threads must be >= 1' in capsys.readouterr().err


def _organised_cloud(points: np.ndarray, order: tuple[str, ...], pad_bytes: int) -> PointCloud2:
    """An organised (4 x N/4) float32 cloud with its fields at 4-byte slots in ``order`` and padded rows."""
    height, width = 4, points.shape[0] // 4
    point_step = 4 * len(order) + 2
    row_step = width * point_step + pad_bytes
    data = np.zeros((height, row_step), dtype=np.uint8)
    columns = dict(zip(('x', 'y', 'z', 'intensity'), points.T, strict=True))
    for slot, name in enumerate(order):
        values = np.ascontiguousarray(columns[name].reshape(height, width), dtype='<f4')
        view = data[:, : width * point_step].reshape(height, width, point_step)
        view[:, :, 4 * slot : 4 * slot + 4] = values.view(np.uint8).reshape(height, width, 4)
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(order)]
    return PointCloud2(
        header=Header(),
        height=height,
        width=width,
        fields=fields,
        is_bigendian=False,
        point_step=point_step,
        row_step=row_step,
        data=data.tobytes(),
        is_dense=False,
    )


def test_packed_decode_of_an_organised_cloud_with_padded_rows_equals_the_general_path() -> None:
    rng = np.random.default_rng(2)
    points = rng.normal(size=(40, 4)).astype(np.float32)
    points[[3, 17], 0] = np.nan
    points[5, 2] = np.inf
    points[[8, 30], 3] = np.nan  # bad intensities become 0, the points stay
    packed = msg_codec.pointcloud2_to_xyzi(_organised_cloud(points, ('x', 'y', 'z', 'intensity'), pad_bytes=6))
    general = msg_codec.pointcloud2_to_xyzi(_organised_cloud(points, ('intensity', 'x', 'y', 'z'), pad_bytes=6))
    np.testing.assert_array_equal(packed.points, general.points)
    assert packed.points.shape == (37, 4) and packed.nonfinite_points == general.nonfinite_points == 3
    assert packed.total_points == 40 and packed.has_intensity and not np.isnan(packed.points).any()
