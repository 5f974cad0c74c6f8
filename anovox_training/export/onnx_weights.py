"""The eager torch model of an exported ONNX file, rebuilt from its model card and its weights.

    python -m anovox_training.export.onnx_weights models/anovox_base.onnx --out /tmp/eager   # writes anovox_base.pt2

A shipped model comes as ONNX only (``models/`` holds no ``.pt2`` program and no
checkpoint), yet the torch backend and its benchmark need the same weights in
torch. The card's ``training_config.model`` rebuilds the architecture and its
``calibration`` the score rule the graph computes; the weights come from the ONNX
initializers. The exporter folds every batch norm
into the convolution before it (eval mode), so a folded convolution cannot be
mapped back by name: instead the same architecture is exported again with
known weights, each graph Conv is matched to the torch convolution whose folded
weight it holds, and the shipped folded weight and bias go into that
convolution with its batch norm set to the identity (scale 1, mean 0, variance
``1 - eps``, shift = the folded bias). The rebuilt model must reproduce the
shipped ONNX on ONNX Runtime within ``--tolerance`` or nothing is written.

Writes ``<out>/<name>.onnx`` (a copy of the input, so the torch backend finds the
program beside it), ``<name>.json`` and ``<name>.pt2``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from anovox_perception.core.errors import AnovoxError
from anovox_perception.core.model_card import ModelCard, card_path_for, load_card
from anovox_training.export.run import _to_onnx
from anovox_training.model import AnomalyDetector, ModelConfig, build_model

__all__ = ['OnnxWeightsError', 'eager_model_from_onnx', 'main', 'write_program']

PARITY_TOLERANCE = 1e-4


class OnnxWeightsError(AnovoxError):
    """The ONNX weights cannot be put back into the card's architecture."""


def _conv_weights(proto: onnx.ModelProto) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(node name, weight, bias or None) of every Conv node, in graph order."""
    initializers = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    convs = []
    for node in proto.graph.node:
        if node.op_type != 'Conv':
            continue
        weight = initializers.get(node.input[1])
        if weight is None:
            msg = f'Conv node {node.name!r} takes its weight {node.input[1]!r} from another node, not an initializer'
            raise OnnxWeightsError(msg)
        bias = initializers.get(node.input[2]) if len(node.input) > 2 else None
        convs.append((node.name, weight, bias))
    return convs


def _conv_batchnorm_pairs(model: torch.nn.Module) -> list[tuple[torch.nn.Conv2d, torch.nn.BatchNorm2d | None]]:
    """Every Conv2d with the BatchNorm2d that directly follows it in registration order (or None)."""
    modules = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.BatchNorm2d)]
    pairs = []
    for i, module in enumerate(modules):
        if isinstance(module, torch.nn.Conv2d):
            after = modules[i + 1] if i + 1 < len(modules) else None
            norm = (
                after if isinstance(after, torch.nn.BatchNorm2d) and after.num_features == module.out_channels else None
            )
            pairs.append((module, norm))
    return pairs


def _folded(conv: torch.nn.Conv2d, norm: torch.nn.BatchNorm2d | None) -> np.ndarray:
    """The weight the exporter writes for ``conv`` (batch norm folded in), for matching."""
    weight = conv.weight.detach().double()
    if norm is not None:
        scale = norm.weight.detach().double() / torch.sqrt(norm.running_var.double() + norm.eps)
        weight = weight * scale[:, None, None, None]
    return weight.numpy()


def eager_model_from_onnx(onnx_path: str | Path, tolerance: float = PARITY_TOLERANCE) -> tuple[AnomalyDetector, float]:
    """The eager model of ``onnx_path`` and its max |difference| to the ONNX on ONNX Runtime.

    Raises:
        OnnxWeightsError: The card has no model config, a graph Conv matches no torch
            convolution, or the rebuilt model disagrees with the ONNX beyond ``tolerance``.
    """
    path = Path(onnx_path)
    card: ModelCard = load_card(path, verify=True)
    config = card.training_config.get('model')
    if not isinstance(config, dict):
        msg = f'{path}: the model card has no training_config.model to rebuild the architecture from'
        raise OnnxWeightsError(msg)
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_dict(config), card.calibration.score_rule).eval()
    # Batch norm statistics away from (0, 1) make every folded weight distinct from its raw one.
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.running_mean.copy_(torch.randn(n, generator=generator))
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
    inputs = model.example_inputs(batch=1)
    probe = _conv_weights(_to_onnx(model, tuple(inputs[n] for n in model.INPUT_NAMES), 17))
    shipped = _conv_weights(onnx.load(str(path)))
    if [w.shape for _, w, _ in probe] != [w.shape for _, w, _ in shipped]:
        msg = f'{path}: its Conv layers differ from the architecture its card describes (re-export the model)'
        raise OnnxWeightsError(msg)
    pairs = _conv_batchnorm_pairs(model)
    folded = [_folded(conv, norm) for conv, norm in pairs]
    used: set[int] = set()
    with torch.no_grad():
        for (name, probe_weight, _), (_, weight, bias) in zip(probe, shipped, strict=True):
            match = [
                i
                for i, candidate in enumerate(folded)
                if i not in used
                and candidate.shape == probe_weight.shape
                and np.allclose(candidate, probe_weight, rtol=1e-5, atol=1e-6)
            ]
            if len(match) != 1:
                msg = f'{path}: graph Conv {name!r} matches {len(match)} torch convolutions; cannot map its weights'
                raise OnnxWeightsError(msg)
            used.add(match[0])
            conv, norm = pairs[match[0]]
            conv.weight.copy_(torch.from_numpy(np.array(weight)))
            bias_t = torch.from_numpy(np.array(bias)) if bias is not None else torch.zeros(conv.out_channels)
            if norm is None:
                if conv.bias is None:
                    conv.bias = torch.nn.Parameter(bias_t.clone())
                else:
                    conv.bias.copy_(bias_t)
                continue
            if conv.bias is not None:
                conv.bias.zero_()
            norm.weight.fill_(1.0)
            norm.bias.copy_(bias_t)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
    worst = _parity(path, model, inputs)
    if worst > tolerance:
        msg = f'{path}: the rebuilt torch model differs from the ONNX by {worst:.3g} > {tolerance}'
        raise OnnxWeightsError(msg)
    return model, worst


def _parity(path: Path, model: AnomalyDetector, inputs: dict[str, torch.Tensor]) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    ours = session.run(list(model.OUTPUT_NAMES), {k: v.numpy() for k, v in inputs.items()})
    with torch.inference_mode():
        theirs = model(*(inputs[n] for n in model.INPUT_NAMES))
    return max(float(np.max(np.abs(a - b.numpy()))) for a, b in zip(ours, theirs, strict=True))


def write_program(
    onnx_path: str | Path, out_dir: str | Path, tolerance: float = PARITY_TOLERANCE
) -> tuple[Path, float]:
    """Copy ``onnx_path`` (and its card) into ``out_dir`` and write the rebuilt model's ``.pt2`` beside it.

    Returns:
        The copied ONNX path and the parity to the ONNX.

    Raises:
        OnnxWeightsError: As :func:`eager_model_from_onnx`.
    """
    src = Path(onnx_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, worst = eager_model_from_onnx(src, tolerance)
    target = out / src.name
    if target.resolve() != src.resolve():
        shutil.copyfile(src, target)
        if card_path_for(src).is_file():
            shutil.copyfile(card_path_for(src), card_path_for(target))
    inputs = model.example_inputs(batch=1)
    program = torch.export.export(model, tuple(inputs[n] for n in model.INPUT_NAMES))
    torch.export.save(program, str(target.with_suffix('.pt2')))
    return target, worst


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('onnx', type=Path, help='exported .onnx with its model card')
    parser.add_argument('--out', type=Path, required=True, help='folder for the copy and its .pt2')
    parser.add_argument('--tolerance', type=float, default=PARITY_TOLERANCE, help='largest allowed |ONNX - torch|')
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = get_args_parser().parse_args(argv)
    try:
        target, worst = write_program(args.onnx, args.out, args.tolerance)
    except AnovoxError as err:
        print(f'onnx_weights: {err}', file=sys.stderr)
        return 1
    print(f'wrote {target.with_suffix(".pt2")} (max |ONNX - torch| {worst:.3g})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
