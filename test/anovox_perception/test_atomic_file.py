"""Atomic writes keep the old file when writing fails and leave no temporary files."""

from __future__ import annotations

import stat

import pytest

from anovox_perception.core.atomic_file import atomic_writer, write_bytes_atomic


def test_written_file_has_the_data_and_readable_permissions(tmp_path):
    target = tmp_path / 'sub' / 'model.onnx'
    write_bytes_atomic(target, b'abc')
    assert target.read_bytes() == b'abc'
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ['model.onnx']


def test_a_failing_write_keeps_the_previous_file_and_removes_the_temporary_one(tmp_path):
    target = tmp_path / 'last.pt'
    target.write_bytes(b'old')
    with pytest.raises(RuntimeError, match='disk full'), atomic_writer(target) as handle:
        handle.write(b'partial')
        raise RuntimeError('disk full')
    assert target.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['last.pt']
