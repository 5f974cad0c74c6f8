"""INT8 variants of an exported model (ONNX Runtime dynamic quantisation) and their AP cost on validation.

    python -m anovox_training.export.quantize models/anovox_base.onnx --out /tmp/q --val-data data/synth/val

Writes ``<out>/<name>_int8_<weights>.onnx`` for each weight type (``s8``: signed
weights, ONNX Runtime's default; ``u8``: unsigned), each with its own model card
(name and graph hash updated, everything else the source's), so the node and the
benchmark load them like any exported model. ``onnxruntime.quantization.quantize_dynamic``
stores Conv and MatMul weights as 8-bit integers and quantises their activations
per run; nothing is calibrated, so no data is needed to build them.

With ``--val-data`` every model, the FP32 source included, is evaluated on that
validation split with the AnoVox protocol (the occupancy threshold of the source's
card), and the AP, AUROC and FPR95 of each are printed and written to
``<out>/quantize.json``. Never pass the test split: it is read once per recipe by
``make model``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from anovox_perception.core.atomic_file import write_bytes_atomic
from anovox_perception.core.errors import AnovoxError, DataError
from anovox_perception.core.model_card import CARD_METADATA_KEY, ModelCard, card_path_for, load_card
from anovox_perception.core.preprocess import INPUT_NAMES
from anovox_training.data.cache import CachedFrame, frame_refs
from anovox_training.data.dataset import resolve_scenarios
from anovox_training.evaluate.run import Variant, evaluate_frames

__all__ = ['WEIGHT_TYPES', 'evaluate_onnx_models', 'main', 'quantize_model']

_LOG = logging.getLogger(__name__)
# Name suffix -> onnxruntime.quantization.QuantType member.
WEIGHT_TYPES = {'s8': 'QInt8', 'u8': 'QUInt8'}


def quantize_model(onnx_path: str | Path, out_dir: str | Path, weights: str = 's8') -> Path:
    """Write the dynamically quantised model of ``onnx_path`` with its model card; returns its path.

    Raises:
        AnovoxError: Unknown weight type, or the source has no valid card.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if weights not in WEIGHT_TYPES:
        msg = f'quantize: weight type {weights!r} is not one of {sorted(WEIGHT_TYPES)}'
        raise AnovoxError(msg)
    source = Path(onnx_path)
    card = load_card(source, verify=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = f'{card.name}_int8_{weights}'
    target = out / f'{name}.onnx'
    plain = onnx.load(str(source))
    del plain.metadata_props[:]  # the source card names the FP32 graph; a new one follows
    staging = out / f'.{name}.fp32.onnx'
    onnx.save(plain, str(staging))
    logging.getLogger('root').setLevel(logging.ERROR)  # quantize_dynamic advises pre-processing on every call
    quantize_dynamic(str(staging), str(target), weight_type=getattr(QuantType, WEIGHT_TYPES[weights]))
    staging.unlink()
    proto = onnx.load(str(target))
    data = card.to_dict()
    data['name'] = name
    data['onnx_sha256'] = hashlib.sha256(proto.SerializeToString()).hexdigest()
    data['training_config'] = {**card.training_config, 'quantization': f'onnxruntime quantize_dynamic, {weights}'}
    new_card = ModelCard.from_dict(data, source=f'quantisation of {card.name}')
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_METADATA_KEY, new_card.to_json(indent=None)
    write_bytes_atomic(target, proto.SerializeToString())
    write_bytes_atomic(card_path_for(target), (new_card.to_json() + '\n').encode())
    load_card(target, verify=True)  # the hash must match what the backends will check
    return target


def _onnx_scorer(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])

    def score(frames: Sequence[CachedFrame]) -> tuple[np.ndarray, np.ndarray]:
        outputs = [session.run(['occupancy', 'anomaly'], {n: f.inputs[n] for n in INPUT_NAMES}) for f in frames]
        return np.concatenate([o[0] for o in outputs]), np.concatenate([o[1] for o in outputs])

    return score


def evaluate_onnx_models(
    models: dict[str, Path],
    data: Sequence[str | Path],
    cache_dir: str | Path,
    max_frames: int | None = None,
    threads: int = 2,
) -> dict[str, dict[str, Any]]:
    """AnoVox metrics (Anomalies_Only AP, AUROC, FPR95, coverage) of each model on the frames under ``data``.

    Every model uses the occupancy threshold of the first model's card, so only the weights differ.

    Raises:
        DataError: No frames under ``data``, or models with different input specs.
    """
    cards = {name: load_card(path) for name, path in models.items()}
    specs = {card.make_input_spec() for card in cards.values()}
    if len(specs) != 1:
        msg = f'quantize: models {sorted(models)} have different input specs; evaluate them separately'
        raise DataError(msg)
    spec = specs.pop()
    threshold = next(iter(cards.values())).calibration.occupancy_threshold
    refs = frame_refs(resolve_scenarios(list(data)))[:max_frames]
    if not refs:
        msg = f'quantize: no frames with LiDAR points and voxel grids under {list(map(str, data))}'
        raise DataError(msg)
    variants = [Variant(name, spec, _onnx_scorer(path, threads), threshold) for name, path in models.items()]
    accumulators = evaluate_frames(refs, variants, Path(cache_dir), batch_size=4)
    report = {}
    for name, accumulator in accumulators.items():
        subset = accumulator.result()['Anomalies_Only']
        report[name] = {key: subset[key] for key in ('AP', 'AUROC', 'FPR95', 'coverage')}
        report[name].update(frames=len(refs), scenarios=len({ref.scenario for ref in refs}))
    return report


def _fmt(value: float | None) -> str:
    return 'n/a' if value is None else f'{value:.3f}'


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('onnx', type=Path, help='exported FP32 .onnx with its model card')
    parser.add_argument('--out', type=Path, required=True, help='folder for the INT8 models and quantize.json')
    parser.add_argument('--weights', nargs='+', choices=sorted(WEIGHT_TYPES), default=sorted(WEIGHT_TYPES))
    parser.add_argument('--val-data', nargs='*', default=[], help='validation split folder(s); never the test split')
    parser.add_argument('--max-frames', type=int, default=None, help='evaluate at most this many frames')
    parser.add_argument('--cache-dir', type=Path, default=None, help='input cache (default: <out>/cache)')
    parser.add_argument('--threads', type=int, default=2, help='ONNX Runtime intra-op threads')
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        models = {'fp32': args.onnx}
        for weights in args.weights:
            models[f'int8_{weights}'] = quantize_model(args.onnx, args.out, weights)
            print(f'wrote {models[f"int8_{weights}"]}')
        report: dict[str, Any] = {'models': {name: str(path) for name, path in models.items()}}
        if args.val_data:
            cache = args.cache_dir or args.out / 'cache'
            report['validation'] = evaluate_onnx_models(models, args.val_data, cache, args.max_frames, args.threads)
            report['validation_data'] = [str(p) for p in args.val_data]
            for name, metrics in report['validation'].items():
                print(f'{name}: ' + ', '.join(f'{key} {_fmt(metrics[key])}' for key in ('AP', 'AUROC', 'FPR95')))
    except AnovoxError as err:
        print(f'quantize: {err}', file=sys.stderr)
        return 1
    (args.out / 'quantize.json').write_text(json.dumps(report, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
