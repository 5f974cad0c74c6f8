"""Engine cache: keys, verified loads, invalidation of stale, mismatched and corrupt engines (no GPU needed)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest

from anovox_perception.backends.engine_cache import CACHE_FORMAT, EngineCache, EngineKey, default_cache_dir
from anovox_perception.core.errors import EngineCacheError

KEY = EngineKey(
    onnx_sha256='a' * 64,
    precision='fp32',
    tensorrt_version='10.3.0',
    gpu_name='NVIDIA Jetson AGX Orin',
    compute_capability='8.7',
)
ENGINE = bytes(range(256)) * 40


@pytest.mark.parametrize('field', [f.name for f in dataclasses.fields(EngineKey)])
def test_every_key_field_changes_the_digest(field: str) -> None:
    other = dataclasses.replace(KEY, **{field: getattr(KEY, field) + 'x'})
    assert other.digest() != KEY.digest()
    assert KEY.differences(other.to_dict()) == [f'{field}: {getattr(other, field)!r} -> {getattr(KEY, field)!r}']


def test_equal_keys_have_equal_digests() -> None:
    assert EngineKey(**KEY.to_dict()).digest() == KEY.digest()


def test_stored_engine_loads_back_with_its_sidecar(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / 'engines')
    engine_path = cache.store('anovox_demo', KEY, ENGINE, {'model': 'anovox_demo'})
    assert engine_path.name == f'anovox_demo-{KEY.digest()[:16]}.engine'
    header = json.loads(engine_path.with_name(engine_path.name + '.json').read_text())
    assert header['format'] == CACHE_FORMAT
    assert header['key'] == KEY.to_dict()
    assert header['engine_bytes'] == len(ENGINE)
    assert header['model'] == 'anovox_demo'
    assert cache.load('anovox_demo', KEY) == ENGINE
    assert not list((tmp_path / 'engines').glob('.*.tmp'))


def test_missing_engine_is_a_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert EngineCache(tmp_path).load('anovox_demo', KEY) is None
    assert 'no cached TensorRT engine for anovox_demo' in caplog.text


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def _wrong_key(path: Path) -> None:
    sidecar = path.with_name(path.name + '.json')
    header = json.loads(sidecar.read_text())
    header['key']['tensorrt_version'] = '10.0.1'
    sidecar.write_text(json.dumps(header))


def _garbage_sidecar(path: Path) -> None:
    path.with_name(path.name + '.json').write_text('{not json')


def _no_sidecar(path: Path) -> None:
    path.with_name(path.name + '.json').unlink()


def _old_format(path: Path) -> None:
    sidecar = path.with_name(path.name + '.json')
    header = json.loads(sidecar.read_text())
    header['format'] = CACHE_FORMAT + 1
    sidecar.write_text(json.dumps(header))


@pytest.mark.parametrize(
    ('damage', 'problem'),
    [
        (_corrupt, 'is corrupt'),
        (_truncate, 'is truncated'),
        (_wrong_key, r"different key \(tensorrt_version: '10.0.1' -> '10.3.0'\)"),
        (_garbage_sidecar, 'unreadable sidecar'),
        (_no_sidecar, 'has no sidecar'),
        (_old_format, 'unknown format'),
    ],
)
def test_damaged_or_mismatched_engines_are_discarded_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage, problem: str
) -> None:
    cache = EngineCache(tmp_path)
    engine_path = cache.store('anovox_demo', KEY, ENGINE)
    damage(engine_path)
    with caplog.at_level(logging.WARNING):
        assert cache.load('anovox_demo', KEY) is None
    assert caplog.records[-1].levelno == logging.WARNING
    assert 'rebuilding' in caplog.text
    assert re.search(problem, caplog.text)
    assert not engine_path.exists()
    assert not engine_path.with_name(engine_path.name + '.json').exists()


def test_engines_of_other_keys_are_reported_as_stale(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = EngineCache(tmp_path)
    cache.store('anovox_demo', KEY, ENGINE)
    newer = dataclasses.replace(KEY, tensorrt_version='10.4.0', onnx_sha256='b' * 64)
    with caplog.at_level(logging.INFO):
        assert cache.load('anovox_demo', newer) is None
    assert 'no TensorRT engine for anovox_demo matches this key; stale' in caplog.text
    assert "tensorrt_version: '10.3.0' -> '10.4.0'" in caplog.text
    assert cache.load('anovox_demo', KEY) == ENGINE  # the other entry is left alone


def test_get_or_build_builds_once_then_uses_the_cache(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    builds = []

    def build() -> bytes:
        builds.append(1)
        return ENGINE

    assert cache.get_or_build('anovox_demo', KEY, build) == (ENGINE, True)
    assert cache.get_or_build('anovox_demo', KEY, build) == (ENGINE, False)
    assert cache.get_or_build('anovox_demo', dataclasses.replace(KEY, precision='fp16'), build) == (ENGINE, True)
    assert len(builds) == 2


def test_get_or_build_returns_the_engine_when_the_cache_is_not_writable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / 'file'
    blocker.write_text('')
    cache = EngineCache(blocker / 'engines')  # a folder under a file cannot be created
    with caplog.at_level(logging.WARNING):
        assert cache.get_or_build('anovox_demo', KEY, lambda: ENGINE) == (ENGINE, True)
    assert 'the engine is used but not cached' in caplog.text
    with pytest.raises(EngineCacheError, match=r'cannot write TensorRT engine cache .*engine_cache_dir'):
        cache.store('anovox_demo', KEY, ENGINE)


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv('ANOVOX_ENGINE_CACHE', str(tmp_path / 'mine'))
    assert default_cache_dir() == tmp_path / 'mine'
    monkeypatch.delenv('ANOVOX_ENGINE_CACHE')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert default_cache_dir() == tmp_path / 'xdg' / 'anovox_perception' / 'engines'
