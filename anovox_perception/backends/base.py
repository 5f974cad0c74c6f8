"""The inference backend interface, its options and the input checks every backend shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from anovox_perception.core.errors import BackendError, ConfigError
from anovox_perception.core.model_card import ModelCard
from anovox_perception.core.parameters import spec_by_name

__all__ = ['GRAPH_OPTIMIZATION_LEVELS', 'PRECISIONS', 'Backend', 'BackendOptions', 'check_inputs']

GRAPH_OPTIMIZATION_LEVELS = ('disable', 'basic', 'extended', 'layout', 'all')
# The node's backend_options.* parameters give the precisions and the defaults of the options they set.
_PRECISION = spec_by_name('backend_options.precision')
PRECISIONS = _PRECISION.choices
_THREADS_DEFAULT = spec_by_name('backend_options.num_threads').default


@dataclass(frozen=True)
class BackendOptions:
    """Options of all backends; each backend reads the ones it knows.

    Attributes:
        intra_op_threads: ONNX Runtime / torch threads inside one operator
            (0 = the runtime's default, usually one per core).
        inter_op_threads: ONNX Runtime threads across independent operators
            (0 = default; only matters with ``parallel_execution``).
        parallel_execution: ONNX Runtime ``ORT_PARALLEL`` execution mode.
        spin_wait: ONNX Runtime worker threads busy-wait for work between runs.
            Off by default: it trims little latency but burns cores that the
            node's other threads (sync, preprocessing, publishing) need.
        graph_optimization: ONNX Runtime graph optimisation level, one of
            :data:`GRAPH_OPTIMIZATION_LEVELS`.
        use_cuda: ONNX Runtime: use the CUDA execution provider. None = when
            the installed ONNX Runtime has it.
        device_id: CUDA device index (ONNX Runtime CUDA provider, TensorRT).
        io_binding: ONNX Runtime: bind inputs and outputs to buffers on the
            session's device (saves a copy per tensor with the CUDA provider).
        precision: TensorRT build precision, one of :data:`PRECISIONS`.
        workspace_mib: TensorRT builder workspace limit in MiB.
        engine_cache_dir: TensorRT engine cache folder (None = the default,
            see :func:`anovox_perception.backends.engine_cache.default_cache_dir`).
        verify_model: Check the ONNX file's graph hash against its card before
            loading (catches corrupt or modified files with a clear error).
        model_factory: torch backend: ``factory(card) -> torch.nn.Module`` giving the
            eager model of the loaded model's :class:`ModelCard` (e.g. from a training
            checkpoint, ``anovox_training.export.run.checkpoint_model_factory``). None =
            load the ``<name>.pt2`` program the exporter writes beside the ONNX.
    """

    intra_op_threads: int = _THREADS_DEFAULT
    inter_op_threads: int = 0
    parallel_execution: bool = False
    spin_wait: bool = False
    graph_optimization: str = 'all'
    use_cuda: bool | None = None
    device_id: int = 0
    io_binding: bool = True
    precision: str = _PRECISION.default
    workspace_mib: int = 1024
    engine_cache_dir: str | None = None
    verify_model: bool = True
    model_factory: Callable[[ModelCard], Any] | None = None

    def __post_init__(self) -> None:
        for name in ('intra_op_threads', 'inter_op_threads', 'device_id'):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                msg = f'BackendOptions.{name} must be an integer >= 0, got {value!r}'
                raise ConfigError(msg)
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            msg = (
                f'BackendOptions.graph_optimization must be one of {GRAPH_OPTIMIZATION_LEVELS}, '
                f'got {self.graph_optimization!r}'
            )
            raise ConfigError(msg)
        if self.precision not in PRECISIONS:
            msg = (
                f'BackendOptions.precision must be one of {PRECISIONS}, got {self.precision!r} '
                '(int8 needs a Q/DQ-quantised export; see the TensorRT backend)'
            )
            raise ConfigError(msg)
        if not isinstance(self.workspace_mib, int) or self.workspace_mib < 16:
            msg = f'BackendOptions.workspace_mib must be an integer >= 16, got {self.workspace_mib!r}'
            raise ConfigError(msg)


@runtime_checkable
class Backend(Protocol):
    """A loaded model that maps named input arrays to named output arrays.

    Attributes:
        name: Backend name as in the table (``'onnxruntime'``, ...).
        device: Where it runs, in words (``'cpu'``, ``'cuda:0 (NVIDIA ...)'``).
        card: The model card, whose I/O the backend has checked.
    """

    name: ClassVar[str]
    device: str
    card: ModelCard

    @classmethod
    def load(cls, model_path: str | Path, options: BackendOptions) -> Backend:
        """Load ``model_path`` (an exported ``.onnx``) with ``options``."""
        ...

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference; inputs and outputs as in the card, batch included."""
        ...

    def close(self) -> None:
        """Release device memory and sessions (the backend cannot run afterwards)."""
        ...


def check_inputs(card: ModelCard, inputs: Mapping[str, np.ndarray], backend: str) -> None:
    """Check names, shapes and dtypes of one run's inputs against the card.

    Raises:
        BackendError: Naming every missing, extra or mismatched input.
    """
    problems = []
    missing = [n for n in card.inputs if n not in inputs]
    extra = [n for n in inputs if n not in card.inputs]
    if missing:
        problems.append(f'missing inputs {missing}')
    if extra:
        problems.append(f'unexpected inputs {extra}')
    for name, spec in card.inputs.items():
        if name not in inputs:
            continue
        array = inputs[name]
        if not isinstance(array, np.ndarray):
            problems.append(f'input {name!r} is a {type(array).__name__}, not a numpy array')
            continue
        if array.shape != spec.shape:
            problems.append(f'input {name!r} has shape {list(array.shape)}, model expects {list(spec.shape)}')
        if array.dtype != np.dtype(spec.dtype):
            problems.append(f'input {name!r} has dtype {array.dtype}, model expects {spec.dtype}')
    if problems:
        msg = f'{backend} backend, model {card.name!r}: ' + '; '.join(problems)
        raise BackendError(msg)
