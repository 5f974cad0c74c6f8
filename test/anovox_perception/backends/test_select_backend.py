"""Backend selection and options, with the machine probes replaced (no GPU or TensorRT needed)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from anovox_perception.backends import (
    BACKENDS,
    BackendOptions,
    OnnxRuntimeBackend,
    TensorRTBackend,
    probe,
    select_backend,
)
from anovox_perception.core.errors import BackendError, ConfigError


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """Set what the probes report: ``machine(tensorrt=..., onnxruntime=..., ort_cuda=..., torch=...)``."""

    def configure(tensorrt: bool = False, onnxruntime: bool = True, ort_cuda: bool = False, torch: bool = True) -> None:
        monkeypatch.setattr(probe, 'tensorrt_status', lambda: (tensorrt, 'TRT-OK' if tensorrt else 'no TRT here'))
        monkeypatch.setattr(probe, 'onnxruntime_status', lambda: (onnxruntime, 'ORT-OK' if onnxruntime else 'no ORT'))
        monkeypatch.setattr(
            probe, 'onnxruntime_cuda_status', lambda: (ort_cuda, 'CUDA-EP' if ort_cuda else 'no CUDA provider')
        )
        monkeypatch.setattr(probe, 'torch_status', lambda: (torch, 'torch-OK' if torch else 'no torch'))

    return configure


def test_auto_takes_tensorrt_when_it_and_a_gpu_are_present(machine, caplog: pytest.LogCaptureFixture) -> None:
    machine(tensorrt=True)
    with caplog.at_level(logging.INFO):
        backend, reason = select_backend('auto')
    assert backend is TensorRTBackend
    assert reason == 'auto chose tensorrt: TRT-OK'
    assert reason in caplog.text


def test_auto_falls_back_to_onnxruntime_cpu_with_a_warning_that_says_why(
    machine, caplog: pytest.LogCaptureFixture
) -> None:
    machine(tensorrt=False)
    with caplog.at_level(logging.WARNING):
        backend, reason = select_backend('auto')
    assert backend is OnnxRuntimeBackend
    assert 'fell back to onnxruntime on CPU (no CUDA provider)' in reason
    assert 'no TRT here' in reason
    assert caplog.records[-1].levelno == logging.WARNING and reason in caplog.text


def test_auto_names_the_cuda_provider_when_onnxruntime_has_one(machine) -> None:
    machine(tensorrt=False, ort_cuda=True)
    backend, reason = select_backend('auto')
    assert backend is OnnxRuntimeBackend
    assert 'onnxruntime on CUDA provider' in reason


def test_auto_without_any_runtime_raises_naming_what_is_missing(machine) -> None:
    machine(tensorrt=False, onnxruntime=False)
    with pytest.raises(BackendError, match=r'no usable backend: TensorRT: no TRT here; ONNX Runtime: no ORT'):
        select_backend('auto')


def test_explicit_tensorrt_without_it_is_a_clear_error(machine) -> None:
    machine(tensorrt=False)
    with pytest.raises(
        BackendError, match=r"backend 'tensorrt' was requested but cannot run here: no TRT here.*onnxruntime"
    ):
        select_backend('tensorrt')


@pytest.mark.parametrize('name', ['onnxruntime', 'torch', 'tensorrt'])
def test_explicit_backends_are_returned_with_the_probe_reason(machine, name: str) -> None:
    machine(tensorrt=True)
    backend, reason = select_backend(name)
    assert backend is BACKENDS[name]
    assert reason.startswith(f'{name} requested: ')


def test_explicit_torch_without_torch_is_a_clear_error(machine) -> None:
    machine(torch=False)
    with pytest.raises(BackendError, match=r"backend 'torch' was requested but cannot run here: no torch"):
        select_backend('torch')


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown backend 'tensorflow'; choose one of \('auto', 'tensorrt'"):
        select_backend('tensorflow')


def test_every_backend_class_follows_the_protocol() -> None:
    assert set(BACKENDS) == {'tensorrt', 'onnxruntime', 'torch'}
    for name, backend in BACKENDS.items():
        assert backend.name == name
        for method in ('load', 'run', 'close'):
            assert callable(getattr(backend, method))


def test_this_machine_probes_answer_with_a_reason() -> None:
    for status in (probe.tensorrt_status, probe.onnxruntime_status, probe.torch_status):
        ok, reason = status()
        assert isinstance(ok, bool) and reason


@pytest.mark.parametrize(
    ('options', 'problem'),
    [
        ({'precision': 'int8'}, 'int8 needs a Q/DQ-quantised export'),
        ({'precision': 'fp64'}, 'precision must be one of'),
        ({'graph_optimization': 'max'}, 'graph_optimization must be one of'),
        ({'intra_op_threads': -1}, 'intra_op_threads must be an integer >= 0'),
        ({'workspace_mib': 1}, 'workspace_mib must be an integer >= 16'),
    ],
)
def test_invalid_backend_options_are_rejected(options: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        BackendOptions(**options)


def test_runtime_imports_neither_the_training_package_nor_any_inference_library() -> None:
    code = (
        'import sys, anovox_perception.backends, anovox_perception.backends.build_engine, '
        'anovox_perception.tools.bench; '
        "print(sorted(m for m in ('anovox_training', 'torch', 'onnxruntime', 'tensorrt', 'onnx') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == '[]'
