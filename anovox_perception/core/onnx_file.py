"""Read an ONNX file's metadata and graph hash without the ``onnx`` package.

The runtime installs ONNX Runtime only, and parsing a whole ``ModelProto`` to
read a few metadata strings would also decode every weight. An ONNX file is a
serialised protobuf ``ModelProto``; its top-level records can be walked with
the protobuf wire format alone, skipping the (large) ``graph`` record by its
length prefix. That walk also catches truncated files: a record whose length
runs past the end of the file.

``graph_sha256`` hashes the file bytes minus the metadata records named in
``exclude_keys``. The exporter hashes the serialised model before it adds the
model card, so removing exactly the card's record reproduces those bytes and
the hash, stored in the card, identifies the graph independent of the card.
External-data tensors (models over 2 GB) are not covered; the exporter never
writes them.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from anovox_perception.core.errors import ModelCardError

__all__ = ['OnnxFileInfo', 'read_onnx_file']

# ModelProto field numbers (onnx/onnx.proto3).
_GRAPH_FIELD = 7
_METADATA_PROPS_FIELD = 14
# StringStringEntryProto field numbers.
_ENTRY_KEY_FIELD = 1
_ENTRY_VALUE_FIELD = 2

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class OnnxFileInfo:
    """What the runtime needs to know about an ONNX file before loading it.

    Attributes:
        path: The file.
        size_bytes: File size.
        metadata: ``metadata_props`` as a dict (key -> value).
        graph_sha256: sha256 of the file without the excluded metadata records,
            or None when not requested.
    """

    path: Path
    size_bytes: int
    metadata: dict[str, str]
    graph_sha256: str | None


class _Truncated(Exception):
    """Internal: a record runs past the end of its buffer."""


def _read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; returns (value, next position)."""
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise _Truncated
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            msg = 'varint longer than 10 bytes'
            raise ValueError(msg)


def _records(buf: memoryview, start: int, end: int) -> Iterable[tuple[int, int, int, int, int]]:
    """Yield (field, wire type, record start, payload start, record end) of one message level."""
    pos = start
    while pos < end:
        record_start = pos
        tag, pos = _read_varint(buf, pos, end)
        field, wire = tag >> 3, tag & 0x7
        if field == 0:
            msg = 'field number 0'
            raise ValueError(msg)
        if wire == _VARINT:
            _, pos = _read_varint(buf, pos, end)
            payload = pos
        elif wire == _FIXED64:
            payload, pos = pos, pos + 8
        elif wire == _FIXED32:
            payload, pos = pos, pos + 4
        elif wire == _LENGTH_DELIMITED:
            length, payload = _read_varint(buf, pos, end)
            pos = payload + length
        else:
            msg = f'unsupported protobuf wire type {wire}'
            raise ValueError(msg)
        if pos > end:
            raise _Truncated
        yield field, wire, record_start, payload, pos


def _decode_entry(buf: memoryview, start: int, end: int) -> tuple[str, str]:
    """Decode one StringStringEntryProto (key, value)."""
    key, value = '', ''
    for field, wire, _, payload, record_end in _records(buf, start, end):
        if wire != _LENGTH_DELIMITED:
            continue
        text = bytes(buf[payload:record_end]).decode('utf-8')
        if field == _ENTRY_KEY_FIELD:
            key = text
        elif field == _ENTRY_VALUE_FIELD:
            value = text
    return key, value


def read_onnx_file(path: str | Path, *, hash_graph: bool = False, exclude_keys: Iterable[str] = ()) -> OnnxFileInfo:
    """Read an ONNX file's metadata and optionally the hash of its graph.

    Args:
        path: The ``.onnx`` file.
        hash_graph: Also compute ``graph_sha256`` (reads the whole file).
        exclude_keys: Metadata keys whose records the hash leaves out.

    Returns:
        The file's :class:`OnnxFileInfo`.

    Raises:
        ModelCardError: The file is missing, empty, truncated, not an ONNX
            model, or has no graph; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        msg = f'ONNX model {path} does not exist or is not a file'
        raise ModelCardError(msg)
    size = path.stat().st_size
    if size == 0:
        msg = f'ONNX model {path} is empty (0 bytes); re-export or re-copy it'
        raise ModelCardError(msg)
    excluded = set(exclude_keys)
    with path.open('rb') as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        buf = memoryview(mapped)
        try:
            metadata, skip, has_graph = _scan(buf, size, excluded)
            digest = _hash_without(buf, size, skip) if hash_graph else None
        except _Truncated:
            msg = f'ONNX model {path} is truncated ({size} bytes): a record runs past the end; re-export or re-copy it'
            raise ModelCardError(msg) from None
        except (ValueError, UnicodeDecodeError) as err:
            msg = f'ONNX model {path} is not a valid ONNX protobuf file ({err}); re-export it'
            raise ModelCardError(msg) from None
        finally:
            buf.release()
    if not has_graph:
        msg = f'ONNX model {path} has no graph (truncated or not an ONNX model); re-export it'
        raise ModelCardError(msg)
    return OnnxFileInfo(path=path, size_bytes=size, metadata=metadata, graph_sha256=digest)


def _scan(buf: memoryview, size: int, excluded: set[str]) -> tuple[dict[str, str], list[tuple[int, int]], bool]:
    """Walk the top-level records: metadata, byte ranges to leave out of the hash, graph presence."""
    metadata: dict[str, str] = {}
    skip: list[tuple[int, int]] = []
    has_graph = False
    for field, wire, record_start, payload, record_end in _records(buf, 0, size):
        if field == _GRAPH_FIELD and wire == _LENGTH_DELIMITED:
            has_graph = True
        elif field == _METADATA_PROPS_FIELD and wire == _LENGTH_DELIMITED:
            key, value = _decode_entry(buf, payload, record_end)
            metadata[key] = value
            if key in excluded:
                skip.append((record_start, record_end))
    return metadata, skip, has_graph


def _hash_without(buf: memoryview, size: int, skip: list[tuple[int, int]]) -> str:
    """sha256 of ``buf`` with the ``skip`` byte ranges removed (no copies of the big ranges)."""
    digest = hashlib.sha256()
    pos = 0
    for start, end in skip:
        digest.update(buf[pos:start])
        pos = end
    digest.update(buf[pos:size])
    return digest.hexdigest()
