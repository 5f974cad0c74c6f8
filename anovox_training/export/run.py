"""Export a trained detector: ONNX + model card (+ torch.export program, + TensorRT engine on a GPU).

    python -m anovox_training.export --checkpoint runs/x/last.pt --out models/ [--name NAME] [--opset 17]
    python -m anovox_training.export --random-init base --out /tmp/m       # untrained, for benchmarks

Writes ``<out>/<name>.onnx`` (model card in its metadata), ``<name>.json`` (the
same card, with the checkpoint's ``calibration``: the graph computes the anomaly score
with its score rule, the node selects voxels with its occupancy threshold) and
``<name>.pt2`` (the same model as a ``torch.export`` program, for the torch backend).
The graph has static shapes (batch 1), opset ``--opset`` (17..20), ends in
probabilities, passes ``onnx.checker`` and the TensorRT operator check, and its ONNX
Runtime outputs must match PyTorch within ``--parity-tolerance`` on realistic inputs,
or the export fails.

ONNX conversion uses PyTorch's TorchScript-based exporter (``dynamo=False``): it
emits the requested opset directly and needs no extra package; the model has
no data-dependent control flow, which is what that exporter cannot trace.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

import anovox_perception
from anovox_perception.core.atomic_file import write_bytes_atomic
from anovox_perception.core.calibration import Calibration
from anovox_perception.core.errors import AnovoxError
from anovox_perception.core.geometry import CameraModel
from anovox_perception.core.model_card import CARD_METADATA_KEY, ModelCard, TensorSpec, card_path_for
from anovox_perception.core.onnx_file import read_onnx_file
from anovox_training.export.onnx_passes import optimise
from anovox_training.export.trt_ops import MAX_OPSET, SOURCE, check_tensorrt_compatible
from anovox_training.model import AnomalyDetector, ModelConfig, build_model, load_checkpoint
from anovox_training.model.checkpoint import checkpoint_calibration
from anovox_training.model.inputs import default_rig

__all__ = [
    'ExportError',
    'ExportResult',
    'checkpoint_model_factory',
    'export_model',
    'get_args_parser',
    'main',
]

_LOG = logging.getLogger(__name__)
MIN_EXPORT_OPSET = 17
PARITY_TOLERANCE = 1e-4


class ExportError(AnovoxError):
    """The model cannot be exported as a valid, TensorRT-parsable, faithful ONNX graph."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and measured.

    Attributes:
        onnx_path: The ONNX model (card in its metadata).
        card_path: The sidecar card.
        program_path: The ``torch.export`` program, or None when not written.
        card: The model card.
        parity_max_abs_diff: Output name -> max |ONNX Runtime - PyTorch| on the check inputs.
        rewrites: Pass name -> rewrites applied (see :mod:`anovox_training.export.onnx_passes`).
    """

    onnx_path: Path
    card_path: Path
    program_path: Path | None
    card: ModelCard
    parity_max_abs_diff: dict[str, float]
    rewrites: dict[str, int]


def _to_onnx(model: AnomalyDetector, args: tuple[torch.Tensor, ...], opset: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation on every call; it is chosen on purpose.
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(
            model,
            args,
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=list(model.INPUT_NAMES),
            output_names=list(model.OUTPUT_NAMES),
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def _tensor_specs(values: Any, what: str) -> dict[str, TensorSpec]:
    """Graph inputs/outputs as TensorSpecs; every dimension must be a fixed positive integer."""
    specs = {}
    for value in values:
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField('dim_value') else None for d in tensor_type.shape.dim]
        if any(d is None or d <= 0 for d in dims):
            msg = f'{what} {value.name!r} has a dynamic shape {dims}; the export must have static shapes'
            raise ExportError(msg)
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
        specs[value.name] = TensorSpec(tuple(dims), dtype)
    return specs


def _json_safe(data: Mapping[str, Any]) -> dict[str, Any]:
    # Training configs come from YAML; anything JSON cannot hold becomes its string form.
    return json.loads(json.dumps(dict(data), default=str))


def _check_parity(onnx_path: Path, model: AnomalyDetector, inputs: dict[str, torch.Tensor], tol: float) -> dict:
    """Max |ORT - torch| per output on ``inputs``; raises ExportError beyond ``tol`` or outside [0, 1]."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    ort_out = session.run(list(model.OUTPUT_NAMES), {k: v.numpy() for k, v in inputs.items()})
    with torch.inference_mode():
        torch_out = model(*inputs.values())
    diffs = {}
    for name, ours, ref in zip(model.OUTPUT_NAMES, ort_out, torch_out, strict=True):
        diffs[name] = float(np.max(np.abs(ours - ref.numpy())))
        if not (np.all(ours >= 0.0) and np.all(ours <= 1.0)):
            msg = f'exported output {name!r} of {onnx_path} leaves [0, 1]: the graph must end in probabilities'
            raise ExportError(msg)
    worst = max(diffs.values())
    if worst > tol:
        msg = f'ONNX Runtime and PyTorch disagree on {onnx_path}: max |diff| {diffs} > {tol}'
        raise ExportError(msg)
    return diffs


def export_model(
    model: AnomalyDetector,
    out_dir: str | Path,
    *,
    calibration: Calibration,
    name: str | None = None,
    training_config: Mapping[str, Any] | None = None,
    data_hash: str = 'none',
    camera: CameraModel | None = None,
    T_cam_lidar: np.ndarray | None = None,
    opset: int = MIN_EXPORT_OPSET,
    write_program: bool = True,
    parity_tolerance: float = PARITY_TOLERANCE,
) -> ExportResult:
    """Export ``model`` with its model card and check the result.

    Args:
        model: The detector (put in eval mode; its score rule becomes the calibration's).
        out_dir: Output folder (created).
        calibration: The decision rule for the card; the graph computes its score rule.
        name: Model name and file stem; default ``anovox_<config name>``.
        training_config: Full training config for the card (default: the model config).
        data_hash: Hash of the training data (``none`` for untrained models).
        camera: Default camera model for the card (default: AnoVox MONO rig).
        T_cam_lidar: Default LiDAR -> camera transform (default: AnoVox MONO rig).
        opset: ONNX opset, 17..20.
        write_program: Also write the ``torch.export`` program for the torch backend.
        parity_tolerance: Largest allowed |ONNX Runtime - PyTorch| on any output.

    Returns:
        What was written, with the measured parity.

    Raises:
        ExportError: Unsupported opset, dynamic shapes, operators TensorRT cannot
            parse, a checker failure, outputs outside [0, 1] or a parity failure.
    """
    if not MIN_EXPORT_OPSET <= opset <= MAX_OPSET:
        msg = f'opset {opset} is not supported: use {MIN_EXPORT_OPSET}..{MAX_OPSET} (the TensorRT 10.0 maximum)'
        raise ExportError(msg)
    config: ModelConfig = model.config
    name = name or f'anovox_{config.name}'
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.set_score_rule(calibration.score_rule)
    inputs = model.example_inputs(batch=1)
    args = tuple(inputs[n] for n in model.INPUT_NAMES)

    proto = _to_onnx(model, args, opset)
    rewrites = optimise(proto)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as err:
        msg = f'exported graph of {name} fails onnx.checker: {err}'
        raise ExportError(msg) from None
    problems = check_tensorrt_compatible(proto)
    if problems:
        msg = f'exported graph of {name} would not parse in TensorRT ({SOURCE}): ' + '; '.join(problems)
        raise ExportError(msg)
    plain = proto.SerializeToString()

    default_camera, default_transform = default_rig()
    card = ModelCard.from_dict(
        {
            'name': name,
            'version': anovox_perception.__version__,
            'input_spec': model.input_spec.to_dict(),
            'camera': (camera or default_camera).to_dict(),
            'T_cam_lidar': np.asarray(default_transform if T_cam_lidar is None else T_cam_lidar).tolist(),
            'classes': list(config.classes),
            'inputs': {k: v.to_dict() for k, v in _tensor_specs(proto.graph.input, 'input').items()},
            'outputs': {k: v.to_dict() for k, v in _tensor_specs(proto.graph.output, 'output').items()},
            'calibration': calibration.to_dict(),
            'training_config': _json_safe(training_config or {'model': config.to_dict()}),
            'data_hash': data_hash,
            'onnx_sha256': hashlib.sha256(plain).hexdigest(),
        },
        source=f'export of {name}',
    )
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_METADATA_KEY, card.to_json(indent=None)
    onnx_path = out_dir / f'{name}.onnx'
    write_bytes_atomic(onnx_path, proto.SerializeToString())
    try:
        onnx.checker.check_model(str(onnx_path))
    except onnx.checker.ValidationError as err:
        msg = f'{onnx_path} fails onnx.checker after adding the model card: {err}'
        raise ExportError(msg) from None
    if read_onnx_file(onnx_path, hash_graph=True, exclude_keys=[CARD_METADATA_KEY]).graph_sha256 != card.onnx_sha256:
        msg = f'{onnx_path}: graph hash after adding the card differs from the card (serialiser changed order?)'
        raise ExportError(msg)
    card_path = card_path_for(onnx_path)
    write_bytes_atomic(card_path, (card.to_json() + '\n').encode())

    program_path = None
    if write_program:
        program_path = onnx_path.with_suffix('.pt2')
        exported = torch.export.export(model, args)
        tmp = program_path.with_name(f'.{program_path.stem}.tmp.pt2')  # torch.export wants the suffix
        torch.export.save(exported, str(tmp))
        os.replace(tmp, program_path)

    diffs = _check_parity(onnx_path, model, inputs, parity_tolerance)
    _LOG.info('exported %s (graph rewrites %s, parity %s)', onnx_path, rewrites, diffs)
    return ExportResult(onnx_path, card_path, program_path, card, diffs, rewrites)


def checkpoint_model_factory(checkpoint: str | Path) -> Callable[[ModelCard], torch.nn.Module]:
    """A ``model_factory`` for the torch backend that builds the eager model from a checkpoint.

    Usage: ``BackendOptions(model_factory=checkpoint_model_factory('last.pt'))``.
    """

    def factory(card: ModelCard) -> torch.nn.Module:
        model, _, ckpt = load_checkpoint(checkpoint)
        if ckpt['input_spec'] != card.input_spec:
            msg = f'checkpoint {checkpoint} was trained for another input spec than model card {card.name!r}'
            raise ExportError(msg)
        return model

    return factory


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--checkpoint', type=Path, help='training checkpoint to export')
    source.add_argument('--random-init', choices=('tiny', 'base'), help='export an untrained model of this size')
    parser.add_argument('--out', type=Path, required=True, help='output folder (e.g. models/)')
    parser.add_argument('--name', default=None, help='model name / file stem (default: anovox_<config name>)')
    parser.add_argument('--opset', type=int, default=MIN_EXPORT_OPSET, help=f'ONNX opset, 17..{MAX_OPSET}')
    parser.add_argument('--rig', type=Path, default=None, help='JSON {"camera": {...}, "T_cam_lidar": [[...]]}')
    parser.add_argument('--seed', type=int, default=0, help='weight seed for --random-init')
    parser.add_argument('--no-program', action='store_true', help='skip the torch.export program (.pt2)')
    parser.add_argument('--engine', action='store_true', help='also build the TensorRT engine when a GPU is here')
    return parser


def _load_rig(path: Path) -> tuple[CameraModel, np.ndarray]:
    try:
        rig = json.loads(path.read_text())
        return CameraModel.from_dict(rig['camera']), np.asarray(rig['T_cam_lidar'], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as err:
        msg = f'--rig {path}: expected JSON with "camera" and "T_cam_lidar" ({err})'
        raise ExportError(msg) from None


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        if args.checkpoint is not None:
            model, config, ckpt = load_checkpoint(args.checkpoint)
            data_hash = str(ckpt.get('data_hash') or 'none')
            # Chosen on validation: the node selects the voxels evaluation did and scores them as tuned.
            calibration = checkpoint_calibration(ckpt, args.checkpoint)
        else:
            torch.manual_seed(args.seed)
            cfg = getattr(ModelConfig, args.random_init)()
            model, config, data_hash = build_model(cfg), {'model': cfg.to_dict(), 'weights': 'random'}, 'none'
            # Untrained: the default rule and threshold, chosen on no data.
            calibration = Calibration(occupancy_threshold=0.5)
        camera, transform = _load_rig(args.rig) if args.rig else (None, None)
        result = export_model(
            model,
            args.out,
            calibration=calibration,
            name=args.name,
            training_config=config,
            data_hash=data_hash,
            camera=camera,
            T_cam_lidar=transform,
            opset=args.opset,
            write_program=not args.no_program,
        )
        if args.engine:
            _build_engine(result.onnx_path)
    except AnovoxError as err:
        print(f'export: {err}', file=sys.stderr)
        return 1
    print(f'wrote {result.onnx_path}, {result.card_path}' + (f', {result.program_path}' if result.program_path else ''))
    print(f'parity ONNX Runtime vs PyTorch, max |diff|: {result.parity_max_abs_diff}')
    return 0


def _build_engine(onnx_path: Path) -> None:
    from anovox_perception.backends import BackendOptions, probe
    from anovox_perception.backends.tensorrt import prepare_engine

    ok, why = probe.tensorrt_status()
    if not ok:
        _LOG.warning('not building a TensorRT engine: %s', why)
        return
    prepared = prepare_engine(onnx_path, BackendOptions())
    _LOG.info('TensorRT engine %s', prepared.cache.paths(prepared.card.name, prepared.key)[0])


if __name__ == '__main__':
    sys.exit(main())
