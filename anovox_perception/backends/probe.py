"""Cheap checks of what this machine can run: TensorRT, a CUDA GPU, ONNX Runtime, torch.

Each probe returns ``(available, reason)``; the reason is a sentence for the
log that says what was found or what is missing. Backend selection calls them
through this module, so tests replace them with ``monkeypatch``.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

__all__ = [
    'cuda_runtime',
    'cuda_device_status',
    'onnxruntime_cuda_status',
    'onnxruntime_status',
    'tensorrt_status',
    'torch_status',
]


def _import(name: str) -> tuple[ModuleType | None, str]:
    try:
        return importlib.import_module(name), ''
    except ImportError as err:
        return None, f'{name} does not import ({err})'
    except Exception as err:  # a broken install must not crash selection
        return None, f'{name} fails to import ({type(err).__name__}: {err})'


def cuda_runtime() -> ModuleType | None:
    """The CUDA runtime bindings of cuda-python (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6)."""
    for name in ('cuda.bindings.runtime', 'cuda.cudart'):
        module, _ = _import(name)
        if module is not None:
            return module
    return None


@functools.cache
def cuda_device_status() -> tuple[bool, str]:
    """Whether cuda-python finds at least one CUDA device (cached: devices do not come and go)."""
    cudart = cuda_runtime()
    if cudart is None:
        return False, 'cuda-python (cuda.bindings.runtime) is not installed'
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess:
        return False, f'no usable CUDA device ({err.name})'
    if count < 1:
        return False, 'no CUDA device found'
    return True, f'{count} CUDA device(s)'


def tensorrt_status() -> tuple[bool, str]:
    """Whether the TensorRT backend can run: TensorRT 10 imports and a CUDA device is present."""
    trt, why = _import('tensorrt')
    if trt is None:
        return False, why
    version = getattr(trt, '__version__', '0')
    if int(version.split('.')[0]) < 10:
        return False, f'TensorRT {version} is too old (need 10.x)'
    ok, device_reason = cuda_device_status()
    if not ok:
        return False, f'TensorRT {version} imports but {device_reason}'
    return True, f'TensorRT {version} and {device_reason}'


def onnxruntime_status() -> tuple[bool, str]:
    """Whether ONNX Runtime imports."""
    ort, why = _import('onnxruntime')
    if ort is None:
        return False, why
    return True, f'ONNX Runtime {ort.__version__}'


def onnxruntime_cuda_status() -> tuple[bool, str]:
    """Whether the installed ONNX Runtime has the CUDA execution provider and a device is present."""
    ort, why = _import('onnxruntime')
    if ort is None:
        return False, why
    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        return False, 'this ONNX Runtime build has no CUDA execution provider'
    if cuda_runtime() is None:
        # The session falls back to CPU by itself if no device turns up; the backend reports it.
        return True, 'CUDA execution provider (device not checked: cuda-python is not installed)'
    ok, device_reason = cuda_device_status()
    if not ok:
        # onnxruntime-gpu lists the provider even without a GPU; trust it only with a device.
        return False, f'the CUDA execution provider is installed but {device_reason}'
    return True, f'CUDA execution provider and {device_reason}'


def torch_status() -> tuple[bool, str]:
    """Whether torch imports."""
    torch, why = _import('torch')
    if torch is None:
        return False, why
    return True, f'torch {torch.__version__}'
