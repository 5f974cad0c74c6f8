"""TensorRT 10 backend: engine built from the ONNX on first use, cached, verified, run on a CUDA stream.

Build: ``trt.Builder`` -> ``create_network(0)`` (explicit batch is the only
mode in TensorRT 10) -> ``trt.OnnxParser`` -> ``IBuilderConfig`` with a
workspace pool limit and the precision flags -> ``build_serialized_network``.
The engine is cached under :class:`EngineKey` (graph sha256, precision,
TensorRT version, GPU name, compute capability) and verified before every
deserialisation (see :mod:`engine_cache`).

Run: named tensor I/O. Each I/O tensor gets one device buffer and one pinned
host buffer, allocated once; ``context.set_tensor_address`` points the engine
at the device buffers; a run copies inputs host -> device, calls
``execute_async_v3`` on the backend's CUDA stream, copies outputs back and
synchronises that stream only.

CUDA memory and streams come from cuda-python (``cuda.bindings.runtime``)
rather than torch, so a vehicle needs TensorRT and cuda-python, not torch.
Everything is imported lazily: this module imports on machines without them.

Precision: ``fp32`` builds with TF32 disabled so results match ONNX Runtime to
float32 tolerance; ``fp16`` sets ``BuilderFlag.FP16``. INT8 is the extension
point of :func:`_configure_precision` (explicit Q/DQ quantisation in the
exported graph; TensorRT 10 deprecates calibrators).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from anovox_perception.backends import probe
from anovox_perception.backends.base import BackendOptions, check_inputs
from anovox_perception.backends.engine_cache import EngineCache, EngineKey, default_cache_dir
from anovox_perception.core.errors import BackendError
from anovox_perception.core.model_card import CARD_METADATA_KEY, ModelCard, load_card, verify_onnx_against_card
from anovox_perception.core.onnx_file import read_onnx_file

__all__ = ['PreparedEngine', 'TensorRTBackend', 'build_serialized_engine', 'engine_io', 'prepare_engine']

_LOG = logging.getLogger(__name__)


def _trt() -> Any:
    ok, why = probe.tensorrt_status()
    if not ok:
        msg = (
            f'backend tensorrt is unavailable: {why}. Install TensorRT 10 and cuda-python on a machine with an '
            "NVIDIA GPU, or use backend 'onnxruntime' (or 'auto' to fall back automatically)"
        )
        raise BackendError(msg)
    import tensorrt as trt

    return trt


_LOGGERS: dict[int, Any] = {}


def _trt_logger(trt: Any) -> Any:
    # One logger per process: TensorRT keeps a reference to it in every builder and runtime.
    if id(trt) not in _LOGGERS:
        _LOGGERS[id(trt)] = trt.Logger(trt.Logger.WARNING)
    return _LOGGERS[id(trt)]


def _cuda(result: Any, what: str) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` result, raising BackendError on failure."""
    cudart = probe.cuda_runtime()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        msg = f'CUDA {what} failed: {err.name}'
        raise BackendError(msg)
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def gpu_identity(device_id: int) -> tuple[str, str]:
    """(device name, compute capability ``'major.minor'``) of a CUDA device."""
    cudart = probe.cuda_runtime()
    props = _cuda(cudart.cudaGetDeviceProperties(device_id), f'cudaGetDeviceProperties({device_id})')
    name = props.name
    if isinstance(name, bytes):
        name = name.split(b'\0', 1)[0].decode(errors='replace')
    return str(name).strip(), f'{props.major}.{props.minor}'


def _configure_precision(trt: Any, config: Any, precision: str) -> None:
    """Precision flags.

    Extension point for INT8: TensorRT 10 deprecates implicit INT8 calibration
    (``BuilderFlag.INT8`` + ``config.int8_calibrator``) in favour of explicit
    quantisation, i.e. Q/DQ nodes in the ONNX graph from a quantisation-aware
    export; such a graph needs no flag here, only 'int8' in the cache key.
    """
    if precision == 'fp32':
        config.clear_flag(trt.BuilderFlag.TF32)
    elif precision == 'fp16':
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        msg = f'TensorRT precision {precision!r} is not supported (fp32, fp16; int8 needs a Q/DQ-quantised export)'
        raise BackendError(msg)


def build_serialized_engine(onnx_path: str | Path, precision: str, workspace_mib: int) -> bytes:
    """Parse an ONNX file and build a serialised TensorRT engine.

    Raises:
        BackendError: TensorRT is unavailable, the parser rejects the graph
            (its errors are quoted), or the build fails.
    """
    trt = _trt()
    logger = _trt_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        msg = f'TensorRT cannot parse {onnx_path}: ' + '; '.join(errors)
        raise BackendError(msg)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    _configure_precision(trt, config, precision)
    _LOG.info('building TensorRT %s engine for %s (workspace %d MiB)', precision, onnx_path, workspace_mib)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        msg = f'TensorRT failed to build an engine for {onnx_path}; see the TensorRT messages above'
        raise BackendError(msg)
    return bytes(serialized)


def engine_io(trt: Any, engine: Any) -> tuple[dict[str, tuple[tuple[int, ...], str]], dict[str, Any]]:
    """An engine's inputs and outputs as name -> (shape, numpy dtype name), in engine order."""
    inputs, outputs = {}, {}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        spec = (tuple(engine.get_tensor_shape(name)), np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name)
        target = inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs
        target[name] = spec
    return inputs, outputs


@dataclass(frozen=True)
class PreparedEngine:
    """A verified engine ready to deserialise."""

    card: ModelCard
    key: EngineKey
    engine: bytes
    built: bool
    cache: EngineCache


def prepare_engine(onnx_path: str | Path, options: BackendOptions, *, rebuild: bool = False) -> PreparedEngine:
    """The verified cached engine of a model, building (and caching) it when needed.

    Args:
        onnx_path: Exported ``.onnx`` with a model card.
        options: ``precision``, ``workspace_mib``, ``engine_cache_dir``, ``device_id``, ``verify_model``.
        rebuild: Ignore a cached engine and build anew.

    Raises:
        BackendError: TensorRT or a GPU is missing, or the build fails.
        ModelCardError: Missing card, corrupt or modified ONNX file.
    """
    trt = _trt()
    path = Path(onnx_path)
    card = load_card(path)
    if options.verify_model:
        graph_sha = verify_onnx_against_card(path, card)
    else:
        graph_sha = read_onnx_file(path, hash_graph=True, exclude_keys=[CARD_METADATA_KEY]).graph_sha256
    cudart = probe.cuda_runtime()
    _cuda(cudart.cudaSetDevice(options.device_id), f'cudaSetDevice({options.device_id})')
    gpu_name, capability = gpu_identity(options.device_id)
    key = EngineKey(graph_sha, options.precision, trt.__version__, gpu_name, capability)
    if options.precision == 'fp16' and int(capability.split('.')[0]) < 7:
        _LOG.warning('%s (sm %s) has no tensor cores; an fp16 engine may be no faster than fp32', gpu_name, capability)
    cache = EngineCache(options.engine_cache_dir or default_cache_dir())
    if rebuild:
        cache.discard(card.name, key)
    extra = {'model': card.name, 'onnx': path.name, 'workspace_mib': options.workspace_mib}
    engine, built = cache.get_or_build(
        card.name, key, lambda: build_serialized_engine(path, options.precision, options.workspace_mib), extra
    )
    return PreparedEngine(card, key, engine, built, cache)


class _Buffers:
    """One device buffer and one pinned host buffer per I/O tensor."""

    def __init__(self, specs: Mapping[str, tuple[tuple[int, ...], str]]) -> None:
        self.cudart = probe.cuda_runtime()
        self.device: dict[str, int] = {}
        self.host: dict[str, np.ndarray] = {}
        self._host_ptrs: list[int] = []
        try:
            for name, (shape, dtype) in specs.items():
                nbytes = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
                self.device[name] = _cuda(self.cudart.cudaMalloc(nbytes), f'cudaMalloc({nbytes}) for {name}')
                host_ptr = _cuda(self.cudart.cudaMallocHost(nbytes), f'cudaMallocHost({nbytes}) for {name}')
                self._host_ptrs.append(host_ptr)
                raw = np.ctypeslib.as_array(ctypes.cast(host_ptr, ctypes.POINTER(ctypes.c_uint8)), (nbytes,))
                self.host[name] = raw[: int(np.prod(shape)) * np.dtype(dtype).itemsize].view(dtype).reshape(shape)
        except BackendError:
            self.free()
            raise

    def free(self) -> None:
        for ptr in self.device.values():
            self.cudart.cudaFree(ptr)
        for ptr in self._host_ptrs:
            self.cudart.cudaFreeHost(ptr)
        self.device.clear()
        self.host.clear()
        self._host_ptrs.clear()


class TensorRTBackend:
    """A TensorRT engine with its execution context, buffers and CUDA stream."""

    name: ClassVar[str] = 'tensorrt'

    def __init__(self, engine: Any, runtime: Any, card: ModelCard, model_path: Path, device: str) -> None:
        trt = _trt()
        self.card = card
        self.model_path = model_path
        self.device = device
        self._cudart = probe.cuda_runtime()
        self._runtime = runtime  # the engine must not outlive its runtime
        self._engine = engine
        self._buffers: _Buffers | None = None
        self._stream: Any = None
        self._context = engine.create_execution_context()
        if self._context is None:
            msg = f'TensorRT could not create an execution context for {model_path} (out of GPU memory?)'
            raise BackendError(msg)
        try:
            inputs, outputs = engine_io(trt, engine)
            self._buffers = _Buffers({**inputs, **outputs})
            self._stream = _cuda(self._cudart.cudaStreamCreate(), 'cudaStreamCreate')
            for name, pointer in self._buffers.device.items():
                if not self._context.set_tensor_address(name, pointer):
                    msg = f'TensorRT rejected the device address of tensor {name!r} of {model_path}'
                    raise BackendError(msg)
        except BackendError:
            self.close()
            raise

    @classmethod
    def load(cls, model_path: str | Path, options: BackendOptions | None = None) -> TensorRTBackend:
        """Get a verified engine (cached or freshly built), deserialise it and check its I/O.

        A cached engine that TensorRT still refuses to deserialise is discarded
        and rebuilt once, with a log line.

        Raises:
            BackendError: No TensorRT or GPU, build or deserialisation failure.
            ModelCardError: Missing card, corrupt ONNX, or engine I/O that does not match the card.
        """
        options = options or BackendOptions()
        trt = _trt()
        path = Path(model_path)
        prepared = prepare_engine(path, options)
        runtime = trt.Runtime(_trt_logger(trt))
        engine = runtime.deserialize_cuda_engine(prepared.engine)
        if engine is None and not prepared.built:
            _LOG.warning('TensorRT refused the cached engine for %s; rebuilding it', path)
            prepared = prepare_engine(path, options, rebuild=True)
            engine = runtime.deserialize_cuda_engine(prepared.engine)
        if engine is None:
            msg = f'TensorRT could not deserialise the engine it built for {path}'
            raise BackendError(msg)
        inputs, outputs = engine_io(trt, engine)
        prepared.card.check_io(inputs, outputs, where=f'TensorRT engine of {path}')
        gpu_name, capability = prepared.key.gpu_name, prepared.key.compute_capability
        device = f'cuda:{options.device_id} ({gpu_name}, sm {capability}, {options.precision})'
        return cls(engine, runtime, prepared.card, path, device)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference on the backend's CUDA stream.

        Raises:
            BackendError: Inputs do not match the card, or CUDA / TensorRT fails.
        """
        check_inputs(self.card, inputs, self.name)
        cudart, stream, buffers = self._cudart, self._stream, self._buffers
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.card.inputs:
            host = buffers.host[name]
            np.copyto(host, inputs[name])
            _cuda(cudart.cudaMemcpyAsync(buffers.device[name], host.ctypes.data, host.nbytes, h2d, stream), 'H2D copy')
        if not self._context.execute_async_v3(int(stream)):
            msg = f'TensorRT execute_async_v3 failed for {self.model_path}'
            raise BackendError(msg)
        for name in self.card.outputs:
            host = buffers.host[name]
            _cuda(cudart.cudaMemcpyAsync(host.ctypes.data, buffers.device[name], host.nbytes, d2h, stream), 'D2H copy')
        _cuda(cudart.cudaStreamSynchronize(stream), 'cudaStreamSynchronize')
        # Copies: the pinned buffers are overwritten by the next run.
        return {name: buffers.host[name].copy() for name in self.card.outputs}

    def close(self) -> None:
        """Free device and pinned memory and the stream; idempotent."""
        if self._buffers is not None:
            self._buffers.free()
            self._buffers = None
        if self._stream is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = None
        self._engine = None
        self._runtime = None
