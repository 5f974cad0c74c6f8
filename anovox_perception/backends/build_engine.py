"""``anovox-build-engine MODEL.onnx``: build and cache the TensorRT engine offline, then exit.

Run it once on the vehicle (same GPU, same TensorRT as the node) so the node
starts with a cached engine instead of building one for minutes on first use.
The node finds the engine by the same key; pass the same ``--cache-dir`` (or
``engine_cache_dir``) to both, or use the default.
"""

from __future__ import annotations

import argparse
import logging
import sys

from anovox_perception.backends.base import BackendOptions
from anovox_perception.backends.engine_cache import default_cache_dir
from anovox_perception.backends.tensorrt import prepare_engine
from anovox_perception.core.errors import AnovoxError

__all__ = ['get_args_parser', 'main']


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='anovox-build-engine', description=__doc__.splitlines()[0])
    parser.add_argument('model', help='exported ONNX model (with its model card)')
    parser.add_argument('--fp16', action='store_true', help='build with FP16 kernels allowed (default: strict FP32)')
    parser.add_argument('--workspace-mib', type=int, default=1024, help='builder workspace limit in MiB')
    parser.add_argument('--cache-dir', default=None, help=f'engine cache folder (default: {default_cache_dir()})')
    parser.add_argument('--device', type=int, default=0, help='CUDA device index')
    parser.add_argument('--rebuild', action='store_true', help='build even when a verified engine is cached')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Build (or verify) the engine; 0 on success, 1 with a message on failure."""
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        options = BackendOptions(
            precision='fp16' if args.fp16 else 'fp32',
            workspace_mib=args.workspace_mib,
            engine_cache_dir=args.cache_dir,
            device_id=args.device,
        )
        prepared = prepare_engine(args.model, options, rebuild=args.rebuild)
    except AnovoxError as err:
        print(f'anovox-build-engine: {err}', file=sys.stderr)
        return 1
    engine_path, _ = prepared.cache.paths(prepared.card.name, prepared.key)
    if not engine_path.is_file():
        print(f'anovox-build-engine: the engine was built but could not be stored as {engine_path}', file=sys.stderr)
        return 1
    action = 'built' if prepared.built else 'verified cached'
    print(f'{action} engine {engine_path} ({len(prepared.engine)} bytes) for {prepared.key.to_dict()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
