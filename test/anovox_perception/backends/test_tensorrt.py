"""TensorRT backend: engine preparation, caching and I/O checks with stand-ins; the real thing on a GPU."""

from __future__ import annotations

import enum
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from anovox_perception.backends import BackendOptions, OnnxRuntimeBackend, TensorRTBackend, probe
from anovox_perception.backends import tensorrt as trt_backend
from anovox_perception.backends.build_engine import main as build_engine_main
from anovox_perception.core.errors import BackendError, ModelCardError
from anovox_perception.core.model_card import ModelCard, card_path_for

needs_tensorrt = pytest.mark.skipif(not probe.tensorrt_status()[0], reason='needs tensorrt and a CUDA GPU')


class _CudaError(enum.Enum):
    cudaSuccess = 0
    cudaErrorNoDevice = 100


class _FakeCudart:
    """The few cuda-python runtime calls engine preparation makes."""

    cudaError_t = _CudaError

    def __init__(self, device_name: bytes = b'NVIDIA Fake GPU\0\0\0') -> None:
        self.device_name = device_name

    def cudaSetDevice(self, device: int) -> tuple:
        return (_CudaError.cudaSuccess if device == 0 else _CudaError.cudaErrorNoDevice,)

    def cudaGetDeviceProperties(self, device: int) -> tuple:
        return _CudaError.cudaSuccess, SimpleNamespace(name=self.device_name, major=8, minor=7)


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> dict:
    """TensorRT 10.3 and one GPU as far as engine preparation can tell; builds are counted, not run."""
    state = {'builds': [], 'cudart': _FakeCudart()}
    monkeypatch.setattr(trt_backend, '_trt', lambda: SimpleNamespace(__version__='10.3.0'))
    monkeypatch.setattr(probe, 'cuda_runtime', lambda: state['cudart'])

    def build(onnx_path: Path, precision: str, workspace_mib: int) -> bytes:
        state['builds'].append((Path(onnx_path).name, precision, workspace_mib))
        return f'engine:{precision}:{workspace_mib}'.encode() * 100

    monkeypatch.setattr(trt_backend, 'build_serialized_engine', build)
    return state


def test_engine_is_built_once_then_taken_from_the_cache(fake_gpu: dict, tiny_export: Path, tmp_path: Path) -> None:
    options = BackendOptions(engine_cache_dir=str(tmp_path), workspace_mib=256)
    first = trt_backend.prepare_engine(tiny_export, options)
    second = trt_backend.prepare_engine(tiny_export, options)
    assert first.built and not second.built
    assert second.engine == first.engine == b'engine:fp32:256' * 100
    assert fake_gpu['builds'] == [('anovox_tiny.onnx', 'fp32', 256)]
    assert first.key.to_dict() == {
        'onnx_sha256': first.card.onnx_sha256,
        'precision': 'fp32',
        'tensorrt_version': '10.3.0',
        'gpu_name': 'NVIDIA Fake GPU',
        'compute_capability': '8.7',
    }


def test_other_precision_or_gpu_builds_a_new_engine(fake_gpu: dict, tiny_export: Path, tmp_path: Path) -> None:
    trt_backend.prepare_engine(tiny_export, BackendOptions(engine_cache_dir=str(tmp_path)))
    fp16 = trt_backend.prepare_engine(tiny_export, BackendOptions(engine_cache_dir=str(tmp_path), precision='fp16'))
    fake_gpu['cudart'].device_name = b'NVIDIA Other GPU'
    other_gpu = trt_backend.prepare_engine(tiny_export, BackendOptions(engine_cache_dir=str(tmp_path)))
    assert fp16.built and other_gpu.built
    assert [b[1] for b in fake_gpu['builds']] == ['fp32', 'fp16', 'fp32']
    assert len(list(tmp_path.glob('anovox_tiny-*.engine'))) == 3


def test_corrupt_cached_engine_is_rebuilt_with_a_log_line(
    fake_gpu: dict, tiny_export: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = BackendOptions(engine_cache_dir=str(tmp_path))
    prepared = trt_backend.prepare_engine(tiny_export, options)
    engine_path, _ = prepared.cache.paths(prepared.card.name, prepared.key)
    engine_path.write_bytes(b'X' + engine_path.read_bytes()[1:])
    with caplog.at_level(logging.WARNING):
        again = trt_backend.prepare_engine(tiny_export, options)
    assert again.built and again.engine == prepared.engine
    assert 'is corrupt (sha256 does not match its sidecar); discarding it and rebuilding' in caplog.text
    assert len(fake_gpu['builds']) == 2


def test_rebuild_ignores_a_valid_cached_engine(fake_gpu: dict, tiny_export: Path, tmp_path: Path) -> None:
    options = BackendOptions(engine_cache_dir=str(tmp_path))
    trt_backend.prepare_engine(tiny_export, options)
    assert trt_backend.prepare_engine(tiny_export, options, rebuild=True).built
    assert len(fake_gpu['builds']) == 2


def test_modified_onnx_is_refused_before_any_build(fake_gpu: dict, tiny_export: Path, tmp_path: Path) -> None:
    changed = tmp_path / tiny_export.name
    data = bytearray(tiny_export.read_bytes())
    data[len(data) // 2] ^= 0x01
    changed.write_bytes(bytes(data))
    shutil.copy(card_path_for(tiny_export), card_path_for(changed))
    with pytest.raises(ModelCardError, match=r'anovox_tiny.onnx does not match'):
        trt_backend.prepare_engine(changed, BackendOptions(engine_cache_dir=str(tmp_path / 'cache')))
    assert fake_gpu['builds'] == []


def test_missing_cuda_device_is_a_backend_error(fake_gpu: dict, tiny_export: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r'CUDA cudaSetDevice\(1\) failed: cudaErrorNoDevice'):
        trt_backend.prepare_engine(tiny_export, BackendOptions(engine_cache_dir=str(tmp_path), device_id=1))


class _FakeEngine:
    """Named I/O tensors as TensorRT 10 engines report them."""

    def __init__(self, tensors: list[tuple[str, str, tuple[int, ...], type]]) -> None:
        self.tensors = tensors
        self.num_io_tensors = len(tensors)

    def _find(self, name: str) -> tuple:
        return next(t for t in self.tensors if t[0] == name)

    def get_tensor_name(self, index: int) -> str:
        return self.tensors[index][0]

    def get_tensor_mode(self, name: str) -> str:
        return self._find(name)[1]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._find(name)[2]

    def get_tensor_dtype(self, name: str) -> type:
        return self._find(name)[3]


_FAKE_TRT = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT='in', OUTPUT='out'), nptype=lambda dtype: dtype)


def test_engine_io_is_read_by_name_and_checked_against_the_card(tiny_card: ModelCard) -> None:
    tensors = [(n, 'in', s.shape, np.float32) for n, s in tiny_card.inputs.items()]
    tensors += [(n, 'out', s.shape, np.float32) for n, s in tiny_card.outputs.items()]
    inputs, outputs = trt_backend.engine_io(_FAKE_TRT, _FakeEngine(tensors))
    assert list(inputs) == list(tiny_card.inputs) and list(outputs) == ['occupancy', 'anomaly']
    tiny_card.check_io(inputs, outputs, where='engine')
    tensors[-1] = ('anomaly', 'out', (1, 8, 8, 8), np.float16)
    inputs, outputs = trt_backend.engine_io(_FAKE_TRT, _FakeEngine(tensors))
    with pytest.raises(
        ModelCardError, match=r"TensorRT engine of x does not match .*'anomaly' shape \[1, 8, 8, 8\].*float16"
    ):
        tiny_card.check_io(inputs, outputs, where='TensorRT engine of x')


def test_tensorrt_backend_without_tensorrt_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tiny_export: Path
) -> None:
    monkeypatch.setattr(probe, 'tensorrt_status', lambda: (False, 'tensorrt does not import'))
    with pytest.raises(BackendError, match=r"backend tensorrt is unavailable: tensorrt does not import.*'onnxruntime'"):
        TensorRTBackend.load(tiny_export)


def test_build_engine_cli_builds_then_verifies(
    fake_gpu: dict, tiny_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [str(tiny_export), '--fp16', '--workspace-mib', '512', '--cache-dir', str(tmp_path)]
    assert build_engine_main(argv) == 0
    assert 'built engine' in capsys.readouterr().out
    assert build_engine_main(argv) == 0
    assert 'verified cached engine' in capsys.readouterr().out
    assert fake_gpu['builds'] == [('anovox_tiny.onnx', 'fp16', 512)]


def test_build_engine_cli_fails_cleanly_without_tensorrt(
    monkeypatch: pytest.MonkeyPatch, tiny_export: Path, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(probe, 'tensorrt_status', lambda: (False, 'tensorrt does not import'))
    assert build_engine_main([str(tiny_export)]) == 1
    assert 'anovox-build-engine: backend tensorrt is unavailable' in capsys.readouterr().err


@needs_tensorrt
def test_tensorrt_engine_matches_onnx_runtime_and_is_cached(
    tiny_export: Path, tiny_card: ModelCard, tmp_path: Path, random_inputs
) -> None:
    options = BackendOptions(engine_cache_dir=str(tmp_path))
    backend = TensorRTBackend.load(tiny_export, options)
    reference = OnnxRuntimeBackend.load(tiny_export)
    try:
        for seed in (0, 1):
            inputs = random_inputs(tiny_card, seed=seed)
            ours, ref = backend.run(inputs), reference.run(inputs)
            for name in tiny_card.outputs:
                np.testing.assert_allclose(ours[name], ref[name], rtol=0, atol=1e-3)
    finally:
        backend.close()
    assert not trt_backend.prepare_engine(tiny_export, options).built
