"""``make model``: generate the synthetic data, train the three variants, evaluate, export.

    python -m anovox_training.make_model [--data data/synth] [--runs runs/make_model] [--out models]

Steps (each skipped when its result is already there, so an interrupted run
continues; ``--force`` redoes training):

1. Synthetic AnoVox splits (:data:`DATA_PLAN`): train (``train`` and ``train2``,
   200 scenarios), val (``val``, 20 scenarios, per-epoch validation; with
   ``val_large``, 80 more, the score-rule choice) and test; the three splits draw
   disjoint anomaly categories (and shapes), so nothing chosen on validation has
   seen a test category. Written by ``python -m anovox_training.data.synth``.
2. Training (``config/train.yaml``) of the fusion model and, with the same recipe,
   its LiDAR-only and camera-only variants (camera dropout off for the latter).
3. Evaluation on the test split with the AnoVox protocol (all four variants,
   including the geometric baseline), ONCE per recipe: every reading is appended
   to ``<out>/test_readings.jsonl`` (:mod:`anovox_training.evaluate.reading_ledger`), and a
   recipe already read is not read again unless ``--reread-test WHY`` says why.
4. Export of the fusion model: ``python -m anovox_training.export --checkpoint ... --out <out>``,
   its check on the real frames (``real``) and its INT8 variant's cost on the same test
   reading (``int8``: the exported FP32 and the dynamically quantised model through ONNX
   Runtime, AP, AUROC and FPR95 of each and their difference).
5. ``<out>/<name>.metrics.json`` and ``.md``: the test report, plus ``selection``
   (which validation data chose the checkpoint, the occupancy threshold and the
   score rule of each variant) and ``test_reading`` (the recipe id and how often
   its test split was read).

Nothing here looks at the test split before step 3; model selection, the
occupancy threshold and the score rule use the validation splits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from anovox_perception.core.errors import AnovoxError, ConfigError, DataError
from anovox_training.data.cache import SampleCache, frame_refs
from anovox_training.data.dataset import resolve_scenarios
from anovox_training.data.reader import ScenarioReader, find_scenarios
from anovox_training.evaluate.reading_ledger import Reading, ReadingLedger, recipe_id, recipe_of_config
from anovox_training.evaluate.run import EvaluateOptions
from anovox_training.evaluate.run import run as evaluate
from anovox_training.model.checkpoint import checkpoint_calibration, model_config_of, read_checkpoint
from anovox_training.train.config import TrainingConfig, load_config, training_config
from anovox_training.train.trainer import Trainer, TrainingInterrupted, distributed

__all__ = [
    'DATA_PLAN',
    'QUICK_PLAN',
    'QUICK_SETTINGS',
    'VARIANT_SETTINGS',
    'SplitPlan',
    'main',
    'split_folders',
    'variant_config',
]


@dataclass(frozen=True)
class SplitPlan:
    """One synthetic dataset folder: split, scenarios x frames, seed, camera size (px).

    Several plans of one role (e.g. two ``train`` folders) are all used for that
    role; ``folder`` defaults to the split name and ``start_index`` offsets the
    scenario indices so the folders hold different scenarios. ``role`` (default:
    the split) is what the folder is for: ``train``, ``val`` (per-epoch
    validation), ``tune`` (the score-rule choice, with the ``val`` folders) or
    ``test``; ``split`` decides the anomaly categories it holds.
    """

    split: str
    scenarios: int
    frames: int
    seed: int
    width: int = 384
    height: int = 256
    folder: str = ''
    start_index: int = 0
    role: str = ''

    @property
    def folder_name(self) -> str:
        return self.folder or self.split

    @property
    def purpose(self) -> str:
        return self.role or self.split


# Many short scenarios: anomaly objects persist through a scenario, so diversity
# comes from the scenario count (doubling the training scenarios did more for
# validation AP and FPR95 than 2.5x the epochs on half of them; models/README.md).
# The camera is generated at the model's input size (384x256): the model resizes
# to it anyway, and it quarters rendering time and disk space. The score rule is
# chosen once after training, on 100 validation scenarios: validation draws its own
# category (neither train nor test draws it), and 20 scenarios of it are too few to
# choose a rule by (the seed alone moved AP by 0.09 on 7 such scenarios; models/README.md).
DATA_PLAN = (
    SplitPlan('train', scenarios=100, frames=10, seed=100),
    SplitPlan('train', scenarios=100, frames=10, seed=103, folder='train2', start_index=1000),
    SplitPlan('val', scenarios=20, frames=10, seed=101),
    SplitPlan('val', scenarios=80, frames=10, seed=105, folder='val_large', start_index=3000, role='tune'),
    SplitPlan('test', scenarios=40, frames=25, seed=102),
)
# ``--quick``: a pipeline smoke test in about a minute (tiny model, a few tiny frames).
QUICK_PLAN = (
    SplitPlan('train', scenarios=1, frames=3, seed=100, width=96, height=64),
    SplitPlan('train', scenarios=1, frames=3, seed=103, width=96, height=64, folder='train2', start_index=1000),
    SplitPlan('val', scenarios=1, frames=3, seed=101, width=96, height=64),
    SplitPlan('test', scenarios=1, frames=3, seed=102, width=96, height=64),
)
QUICK_SETTINGS: dict[str, Any] = {
    'model': {'preset': 'tiny'},
    'train': {'epochs': 1, 'progress': False},
    'eval': {'semantic_weights': [], 'anomaly_temperatures': [], 'score_smoothings': [], 'lidar_supports': []},
}
# Real frames (camera + LiDAR, no anomaly) every exported model is checked on.
REAL_FRAMES = Path(__file__).resolve().parents[1] / 'real'
# The training config settings of each variant, over the recipe's.
VARIANT_SETTINGS: dict[str, dict[str, Any]] = {
    'fusion': {'model': {'modality': 'fusion'}},
    'lidar': {'model': {'modality': 'lidar'}},
    'camera': {'model': {'modality': 'camera'}, 'train': {'camera_dropout': 0.0}},
}


def _split_complete(folder: Path, plan: SplitPlan) -> bool:
    if not folder.is_dir():
        return False
    try:
        scenarios = find_scenarios(folder)
    except DataError:
        return False
    return len(scenarios) >= plan.scenarios and all(len(ScenarioReader(s).frame_ids) >= plan.frames for s in scenarios)


def _run(cmd: list[str]) -> None:
    print('$ ' + ' '.join(cmd), flush=True)
    result = subprocess.run(cmd, check=False)
    if result.returncode != 0:
        msg = f'command failed with exit status {result.returncode}: {" ".join(cmd)}'
        raise ConfigError(msg)


def generate_data(root: Path, workers: int, plans: Sequence[SplitPlan] = DATA_PLAN) -> None:
    """Step 1: write every split of ``plans`` that is not complete yet."""
    for plan in plans:
        folder = root / plan.folder_name
        if _split_complete(folder, plan):
            print(f'data: {folder} complete ({plan.scenarios} x {plan.frames} frames)', flush=True)
            continue
        _run(
            [
                sys.executable, '-m', 'anovox_training.data.synth', '--out', str(folder), '--split', plan.split,
                '--scenarios', str(plan.scenarios), '--frames', str(plan.frames), '--seed', str(plan.seed),
                '--width', str(plan.width), '--height', str(plan.height), '--workers', str(workers), '--no-progress',
                '--start-index', str(plan.start_index),
            ]
        )  # fmt: skip


def split_folders(data: Path, plans: Sequence[SplitPlan], *roles: str) -> list[Path]:
    """The dataset folders in ``plans`` serving any of ``roles`` (in plan order)."""
    return [data / plan.folder_name for plan in plans if plan.purpose in roles]


def variant_config(
    config: Path,
    name: str,
    run_dir: Path,
    folders: Mapping[str, Sequence[Path]],
    settings: Sequence[Mapping[str, Any]] = (),
    overrides: Sequence[str] = (),
) -> TrainingConfig:
    """The training config of variant ``name``: the YAML, then its folders, the variant, ``settings``, ``overrides``.

    Args:
        config: The training YAML.
        name: A key of :data:`VARIANT_SETTINGS`.
        run_dir: The variant's run folder (``out_dir``).
        folders: The dataset folders of each data role (``train``, ``val``, ``tune``).
        settings: More typed settings (the quick run's, the cache folder), after the variant's.
        overrides: ``--set KEY=VALUE`` items, applied last.

    Raises:
        ConfigError: When the config is invalid.
    """
    where = {
        'out_dir': str(run_dir),
        'data': {role: [str(p) for p in folders[role]] for role in ('train', 'val', 'tune')},
    }
    return training_config(load_config(config, overrides, [where, VARIANT_SETTINGS[name], *settings]))


def train_variants(
    config: Path,
    data: Path,
    runs: Path,
    overrides: Sequence[str],
    force: bool,
    cache_dir: Path | None = None,
    plans: Sequence[SplitPlan] = DATA_PLAN,
    settings: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Path]:
    """Step 2: train each variant; returns the checkpoint to evaluate per variant (best on validation).

    An unfinished run is resumed from its ``last.pt``.

    Raises:
        ConfigError: When a variant stops before its last epoch (a signal, ``train.stop_at_step``).
        TrainingError: On a non-finite loss or a resume with an incompatible model.
    """
    out: dict[str, Path] = {}
    folders = {
        'train': split_folders(data, plans, 'train'),
        'val': split_folders(data, plans, 'val'),
        'tune': split_folders(data, plans, 'val', 'tune'),
    }
    if cache_dir is not None:
        settings = [{'data': {'cache_dir': str(cache_dir)}}, *settings]
    for name in VARIANT_SETTINGS:
        run_dir = runs / name
        best, last = run_dir / 'best.pt', run_dir / 'last.pt'
        if force and run_dir.exists():
            shutil.rmtree(run_dir)
        done = last.is_file() and _finished(last)
        if not done:
            variant = variant_config(config, name, run_dir, folders, settings, overrides)
            print(f'train {name}: {config} into {run_dir}', flush=True)
            stopped = ''
            try:
                with distributed() as dist:
                    Trainer(variant, dist).fit(resume=True)
            except TrainingInterrupted as err:
                stopped = f' ({err})'
            if stopped or not (last.is_file() and _finished(last)):
                msg = (
                    f'training the {name} variant stopped before its last epoch{stopped}; '
                    'run make model again to resume it'
                )
                raise ConfigError(msg)
        out[name] = best if best.is_file() else last
    return out


def prebuild_cache(checkpoint: Path, data: Path, workers: int) -> None:
    """Cache the evaluation frames with ``workers`` processes (evaluation itself builds them one by one)."""
    ckpt = read_checkpoint(checkpoint)
    spec = model_config_of(ckpt['config']).input_spec()
    SampleCache(ckpt['config']['data']['cache_dir'], spec).ensure(frame_refs(resolve_scenarios(data)), workers=workers)


def _finished(checkpoint: Path) -> bool:
    import torch

    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    return ckpt['epoch'] >= ckpt['config']['train']['epochs']


def recipe_of_run(checkpoints: dict[str, Path], plans: Sequence[SplitPlan]) -> dict[str, Any]:
    """What decided the weights of a make-model run: each variant's config and training data, the data plan."""
    variants = {}
    for name, path in checkpoints.items():
        ckpt = read_checkpoint(path)
        variants[name] = {'config': recipe_of_config(ckpt['config']), 'data_hash': ckpt.get('data_hash', '')}
    return {'data_plan': [asdict(p) for p in plans if p.purpose != 'test'], 'variants': variants}


def _test_data(folder: Path) -> dict[str, Any]:
    scenarios = find_scenarios(folder)
    frames = sum(len(ScenarioReader(s).frame_ids) for s in scenarios)
    return {'folder': folder.name, 'scenarios': len(scenarios), 'frames': frames}


def read_test_split_once(
    ledger: ReadingLedger,
    recipe: dict[str, Any],
    checkpoints: dict[str, Path],
    test: Path,
    eval_dir: Path,
    reason: str,
    workers: int,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Step 3: evaluate on the test split, once per recipe, and record the reading in ``ledger``.

    A recipe read before is not read again: its report in ``eval_dir`` is reused when it
    is that recipe's, and otherwise the run stops, unless ``reason`` says why the test
    split must be read again (the reason is recorded with the new reading).

    ``cache_dir`` and ``progress`` are the evaluation's (:class:`EvaluateOptions`).

    Raises:
        ConfigError: When the recipe was read before, its report is gone and no reason is given.
        DataError: When a checkpoint or the test split cannot be read.
    """
    rid = recipe_id(recipe)
    previous = ledger.readings_of(rid)
    marker = eval_dir / 'test_reading.json'
    report_path = eval_dir / 'metrics.json'
    if previous and not reason:
        if marker.is_file() and json.loads(marker.read_text()).get('recipe_id') == rid and report_path.is_file():
            print(f'evaluate: the test split was read for recipe {rid} on {previous[-1]["time"]}; reusing that report')
            return json.loads(report_path.read_text())
        figures = previous[-1]['figures'].get('fusion', {})
        msg = (
            f'the test split was already read for recipe {rid} on {previous[-1]["time"]} (fusion {figures}) and '
            f'its report is not in {eval_dir}; that figure stands. Give --reread-test "why" to read it again '
            f'(the reading is recorded in {ledger.path})'
        )
        raise ConfigError(msg)
    prebuild_cache(checkpoints['fusion'], test, workers)
    options = EvaluateOptions(
        checkpoint=checkpoints['fusion'],
        lidar_only=checkpoints['lidar'],
        camera_only=checkpoints['camera'],
        data=(test,),
        split='test',
        out=eval_dir,
        cache_dir=cache_dir,
        progress=progress,
    )
    evaluate(options)
    print((eval_dir / 'metrics.md').read_text())
    report = json.loads(report_path.read_text())
    ledger.append(Reading.of(recipe, checkpoints, _test_data(test), report, reason))
    marker.write_text(json.dumps({'recipe_id': rid}) + '\n')
    return report


def check_real(onnx: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Step 5: the exported model on the real frames in ``real/`` at the test split's FPR95 threshold.

    An evaluation only: nothing is chosen on these frames. When the test split
    defines no FPR95 threshold (it reached no 95 % TPR), the markers and occupied
    voxels are still recorded and the share above it is None, with the reason.
    """
    from anovox_training.evaluate.real_check import check_real_frames, fpr95_threshold, real_metrics

    try:
        threshold, reason = fpr95_threshold(report), ''
    except DataError as err:
        threshold, reason = 1.0, str(err)
    figures = real_metrics(check_real_frames(onnx, REAL_FRAMES, threshold, render=False))
    if reason:
        figures = {name: {**f, 'share_above_fpr95_threshold': None, 'note': reason} for name, f in figures.items()}
    return figures


def int8_cost(onnx: Path, out: Path, test: Path, checkpoints: dict[str, Path]) -> dict[str, Any]:
    """Step 6: the exported model and its INT8 variant through ONNX Runtime on the test split.

    Part of the recipe's one test reading (step 3 evaluated the torch weights of the
    same recipe): it tells what the node's faster INT8 configuration costs in
    detection, which no validation figure can stand in for. Nothing is chosen on it.
    """
    from anovox_training.export.quantize import evaluate_onnx_models, quantize_model

    int8 = quantize_model(onnx, out, 's8')
    cache = read_checkpoint(checkpoints['fusion'])['config']['data']['cache_dir']
    figures = evaluate_onnx_models({'fp32': onnx, 'int8_s8': int8}, [test], cache)
    # FPR95 is None where a split never reaches 95 % recall; so is its difference.
    fp32, quantized = figures['fp32'], figures['int8_s8']
    cost = {
        key: None if fp32[key] is None or quantized[key] is None else quantized[key] - fp32[key]
        for key in ('AP', 'AUROC', 'FPR95')
    }
    return {'models': {'fp32': onnx.name, 'int8_s8': int8.name}, 'test': figures, 'int8_minus_fp32': cost}


def selection_record(checkpoints: dict[str, Path]) -> dict[str, Any]:
    """Which inputs chose what, per variant: checkpoint, occupancy threshold, score rule, operating point (never test).

    The threshold and the score rule are the checkpoint's calibration, with the folders it records
    they were chosen on (none: the configured value).
    """
    out: dict[str, Any] = {}
    for name, path in checkpoints.items():
        ckpt = read_checkpoint(path)
        calibration = checkpoint_calibration(ckpt, path)
        config = ckpt['config']
        val = [Path(p).name for p in config['data']['val']]
        out[name] = {
            'checkpoint': {'file': path.name, 'epoch': ckpt['epoch'], 'rule': 'best validation AP', 'chosen_on': val},
            'validation_AP': ckpt.get('best_val_ap'),
            'occupancy_threshold': {
                'value': calibration.occupancy_threshold,
                'rule': f'largest reaching coverage {config["eval"]["min_coverage"]}',
                'chosen_on': list(calibration.threshold_chosen_on.folders),
            },
            'score_rule': {
                **calibration.score_rule.to_dict(),
                'chosen_on': list(calibration.score_rule_chosen_on.folders),
            },
            'operating_point': {
                **calibration.operating_point.to_dict(),
                'rule': (
                    'lowest anomaly threshold, then fewest LiDAR points per marker, within '
                    f'{config["eval"]["max_false_alarms_per_frame"]} false alarms per frame'
                ),
                'chosen_on': list(calibration.operating_point_chosen_on.folders),
            },
        }
    return out


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Reproduce the shipped demo model from scratch.')
    parser.add_argument('--data', type=Path, default=Path('data/synth'), help='synthetic dataset root')
    parser.add_argument('--runs', type=Path, default=Path('runs/make_model'), help='training runs folder')
    parser.add_argument('--out', type=Path, default=Path('models'), help='where the model and metrics go')
    parser.add_argument('--config', type=Path, default=Path('config/train.yaml'), help='training config')
    parser.add_argument('--name', default='anovox_base', help='model file stem')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='training config override')
    parser.add_argument('--workers', type=int, default=2, help='data generation processes')
    parser.add_argument('--force', action='store_true', help='retrain even when finished runs exist')
    parser.add_argument('--no-export', action='store_true', help='stop after the evaluation')
    parser.add_argument('--quick', action='store_true', help='smoke test: tiny model on a few tiny frames')
    parser.add_argument(
        '--reread-test',
        default='',
        metavar='WHY',
        help='read the test split again for a recipe already read (the reason is recorded with the reading)',
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    timings: dict[str, float] = {}
    try:
        start = time.perf_counter()
        generate_data(args.data, args.workers, QUICK_PLAN if args.quick else DATA_PLAN)
        timings['data'] = time.perf_counter() - start

        start = time.perf_counter()
        settings = [QUICK_SETTINGS] if args.quick else []
        cache_dir = args.runs / 'cache' if args.quick else None
        plans = QUICK_PLAN if args.quick else DATA_PLAN
        checkpoints = train_variants(
            args.config, args.data, args.runs, args.set, args.force, cache_dir, plans, settings
        )
        timings['train'] = time.perf_counter() - start

        start = time.perf_counter()
        eval_dir = args.runs / 'eval'
        ledger = ReadingLedger(args.out / 'test_readings.jsonl')
        recipe = recipe_of_run(checkpoints, plans)
        report = read_test_split_once(
            ledger,
            recipe,
            checkpoints,
            args.data / 'test',
            eval_dir,
            args.reread_test,
            args.workers,
            cache_dir=cache_dir,
            progress=not args.quick,
        )
        timings['evaluate'] = time.perf_counter() - start

        if not args.no_export:
            start = time.perf_counter()
            # The documented command, in its own process: export sets up process-wide logging, and the files
            # it writes are exactly those `python -m anovox_training.export --checkpoint ...` writes by hand.
            _run(
                [
                    sys.executable, '-m', 'anovox_training.export', '--checkpoint', str(checkpoints['fusion']),
                    '--out', str(args.out), '--name', args.name,
                ]
            )  # fmt: skip
            timings['export'] = time.perf_counter() - start
            start = time.perf_counter()
            report['real'] = check_real(args.out / f'{args.name}.onnx', report)
            timings['real'] = time.perf_counter() - start
            start = time.perf_counter()
            onnx = args.out / f'{args.name}.onnx'
            report['int8'] = int8_cost(onnx, args.runs / 'int8', args.data / 'test', checkpoints)
            timings['int8'] = time.perf_counter() - start
        report['selection'] = selection_record(checkpoints)
        rid = recipe_id(recipe)
        readings = len(ledger.readings_of(rid))
        report['test_reading'] = {'recipe_id': rid, 'readings': readings, 'ledger': ledger.path.name}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f'{args.name}.metrics.json').write_text(json.dumps(report, indent=2) + '\n')
        shutil.copyfile(eval_dir / 'metrics.md', args.out / f'{args.name}.metrics.md')
    except AnovoxError as err:
        print(f'make_model: error: {err}', file=sys.stderr)
        return 2
    summary = ', '.join(f'{k} {v / 60:.1f} min' for k, v in timings.items())
    print(f'make_model: done ({summary}; total {sum(timings.values()) / 60:.1f} min)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
