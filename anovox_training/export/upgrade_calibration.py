"""Add the ``calibration`` section, or its operating point, to model cards and checkpoints written before them.

    python -m anovox_training.export.upgrade_calibration models/anovox_base.onnx runs/fusion/best.pt \
        [--threshold-chosen-on val] [--score-rule-chosen-on val val_large]

Earlier versions kept the decision rule in several places: the occupancy threshold as the
checkpoint's ``occupancy_threshold`` (copied by the exporter into the card's
``training_config``) with fallbacks to ``eval.occupancy_threshold`` and 0.5, and the score rule
as ``semantic_weight``, ``anomaly_temperature`` and ``score_smoothing`` in the model config.
This command moves them into the calibration section, with the values the previous version
used, so nothing the model computes or selects changes:

- occupancy threshold: the card's ``training_config.occupancy_threshold``, else its
  ``training_config.eval.occupancy_threshold``, else 0.5 (what the runtime read); for a
  checkpoint its ``occupancy_threshold``, else ``config.eval.occupancy_threshold``;
- score rule: the model config's values (the previous defaults 1, 1, 1 where absent);
- operating point: anomaly threshold 0.5 and no LiDAR-support rule (``min_component_points`` 0),
  recorded as configured (chosen on no data): the node's fixed ``anomaly_threshold`` default and
  its marker rule before calibrations carried an operating point. A calibration section written
  before the operating point existed gets these two keys and keeps everything else.

The data they were chosen on is recorded from the training config (``data.val`` for the
threshold, when it was calibrated; ``data.tune`` or else ``data.val`` for the score rule, when
it was chosen), with the hash :data:`~anovox_perception.core.calibration.UNRECORDED`: the previous
version kept none. ``--threshold-chosen-on`` / ``--score-rule-chosen-on`` give the folder
names instead, e.g. for a model re-tuned on other folders than its training config names.

An ``.onnx`` file gets the card in its metadata and its ``.json`` beside it upgraded (the graph,
and so its hash, is untouched); a ``.pt`` checkpoint is rewritten with a fresh checksum. Files
whose section is complete are left as they are.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx

from anovox_perception.core.atomic_file import write_bytes_atomic
from anovox_perception.core.calibration import (
    UNRECORDED,
    Calibration,
    CalibrationError,
    ChosenOn,
    OperatingPoint,
    ScoreRule,
)
from anovox_perception.core.errors import AnovoxError, DataError, ModelCardError
from anovox_perception.core.model_card import CARD_METADATA_KEY, ModelCard, card_path_for, load_card
from anovox_training.model.checkpoint import read_checkpoint, save_checkpoint
from anovox_training.model.config import SCORE_RULE_KEYS

__all__ = [
    'main',
    'needs_upgrade',
    'upgrade_card_dict',
    'upgrade_checkpoint',
    'upgrade_checkpoint_dict',
    'upgrade_model',
]

# What the previous version used where a file held no value.
_PREVIOUS_THRESHOLD = 0.5
_PREVIOUS_RULE = ScoreRule()
# The node's marker rule before calibrations carried one: its fixed anomaly_threshold default 0.5,
# no LiDAR support needed; configured, not chosen on data.
_PREVIOUS_MARKER_RULE = OperatingPoint(anomaly_threshold=0.5, min_component_points=0)
_PREVIOUS_OPERATING_POINT = {
    'operating_point': _PREVIOUS_MARKER_RULE.to_dict(),
    'operating_point_chosen_on': ChosenOn().to_dict(),
}


def needs_upgrade(record: Mapping[str, Any]) -> bool:
    """Whether a card or checkpoint dict lacks the calibration section or its operating point."""
    section = record.get('calibration')
    return not isinstance(section, Mapping) or any(key not in section for key in _PREVIOUS_OPERATING_POINT)


def _with_operating_point(section: Mapping[str, Any]) -> dict[str, Any]:
    """A calibration section of the version before the operating point, with the node's values of then added."""
    return {**section, **{k: v for k, v in _PREVIOUS_OPERATING_POINT.items() if k not in section}}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _score_rule(model: Any, where: str) -> ScoreRule:
    model = model if isinstance(model, Mapping) else {}
    defaults = _PREVIOUS_RULE.to_dict()
    values = {key: model.get(key, defaults[key]) for key in SCORE_RULE_KEYS}
    try:
        return ScoreRule(values['semantic_weight'], values['anomaly_temperature'], int(values['score_smoothing']))
    except (CalibrationError, TypeError, ValueError) as err:
        msg = f'{where}: the model config holds no valid score rule ({err})'
        raise DataError(msg) from None


def _score_rule_chosen_on(config: Mapping[str, Any], tuned: bool, folders: Sequence[str] | None) -> ChosenOn:
    if not tuned:
        return ChosenOn()
    data = config.get('data', {})
    sources = folders if folders is not None else (data.get('tune') or data.get('val') or [])
    return ChosenOn.of_sources(sources, UNRECORDED) if sources else ChosenOn()


def _threshold_chosen_on(config: Mapping[str, Any], calibrated: bool, folders: Sequence[str] | None) -> ChosenOn:
    if not calibrated:
        return ChosenOn()
    sources = folders if folders is not None else config.get('data', {}).get('val') or []
    return ChosenOn.of_sources(sources, UNRECORDED) if sources else ChosenOn()


def _architecture_only(model: Any) -> Any:
    return {k: v for k, v in model.items() if k not in SCORE_RULE_KEYS} if isinstance(model, Mapping) else model


def upgrade_card_dict(
    data: Mapping[str, Any],
    threshold_folders: Sequence[str] | None = None,
    score_rule_folders: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A card JSON object of a previous version with its calibration section completed (a new dict).

    A section without the operating point gets the node's values of then. A card without the
    section gets all of it: the score rule leaves ``training_config.model`` and the copied
    threshold leaves ``training_config``; ``eval.occupancy_threshold`` (the configured one) stays.

    Raises:
        DataError: The card holds no usable score rule.
    """
    card = copy.deepcopy(dict(data))
    if isinstance(card.get('calibration'), Mapping):
        return {**card, 'calibration': _with_operating_point(card['calibration'])}
    config = card.get('training_config')
    config = config if isinstance(config, dict) else {}
    evaluation = config.get('eval') if isinstance(config.get('eval'), Mapping) else {}
    copied = config.get('occupancy_threshold')
    candidates = [copied, evaluation.get('occupancy_threshold'), _PREVIOUS_THRESHOLD]
    threshold = next(float(v) for v in candidates if _number(v) and 0.0 <= v <= 1.0)
    calibrated = threshold == copied and evaluation.get('calibrate_occupancy', True) is True
    tuned = any(evaluation.get(key) for key in ('semantic_weights', 'anomaly_temperatures', 'score_smoothings'))
    calibration = Calibration(
        threshold,
        _score_rule(config.get('model'), f'model card {card.get("name")!r}'),
        _threshold_chosen_on(config, calibrated, threshold_folders),
        _score_rule_chosen_on(config, tuned, score_rule_folders),
        operating_point=_PREVIOUS_MARKER_RULE,
        operating_point_chosen_on=ChosenOn(),
    )
    config = {k: v for k, v in config.items() if k != 'occupancy_threshold'}
    if 'model' in config:
        config['model'] = _architecture_only(config['model'])
    return {**card, 'calibration': calibration.to_dict(), 'training_config': config}


def upgrade_checkpoint_dict(
    ckpt: Mapping[str, Any],
    threshold_folders: Sequence[str] | None = None,
    score_rule_folders: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A checkpoint dict of a previous version with its calibration section completed (a new dict).

    A section without the operating point gets the node's values of then. A checkpoint without
    the section gets all of it: the threshold was calibrated when validation ran at least once
    with ``eval.calibrate_occupancy``; the score rule was chosen when the checkpoint holds
    ``score_tuning`` (written with the choice).
    """
    state = dict(ckpt)
    if isinstance(state.get('calibration'), Mapping):
        state['calibration'] = _with_operating_point(state['calibration'])
        return state
    config = copy.deepcopy(state['config'])
    data, evaluation = config.get('data', {}), config.get('eval', {})
    stored = state.pop('occupancy_threshold', None)
    candidates = [stored, evaluation.get('occupancy_threshold'), _PREVIOUS_THRESHOLD]
    threshold = next(float(v) for v in candidates if _number(v) and 0.0 <= v <= 1.0)
    epochs = config.get('train', {}).get('epochs', 1)
    validated = bool(data.get('val')) and state.get('epoch', 0) >= min(evaluation.get('val_every_epochs', 1), epochs)
    calibrated = stored is not None and validated and evaluation.get('calibrate_occupancy', True) is True
    calibration = Calibration(
        threshold,
        _score_rule(config.get('model'), 'checkpoint'),
        _threshold_chosen_on(config, calibrated, threshold_folders),
        _score_rule_chosen_on(config, 'score_tuning' in state, score_rule_folders),
        operating_point=_PREVIOUS_MARKER_RULE,
        operating_point_chosen_on=ChosenOn(),
    )
    config['model'] = _architecture_only(config.get('model'))
    state['config'] = config
    state['calibration'] = calibration.to_dict()
    return state


def upgrade_checkpoint(
    path: str | Path, threshold_folders: Sequence[str] | None = None, score_rule_folders: Sequence[str] | None = None
) -> bool:
    """Complete the calibration section of the checkpoint at ``path``; False when it was complete.

    Raises:
        DataError: Unreadable checkpoint.
    """
    ckpt = read_checkpoint(path)
    if not needs_upgrade(ckpt):
        return False
    save_checkpoint(path, upgrade_checkpoint_dict(ckpt, threshold_folders, score_rule_folders))
    return True


def upgrade_model(
    path: str | Path, threshold_folders: Sequence[str] | None = None, score_rule_folders: Sequence[str] | None = None
) -> list[Path]:
    """Complete the calibration section of the card of an ``.onnx`` model (metadata and sidecar) or a ``.json`` card.

    Returns:
        The files rewritten (empty when every card's section was complete).

    Raises:
        ModelCardError: No card, or the upgraded card does not validate or match the graph.
    """
    path = Path(path)
    written = []
    if path.suffix == '.onnx':
        proto = onnx.load(str(path))
        entries = [e for e in proto.metadata_props if e.key == CARD_METADATA_KEY]
        if entries and needs_upgrade(json.loads(entries[0].value)):
            upgraded = upgrade_card_dict(json.loads(entries[0].value), threshold_folders, score_rule_folders)
            card = ModelCard.from_dict(upgraded, f'{path} (upgraded ONNX metadata)')
            entries[0].value = card.to_json(indent=None)
            write_bytes_atomic(path, proto.SerializeToString())
            written.append(path)
        sidecar = card_path_for(path)
    else:
        sidecar = path
    if sidecar.is_file():
        data = json.loads(sidecar.read_text(encoding='utf-8'))
        if needs_upgrade(data):
            upgraded = upgrade_card_dict(data, threshold_folders, score_rule_folders)
            card = ModelCard.from_dict(upgraded, f'{sidecar} (upgraded)')
            write_bytes_atomic(sidecar, (card.to_json() + '\n').encode())
            written.append(sidecar)
    elif path.suffix != '.onnx':
        msg = f'{path}: no such model card'
        raise ModelCardError(msg)
    if path.suffix == '.onnx':
        load_card(path, verify=True)  # the card validates and still names this graph
        if sidecar.is_file() and load_card(sidecar) != load_card(path):
            msg = f'{path}: its ONNX metadata card and {sidecar.name} differ after the upgrade; re-export the model'
            raise ModelCardError(msg)
    return written


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('files', nargs='+', type=Path, help='.onnx models, .json cards or .pt checkpoints')
    parser.add_argument(
        '--threshold-chosen-on', nargs='+', metavar='FOLDER', default=None,
        help="folders the occupancy threshold was calibrated on (default: the training config's data.val)",
    )  # fmt: skip
    parser.add_argument(
        '--score-rule-chosen-on', nargs='+', metavar='FOLDER', default=None,
        help="folders the score rule was chosen on (default: the training config's data.tune, else data.val)",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = get_args_parser().parse_args(argv)
    try:
        for path in args.files:
            if path.suffix == '.pt':
                changed = (
                    [path] if upgrade_checkpoint(path, args.threshold_chosen_on, args.score_rule_chosen_on) else []
                )
            elif path.suffix in ('.onnx', '.json'):
                changed = upgrade_model(path, args.threshold_chosen_on, args.score_rule_chosen_on)
            else:
                msg = f'{path}: expected an .onnx model, a .json model card or a .pt checkpoint'
                raise DataError(msg)
            print(f'upgraded {", ".join(map(str, changed))}' if changed else f'{path}: its calibration is complete')
    except (AnovoxError, OSError, json.JSONDecodeError) as err:
        print(f'upgrade_calibration: error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
