"""torch eager backend, on CPU: the reference for parity checks and debugging.

The runtime never imports ``anovox_training`` (the model code), so this backend
gets the eager model in one of two ways:

1. By default it loads ``<name>.pt2`` beside the ONNX file: the exporter saves
   the same model as a ``torch.export`` program (``torch.export.save``). Its
   module runs the model's ATen operators one by one on torch's eager kernels,
   no compiler involved, and needs no model source code, so a vehicle with
   torch installed can debug the exact shipped weights.
2. ``BackendOptions.model_factory``: a callable ``factory(card) -> nn.Module``
   that the caller passes in (the training package hands over one that builds
   the model from a checkpoint). Dependency injection keeps the import
   direction one-way: training -> runtime, never the reverse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from anovox_perception.backends.base import BackendOptions, check_inputs
from anovox_perception.core.errors import BackendError
from anovox_perception.core.model_card import ModelCard, load_card

__all__ = ['TorchBackend', 'program_path_for']

_LOG = logging.getLogger(__name__)


def program_path_for(onnx_path: str | Path) -> Path:
    """Path of the ``torch.export`` program the exporter writes beside ``<name>.onnx``."""
    return Path(onnx_path).with_suffix('.pt2')


class TorchBackend:
    """A model run by torch eager on CPU."""

    name: ClassVar[str] = 'torch'

    def __init__(self, module: Any, card: ModelCard, source: str) -> None:
        self._module = module
        self.card = card
        self.source = source
        self.device = 'cpu'
        self._check_io()

    @classmethod
    def load(cls, model_path: str | Path, options: BackendOptions | None = None) -> TorchBackend:
        """Load the eager model of an exported ``.onnx`` (its card and its ``.pt2`` or a factory).

        Args:
            model_path: Exported ``.onnx`` file; its card names the I/O.
            options: ``model_factory`` and ``intra_op_threads`` are used.

        Raises:
            ModelCardError: Missing or invalid card, or outputs that do not match it.
            BackendError: torch is missing, the ``.pt2`` is missing or corrupt,
                or the factory fails.
        """
        options = options or BackendOptions()
        path = Path(model_path)
        card = load_card(path)
        try:
            import torch
        except ImportError as err:
            msg = f'backend torch: torch is not installed ({err}); use backend onnxruntime'
            raise BackendError(msg) from None
        if options.intra_op_threads > 0:
            torch.set_num_threads(options.intra_op_threads)  # process-wide: torch has no per-model setting
        if options.model_factory is not None:
            try:
                module = options.model_factory(card)
            except Exception as err:  # the factory is caller code; say where it failed
                msg = f'backend torch: model_factory failed for {path}: {type(err).__name__}: {err}'
                raise BackendError(msg) from err
            source = f'model_factory for {path}'
        else:
            program = program_path_for(path)
            if not program.is_file():
                msg = (
                    f'backend torch: no torch.export program {program} beside {path.name}; '
                    're-export with python -m anovox_training.export, or pass a model_factory'
                )
                raise BackendError(msg)
            try:
                module = torch.export.load(str(program)).module()
            except Exception as err:  # zip, pickle and schema errors alike mean an unusable file
                msg = f'backend torch: cannot load {program} (corrupt or truncated?): {type(err).__name__}: {err}'
                raise BackendError(msg) from None
            source = str(program)
        if hasattr(module, 'eval') and isinstance(module, torch.nn.Module) and not _is_graph_module(module):
            module.eval()
        return cls(module, card, source)

    def _check_io(self) -> None:
        """One forward pass on zeros: output names, shapes and dtypes must match the card."""
        zeros = {name: np.zeros(spec.shape, dtype=spec.dtype) for name, spec in self.card.inputs.items()}
        outputs = self._forward(zeros)
        self.card.check_io(
            {name: (spec.shape, spec.dtype) for name, spec in self.card.inputs.items()},
            {name: (tuple(value.shape), str(value.dtype)) for name, value in outputs.items()},
            where=f'torch model from {self.source}',
        )

    def _forward(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(inputs[name])) for name in self.card.inputs]
        with torch.inference_mode():
            result = self._module(*args)
        names = list(self.card.outputs)
        if isinstance(result, Mapping):
            pairs = list(result.items())
        elif isinstance(result, tuple | list):
            pairs = list(zip(names, result, strict=False)) if len(result) == len(names) else []
        else:
            pairs = [(names[0], result)] if len(names) == 1 else []
        if not pairs:
            msg = f'torch model from {self.source} returned {type(result).__name__}, expected outputs {names}'
            raise BackendError(msg)
        return {str(name): value.detach().cpu().numpy() for name, value in pairs}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference.

        Raises:
            BackendError: Inputs do not match the card, or the model fails.
        """
        check_inputs(self.card, inputs, self.name)
        try:
            return self._forward(inputs)
        except BackendError:
            raise
        except RuntimeError as err:
            msg = f'torch model from {self.source} failed: {err}'
            raise BackendError(msg) from None

    def close(self) -> None:
        """Drop the module."""
        self._module = None


def _is_graph_module(module: Any) -> bool:
    # torch.export modules reject .eval() / .train() (they are fixed at export time).
    import torch.fx

    return isinstance(module, torch.fx.GraphModule)
