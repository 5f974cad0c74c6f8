"""The inference variants `make bench` times: ONNX Runtime settings, INT8 models, torch eager, TensorRT.

Each variant is a name, a loaded backend (or the reason it cannot run here) and
a sentence describing its configuration. ONNX Runtime variants differ in graph
optimisation level, intra-/inter-op threads and execution mode, all on the same
FP32 model; INT8 variants are the dynamically quantised models that
``python -m anovox_training.export.quantize`` writes; torch eager runs the same weights
as the ONNX (its ``.pt2`` program); TensorRT needs a CUDA GPU and is reported as
skipped elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anovox_perception.backends import BackendOptions, OnnxRuntimeBackend, TorchBackend, probe
from anovox_perception.core.errors import AnovoxError

__all__ = ['InferenceVariant', 'onnxruntime_variants', 'tensorrt_variants', 'torch_variant']

REFERENCE_VARIANT = 'inference_ort_cpu'


@dataclass
class InferenceVariant:
    """One way of running the model: ``run(inputs)`` or, when it cannot run here, ``skipped`` says why."""

    name: str
    config: str
    run: Callable[[Mapping[str, np.ndarray]], Any] | None = None
    skipped: str | None = None
    backend: Any = None


def _ort(name: str, path: Path, config: str, **options: Any) -> InferenceVariant:
    backend = OnnxRuntimeBackend.load(path, BackendOptions(use_cuda=False, **options))
    return InferenceVariant(name, config, backend.run, backend=backend)


def onnxruntime_variants(model: Path, threads: int, int8_models: Mapping[str, Path]) -> list[InferenceVariant]:
    """The node's configuration first (``inference_ort_cpu``), then the other settings and the INT8 models."""
    both = {'intra_op_threads': threads, 'inter_op_threads': 1}
    settings: list[tuple[str, str, dict[str, Any]]] = [
        ('', f'graph optimisation all, {threads} intra-op threads, no spin (node default)', both),
        ('_opt_extended', 'graph optimisation extended', {**both, 'graph_optimization': 'extended'}),
        ('_opt_basic', 'graph optimisation basic', {**both, 'graph_optimization': 'basic'}),
        ('_opt_disabled', 'graph optimisation disabled', {**both, 'graph_optimization': 'disable'}),
        ('_1_thread', '1 intra-op thread', {'intra_op_threads': 1, 'inter_op_threads': 1}),
        ('_spin', f'{threads} intra-op threads spinning between runs', {**both, 'spin_wait': True}),
        (
            '_parallel',
            f'parallel execution, {threads} inter-op x {threads} intra-op threads',
            {'intra_op_threads': threads, 'inter_op_threads': threads, 'parallel_execution': True},
        ),
    ]
    variants = [_ort(REFERENCE_VARIANT + suffix, model, config, **options) for suffix, config, options in settings]
    for name, path in int8_models.items():
        variants.append(_ort(f'inference_ort_cpu_{name}', path, f'{path.name}, dynamic INT8, node default', **both))
    return variants


def torch_variant(model: Path, threads: int, source: str) -> InferenceVariant:
    """torch eager on the ``.pt2`` program beside ``model``."""
    backend = TorchBackend.load(model, BackendOptions(intra_op_threads=threads))
    return InferenceVariant(
        'inference_torch_cpu', f'torch eager, {threads} threads, inference_mode; {source}', backend.run, backend=backend
    )


def tensorrt_variants(model: Path) -> list[InferenceVariant]:
    """TensorRT FP32 and FP16, or two skipped rows saying why they cannot run here."""
    ok, why = probe.tensorrt_status()
    variants = []
    for precision in ('fp32', 'fp16'):
        name = f'inference_tensorrt_{precision}'
        if not ok:
            variants.append(InferenceVariant(name, f'TensorRT {precision}', skipped=f'skipped: {why}'))
            continue
        from anovox_perception.backends.tensorrt import TensorRTBackend

        try:
            backend = TensorRTBackend.load(model, BackendOptions(precision=precision))
        except AnovoxError as err:
            variants.append(InferenceVariant(name, f'TensorRT {precision}', skipped=f'skipped: {err}'))
            continue
        variants.append(InferenceVariant(name, f'TensorRT {precision}, {backend.device}', backend.run, backend=backend))
    return variants
