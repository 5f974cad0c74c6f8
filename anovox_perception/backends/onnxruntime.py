"""ONNX Runtime backend: CUDA execution provider when available, else CPU.

On the CPU provider, ``session.run`` already reads numpy inputs in place, so
I/O binding would save nothing. On the CUDA provider with ``io_binding`` the
inputs live in device buffers allocated once and updated in place each frame,
and the outputs are bound to host memory, so ORT copies results straight into
them instead of allocating device outputs and copying them out per run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from anovox_perception.backends import probe
from anovox_perception.backends.base import BackendOptions, check_inputs
from anovox_perception.core.errors import BackendError
from anovox_perception.core.model_card import ModelCard, load_card

__all__ = ['OnnxRuntimeBackend', 'make_session_options']

_LOG = logging.getLogger(__name__)

_ORT_DTYPES = {
    'tensor(float)': 'float32',
    'tensor(float16)': 'float16',
    'tensor(int32)': 'int32',
    'tensor(int64)': 'int64',
    'tensor(uint8)': 'uint8',
    'tensor(bool)': 'bool',
}
_LEVELS = {
    'disable': 'ORT_DISABLE_ALL',
    'basic': 'ORT_ENABLE_BASIC',
    'extended': 'ORT_ENABLE_EXTENDED',
    'layout': 'ORT_ENABLE_LAYOUT',
    'all': 'ORT_ENABLE_ALL',
}


def make_session_options(options: BackendOptions) -> Any:
    """``onnxruntime.SessionOptions`` from backend options (threads, optimisation level, mode).

    Raises:
        BackendError: The optimisation level does not exist in this ONNX Runtime.
    """
    import onnxruntime as ort

    level = getattr(ort.GraphOptimizationLevel, _LEVELS[options.graph_optimization], None)
    if level is None:
        msg = f'ONNX Runtime {ort.__version__} has no graph optimisation level {options.graph_optimization!r}'
        raise BackendError(msg)
    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = level
    session_options.intra_op_num_threads = options.intra_op_threads
    session_options.inter_op_num_threads = options.inter_op_threads
    session_options.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if options.parallel_execution else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    spin = '1' if options.spin_wait else '0'
    session_options.add_session_config_entry('session.intra_op.allow_spinning', spin)
    session_options.add_session_config_entry('session.inter_op.allow_spinning', spin)
    return session_options


class OnnxRuntimeBackend:
    """A model in an ONNX Runtime ``InferenceSession``."""

    name: ClassVar[str] = 'onnxruntime'

    def __init__(self, session: Any, card: ModelCard, model_path: Path, device: str, io_binding: bool) -> None:
        self._session = session
        self.card = card
        self.model_path = model_path
        self.device = device
        self._output_names = list(card.outputs)
        self._binding: Any = None
        self._device_inputs: dict[str, Any] = {}
        if io_binding and device.startswith('cuda'):
            self._setup_cuda_binding()

    @classmethod
    def load(cls, model_path: str | Path, options: BackendOptions | None = None) -> OnnxRuntimeBackend:
        """Create the session and check its I/O against the model card.

        Args:
            model_path: Exported ``.onnx`` file (card in metadata or beside it).
            options: Threads, optimisation level, CUDA use, I/O binding.

        Raises:
            ModelCardError: Missing/invalid card, corrupt or modified file, I/O mismatch.
            BackendError: ONNX Runtime is missing or cannot load the file.
        """
        options = options or BackendOptions()
        path = Path(model_path)
        card = load_card(path, verify=options.verify_model)
        try:
            import onnxruntime as ort
        except ImportError as err:
            msg = f'backend onnxruntime: onnxruntime is not installed ({err}); pip install onnxruntime'
            raise BackendError(msg) from None
        use_cuda = options.use_cuda
        if use_cuda is None:
            use_cuda, why = probe.onnxruntime_cuda_status()
            _LOG.info('ONNX Runtime %s: %s', 'uses CUDA' if use_cuda else 'stays on CPU', why)
        providers: list[Any] = ['CPUExecutionProvider']
        if use_cuda:
            providers.insert(0, ('CUDAExecutionProvider', {'device_id': options.device_id}))
        try:
            session = ort.InferenceSession(str(path), make_session_options(options), providers=providers)
        except Exception as err:  # ORT raises its own pybind exception types for every load failure
            msg = f'ONNX Runtime cannot load {path}: {err}'
            raise BackendError(msg) from None
        active = session.get_providers()
        device = f'cuda:{options.device_id}' if active[0] == 'CUDAExecutionProvider' else 'cpu'
        if use_cuda and device == 'cpu':
            _LOG.warning('ONNX Runtime could not start the CUDA provider for %s; running on CPU', path)
        card.check_io(
            {i.name: (tuple(i.shape), _ORT_DTYPES.get(i.type, i.type)) for i in session.get_inputs()},
            {o.name: (tuple(o.shape), _ORT_DTYPES.get(o.type, o.type)) for o in session.get_outputs()},
            where=f'ONNX Runtime session of {path}',
        )
        return cls(session, card, path, device, options.io_binding)

    def _setup_cuda_binding(self) -> None:
        import onnxruntime as ort

        device_id = int(self.device.split(':')[1])
        self._binding = self._session.io_binding()
        for name, spec in self.card.inputs.items():
            value = ort.OrtValue.ortvalue_from_shape_and_type(
                list(spec.shape), np.dtype(spec.dtype).type, 'cuda', device_id
            )
            self._device_inputs[name] = value
            self._binding.bind_ortvalue_input(name, value)
        for name in self._output_names:
            self._binding.bind_output(name, 'cpu')

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference.

        Raises:
            BackendError: Inputs do not match the card, or ONNX Runtime fails.
        """
        check_inputs(self.card, inputs, self.name)
        try:
            if self._binding is None:
                results = self._session.run(self._output_names, dict(inputs))
            else:
                for name, value in self._device_inputs.items():
                    value.update_inplace(np.ascontiguousarray(inputs[name]))
                self._session.run_with_iobinding(self._binding)
                results = self._binding.copy_outputs_to_cpu()
        except Exception as err:  # ORT raises its own pybind exception types at run time
            msg = f'ONNX Runtime failed to run {self.model_path}: {err}'
            raise BackendError(msg) from None
        return dict(zip(self._output_names, results, strict=True))

    def close(self) -> None:
        """Drop the session and its buffers."""
        self._binding = None
        self._device_inputs.clear()
        self._session = None
