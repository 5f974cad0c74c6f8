"""Inference backends behind one interface, and the choice between them.

    backend_cls, reason = select_backend('auto')
    backend = backend_cls.load('models/anovox_demo.onnx', BackendOptions(intra_op_threads=2))
    outputs = backend.run(inputs)          # dict name -> np.ndarray, as in backend.card

``auto`` takes TensorRT when it imports and a CUDA device is present, else ONNX
Runtime (its CUDA provider when present, else CPU) with a warning that says
why TensorRT was not used. Asking for a backend that cannot run here raises
:class:`BackendError` with what is missing and what to use instead. Importing
this package imports none of TensorRT, ONNX Runtime or torch.
"""

from __future__ import annotations

import logging

from anovox_perception.backends import probe
from anovox_perception.backends.base import Backend, BackendOptions, check_inputs
from anovox_perception.backends.onnxruntime import OnnxRuntimeBackend
from anovox_perception.backends.tensorrt import TensorRTBackend
from anovox_perception.backends.torch import TorchBackend
from anovox_perception.core.errors import BackendError, ConfigError

__all__ = [
    'BACKENDS',
    'BACKEND_CHOICES',
    'Backend',
    'BackendOptions',
    'OnnxRuntimeBackend',
    'TensorRTBackend',
    'TorchBackend',
    'check_inputs',
    'select_backend',
]

_LOG = logging.getLogger(__name__)

BACKENDS: dict[str, type[Backend]] = {
    'tensorrt': TensorRTBackend,
    'onnxruntime': OnnxRuntimeBackend,
    'torch': TorchBackend,
}
BACKEND_CHOICES = ('auto', *BACKENDS)

_HINTS = {
    'tensorrt': "install TensorRT 10 and cuda-python on a machine with an NVIDIA GPU, or use 'onnxruntime'",
    'onnxruntime': 'pip install onnxruntime (or onnxruntime-gpu)',
    'torch': "pip install torch, or use 'onnxruntime'",
}
_PROBES = {
    'tensorrt': lambda: probe.tensorrt_status(),
    'onnxruntime': lambda: probe.onnxruntime_status(),
    'torch': lambda: probe.torch_status(),
}


def select_backend(name: str = 'auto') -> tuple[type[Backend], str]:
    """Pick the backend class for ``name`` and say why (also logged).

    Args:
        name: ``'auto'``, ``'tensorrt'``, ``'onnxruntime'`` or ``'torch'``.

    Returns:
        ``(backend class, reason)``.

    Raises:
        ConfigError: Unknown name.
        BackendError: The named backend (or, for ``auto``, every candidate)
            cannot run here; the message says what is missing.
    """
    if name not in BACKEND_CHOICES:
        msg = f'unknown backend {name!r}; choose one of {BACKEND_CHOICES}'
        raise ConfigError(msg)
    if name != 'auto':
        ok, why = _PROBES[name]()
        if not ok:
            msg = f'backend {name!r} was requested but cannot run here: {why}; {_HINTS[name]}'
            raise BackendError(msg)
        reason = f'{name} requested: {why}'
        _LOG.info('inference backend: %s', reason)
        return BACKENDS[name], reason
    trt_ok, trt_why = probe.tensorrt_status()
    if trt_ok:
        reason = f'auto chose tensorrt: {trt_why}'
        _LOG.info('inference backend: %s', reason)
        return TensorRTBackend, reason
    ort_ok, ort_why = probe.onnxruntime_status()
    if ort_ok:
        cuda_ok, cuda_why = probe.onnxruntime_cuda_status()
        where = 'CUDA provider' if cuda_ok else f'CPU ({cuda_why})'
        reason = f'auto fell back to onnxruntime on {where} because TensorRT is not usable: {trt_why}'
        _LOG.warning('inference backend: %s', reason)
        return OnnxRuntimeBackend, reason
    msg = f'backend auto: no usable backend: TensorRT: {trt_why}; ONNX Runtime: {ort_why}; {_HINTS["onnxruntime"]}'
    raise BackendError(msg)
