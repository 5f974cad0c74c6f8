"""TensorRT engine cache: keys, sidecar headers, checksums, invalidation.

A TensorRT engine is only valid for the ONNX graph, precision, TensorRT version
and GPU it was built for, and deserialising a wrong or damaged engine can crash
the process. So an engine is never loaded blindly: each ``<model>-<key>.engine``
has a ``.engine.json`` sidecar holding the full key and the sha256 and size of
the engine bytes, and :meth:`EngineCache.load` returns bytes only when the
sidecar parses, its key equals the wanted key and the bytes hash to the
recorded checksum. Anything else is logged, removed and reported as a miss, so
the caller rebuilds. Writes are atomic (temporary file + rename, engine before
sidecar), so a crash mid-write leaves no half engine that looks valid.

Nothing here needs TensorRT or a GPU; the TensorRT backend supplies the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from anovox_perception.core.atomic_file import write_bytes_atomic
from anovox_perception.core.errors import EngineCacheError

__all__ = ['CACHE_FORMAT', 'EngineCache', 'EngineKey', 'default_cache_dir']

_LOG = logging.getLogger(__name__)

CACHE_FORMAT = 1
_ENV_CACHE_DIR = 'ANOVOX_ENGINE_CACHE'


def default_cache_dir() -> Path:
    """``$ANOVOX_ENGINE_CACHE``, else ``$XDG_CACHE_HOME/anovox_perception/engines`` (``~/.cache`` by default).

    Not beside the model: installed models usually sit in a read-only share folder.
    """
    if os.environ.get(_ENV_CACHE_DIR):
        return Path(os.environ[_ENV_CACHE_DIR])
    base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(base) / 'anovox_perception' / 'engines'


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialised engine depends on.

    Attributes:
        onnx_sha256: Graph hash of the ONNX model (without its card).
        precision: Build precision (``'fp32'``, ``'fp16'``).
        tensorrt_version: ``tensorrt.__version__`` that built it.
        gpu_name: CUDA device name.
        compute_capability: ``'<major>.<minor>'`` of the device.
    """

    onnx_sha256: str
    precision: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str

    def digest(self) -> str:
        """sha256 of the key's canonical JSON."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def differences(self, other: Mapping[str, Any]) -> list[str]:
        """Fields where ``other`` (a key dict) differs, as ``'field: other -> self'``."""
        return [
            f'{f.name}: {other.get(f.name)!r} -> {getattr(self, f.name)!r}'
            for f in fields(self)
            if other.get(f.name) != getattr(self, f.name)
        ]


class EngineCache:
    """A folder of verified TensorRT engines.

    Args:
        root: Cache folder (created on first store).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def paths(self, model_name: str, key: EngineKey) -> tuple[Path, Path]:
        """(engine, sidecar) paths of ``model_name`` under ``key``."""
        engine = self.root / f'{model_name}-{key.digest()[:16]}.engine'
        return engine, engine.with_name(engine.name + '.json')

    def load(self, model_name: str, key: EngineKey) -> bytes | None:
        """The verified engine bytes for ``key``, or None (after a log line saying why).

        Corrupt, truncated or mismatched entries are removed so that the next
        build replaces them.
        """
        engine_path, header_path = self.paths(model_name, key)
        if not engine_path.exists() and not header_path.exists():
            self._log_miss(model_name, key)
            return None
        data, problem = self._verified(engine_path, header_path, key)
        if problem is not None:
            _LOG.warning('cached TensorRT engine %s %s; discarding it and rebuilding', engine_path, problem)
            self.discard(model_name, key)
            return None
        _LOG.info('using cached TensorRT engine %s', engine_path)
        return data

    def _verified(self, engine_path: Path, header_path: Path, key: EngineKey) -> tuple[bytes | None, str | None]:
        """Read and check one entry; returns (bytes, None) or (None, the problem)."""
        try:
            header = json.loads(header_path.read_text())
        except FileNotFoundError:
            return None, f'has no sidecar {header_path.name}'
        except (OSError, ValueError) as err:
            return None, f'has an unreadable sidecar {header_path.name} ({err})'
        if not isinstance(header, dict) or header.get('format') != CACHE_FORMAT:
            return None, f'has a sidecar of unknown format (want format {CACHE_FORMAT})'
        stored_key = header.get('key')
        if not isinstance(stored_key, dict) or stored_key != key.to_dict():
            diffs = key.differences(stored_key if isinstance(stored_key, dict) else {})
            return None, f'was built for a different key ({"; ".join(diffs)})'
        try:
            data = engine_path.read_bytes()
        except OSError as err:
            return None, f'cannot be read ({err})'
        if len(data) != header.get('engine_bytes'):
            return None, f'is truncated or padded ({len(data)} bytes, sidecar says {header.get("engine_bytes")})'
        if hashlib.sha256(data).hexdigest() != header.get('engine_sha256'):
            return None, 'is corrupt (sha256 does not match its sidecar)'
        return data, None

    def _log_miss(self, model_name: str, key: EngineKey) -> None:
        """Say why there is no engine: first build, or engines for other keys (stale)."""
        stale = []
        for header_path in sorted(self.root.glob(f'{model_name}-*.engine.json')):
            try:
                stored = json.loads(header_path.read_text()).get('key', {})
            except (OSError, ValueError, AttributeError):
                continue
            stale.append(f'{header_path.name[: -len(".json")]} ({"; ".join(key.differences(stored))})')
        if stale:
            _LOG.warning('no TensorRT engine for %s matches this key; stale: %s', model_name, ', '.join(stale))
        else:
            _LOG.info('no cached TensorRT engine for %s in %s', model_name, self.root)

    def store(self, model_name: str, key: EngineKey, engine: bytes, extra: Mapping[str, Any] | None = None) -> Path:
        """Write an engine and its sidecar atomically.

        Args:
            model_name: Model name (file prefix).
            key: The key it was built for.
            engine: Serialised engine bytes.
            extra: More JSON to keep in the sidecar (e.g. the engine's I/O).

        Returns:
            The engine path.

        Raises:
            EngineCacheError: The folder cannot be created or written.
        """
        engine_path, header_path = self.paths(model_name, key)
        header = {
            'format': CACHE_FORMAT,
            'key': key.to_dict(),
            'engine_bytes': len(engine),
            'engine_sha256': hashlib.sha256(engine).hexdigest(),
            **dict(extra or {}),
        }
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(engine_path, engine)
            write_bytes_atomic(header_path, json.dumps(header, indent=2).encode())
        except OSError as err:
            msg = f'cannot write TensorRT engine cache {engine_path}: {err}; set engine_cache_dir to a writable folder'
            raise EngineCacheError(msg) from None
        _LOG.info('stored TensorRT engine %s (%d bytes)', engine_path, len(engine))
        return engine_path

    def discard(self, model_name: str, key: EngineKey) -> None:
        """Remove an entry (sidecar first, so a half-removed entry never verifies)."""
        for path in reversed(self.paths(model_name, key)):
            path.unlink(missing_ok=True)

    def get_or_build(
        self, model_name: str, key: EngineKey, build: Callable[[], bytes], extra: Mapping[str, Any] | None = None
    ) -> tuple[bytes, bool]:
        """Cached engine bytes, or ``build()`` and store them.

        A store failure is logged and the built engine is still returned: a
        read-only cache must not stop the node.

        Returns:
            ``(engine bytes, built)`` where ``built`` says whether ``build`` ran.
        """
        data = self.load(model_name, key)
        if data is not None:
            return data, False
        data = build()
        try:
            self.store(model_name, key, data, extra)
        except EngineCacheError as err:
            _LOG.warning('%s; the engine is used but not cached', err)
        return data, True
