"""PCD (Point Cloud Library) files: parse ascii, binary and binary_compressed; write ascii and binary.

AnoVox's benchmark layout stores LiDAR clouds as .pcd (written by Open3D), so the
reader needs a parser; this one is small, numpy-only and strict: every header
mistake or truncated body raises `DecodeError` saying what was expected.

Format (PCD v0.7): text header lines ``VERSION``, ``FIELDS``, ``SIZE``, ``TYPE``
(I signed, U unsigned, F float), ``COUNT``, ``WIDTH``, ``HEIGHT``, ``VIEWPOINT``,
``POINTS``, then ``DATA ascii|binary|binary_compressed`` and the body. Binary
bodies are little-endian, packed, one point after the other; binary_compressed
bodies are two uint32 (compressed size, uncompressed size) and an LZF stream
whose output holds each field's values for all points one field after the other.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from anovox_perception.core.errors import DecodeError

__all__ = ['PcdHeader', 'encode_pcd', 'lzf_decompress', 'parse_pcd', 'unpack_rgb']

_DATA_KINDS = ('ascii', 'binary', 'binary_compressed')
_TYPE_KINDS = {'I': 'i', 'U': 'u', 'F': 'f'}
_VALID_SIZES = {'I': (1, 2, 4, 8), 'U': (1, 2, 4, 8), 'F': (4, 8)}
# Header lines end at DATA; a header longer than this is not a PCD file.
_MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class PcdHeader:
    """The parsed header of a PCD file."""

    version: str
    fields: tuple[str, ...]
    sizes: tuple[int, ...]
    types: tuple[str, ...]
    counts: tuple[int, ...]
    width: int
    height: int
    viewpoint: tuple[float, ...]
    points: int
    data: str

    @property
    def dtype(self) -> np.dtype:
        """Packed little-endian structured dtype of one point."""
        entries = []
        for name, size, kind, count in zip(self.fields, self.sizes, self.types, self.counts, strict=True):
            base = f'<{_TYPE_KINDS[kind]}{size}'
            entries.append((name, base) if count == 1 else (name, base, (count,)))
        return np.dtype(entries)


def _split_header(data: bytes) -> tuple[list[tuple[str, list[str]]], int]:
    """Header (keyword, values) lines up to and including DATA, and the body offset."""
    lines: list[tuple[str, list[str]]] = []
    offset = 0
    while True:
        end = data.find(b'\n', offset)
        if end < 0:
            if offset >= len(data):
                msg = 'PCD header ends before the DATA line (file empty or truncated)'
                raise DecodeError(msg)
            end = len(data)
        if end > _MAX_HEADER_BYTES:
            msg = f'no PCD DATA line within the first {_MAX_HEADER_BYTES} bytes; not a PCD file'
            raise DecodeError(msg)
        try:
            line = data[offset:end].decode('ascii').strip()
        except UnicodeDecodeError as err:
            msg = f'PCD header line at byte {offset} is not ASCII text; not a PCD file'
            raise DecodeError(msg) from err
        offset = end + 1
        if not line or line.startswith('#'):
            continue
        keyword, *values = line.split()
        lines.append((keyword.upper(), values))
        if keyword.upper() == 'DATA':
            return lines, min(offset, len(data))


def _ints(keyword: str, values: list[str]) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in values)
    except ValueError as err:
        msg = f'PCD header {keyword}: expected integers, got {" ".join(values)!r}'
        raise DecodeError(msg) from err


def _parse_header(lines: list[tuple[str, list[str]]]) -> PcdHeader:
    entries = dict(lines)
    for required in ('FIELDS', 'SIZE', 'TYPE', 'DATA'):
        if required not in entries:
            msg = f'PCD header has no {required} line; expected FIELDS, SIZE, TYPE, WIDTH/POINTS and DATA'
            raise DecodeError(msg)
    fields = list(entries['FIELDS'])
    n = len(fields)
    if n == 0:
        msg = 'PCD header FIELDS lists no field'
        raise DecodeError(msg)
    # Padding fields are all called '_'; give them unique names so numpy accepts them.
    fields = [f'_pad{i}' if name == '_' else name for i, name in enumerate(fields)]
    if len(set(fields)) != n:
        msg = f'PCD header FIELDS repeats a name: {fields}'
        raise DecodeError(msg)
    sizes = _ints('SIZE', entries['SIZE'])
    types = tuple(t.upper() for t in entries['TYPE'])
    counts = _ints('COUNT', entries['COUNT']) if 'COUNT' in entries else (1,) * n
    for keyword, values in (('SIZE', sizes), ('TYPE', types), ('COUNT', counts)):
        if len(values) != n:
            msg = f'PCD header {keyword} has {len(values)} entries for {n} FIELDS {fields}'
            raise DecodeError(msg)
    for name, size, kind, count in zip(fields, sizes, types, counts, strict=True):
        if kind not in _TYPE_KINDS:
            msg = f'PCD field {name!r}: TYPE {kind!r} is not one of I, U, F'
            raise DecodeError(msg)
        if size not in _VALID_SIZES[kind]:
            msg = f'PCD field {name!r}: SIZE {size} is not valid for TYPE {kind} (expected one of {_VALID_SIZES[kind]})'
            raise DecodeError(msg)
        if count < 1:
            msg = f'PCD field {name!r}: COUNT must be >= 1, got {count}'
            raise DecodeError(msg)
    width = _ints('WIDTH', entries.get('WIDTH', ['-1']))[0]
    height = _ints('HEIGHT', entries.get('HEIGHT', ['1']))[0]
    if 'POINTS' in entries:
        points = _ints('POINTS', entries['POINTS'])[0]
    elif width >= 0:
        points = width * height
    else:
        msg = 'PCD header has neither POINTS nor WIDTH; cannot tell how many points follow'
        raise DecodeError(msg)
    if points < 0 or (width >= 0 and width * height != points):
        msg = f'PCD header: POINTS {points} does not equal WIDTH {width} x HEIGHT {height}'
        raise DecodeError(msg)
    data_kind = entries['DATA'][0].lower() if entries['DATA'] else ''
    if data_kind not in _DATA_KINDS:
        msg = f'PCD DATA {data_kind!r} is not one of {_DATA_KINDS}'
        raise DecodeError(msg)
    try:
        viewpoint = tuple(float(v) for v in entries.get('VIEWPOINT', ['0', '0', '0', '1', '0', '0', '0']))
    except ValueError as err:
        msg = f'PCD header VIEWPOINT: expected 7 numbers, got {entries["VIEWPOINT"]}'
        raise DecodeError(msg) from err
    return PcdHeader(
        version=' '.join(entries.get('VERSION', ['0.7'])),
        fields=tuple(fields),
        sizes=sizes,
        types=types,
        counts=counts,
        width=width if width >= 0 else points,
        height=height,
        viewpoint=viewpoint,
        points=points,
        data=data_kind,
    )


def _parse_ascii(header: PcdHeader, body: bytes) -> np.ndarray:
    dtype = header.dtype
    columns = sum(header.counts)
    try:
        tokens = np.array(body.decode('ascii').split())
    except UnicodeDecodeError as err:
        msg = 'PCD ascii body contains bytes that are not ASCII text'
        raise DecodeError(msg) from err
    expected = header.points * columns
    if tokens.size != expected:
        msg = (
            f'PCD ascii body holds {tokens.size} values, expected {header.points} points x {columns} '
            f'values = {expected} (file truncated or POINTS wrong)'
        )
        raise DecodeError(msg)
    table = tokens.reshape(header.points, columns)
    out = np.zeros(header.points, dtype=dtype)
    col = 0
    for name, count in zip(header.fields, header.counts, strict=True):
        base = dtype[name].base
        cells = table[:, col : col + count]
        col += count
        try:
            values = cells.astype(np.float64).astype(base) if base.kind == 'f' else cells.astype(np.int64).astype(base)
        except ValueError as err:
            msg = f'PCD ascii field {name!r}: values are not {base.name} numbers ({err})'
            raise DecodeError(msg) from err
        out[name] = values[:, 0] if count == 1 else values
    return out


def _parse_binary(header: PcdHeader, body: bytes) -> np.ndarray:
    dtype = header.dtype
    expected = header.points * dtype.itemsize
    if len(body) < expected:
        msg = (
            f'PCD binary body has {len(body)} bytes, expected {header.points} points x {dtype.itemsize} '
            f'bytes = {expected} (file truncated)'
        )
        raise DecodeError(msg)
    # Copy so the array owns writable memory, not the caller's bytes.
    return np.frombuffer(body, dtype=dtype, count=header.points).copy()


def _parse_binary_compressed(header: PcdHeader, body: bytes) -> np.ndarray:
    if len(body) < 8:
        msg = f'PCD binary_compressed body has {len(body)} bytes, expected at least the 8-byte size prefix'
        raise DecodeError(msg)
    compressed_size, raw_size = (int(v) for v in np.frombuffer(body[:8], dtype='<u4'))
    dtype = header.dtype
    expected = header.points * dtype.itemsize
    if raw_size != expected:
        msg = (
            f'PCD binary_compressed: uncompressed size {raw_size} does not match {header.points} points x '
            f'{dtype.itemsize} bytes = {expected}'
        )
        raise DecodeError(msg)
    payload = body[8 : 8 + compressed_size]
    if len(payload) != compressed_size:
        msg = f'PCD binary_compressed: expected {compressed_size} compressed bytes, got {len(payload)} (file truncated)'
        raise DecodeError(msg)
    raw = lzf_decompress(payload, raw_size) if header.points else b''
    out = np.zeros(header.points, dtype=dtype)
    offset = 0
    # Decompressed data is field-major: all values of field 0, then field 1, ...
    for name, count in zip(header.fields, header.counts, strict=True):
        base = dtype[name].base
        nbytes = header.points * count * base.itemsize
        values = np.frombuffer(raw, dtype=base, count=header.points * count, offset=offset)
        offset += nbytes
        out[name] = values if count == 1 else values.reshape(header.points, count)
    return out


def parse_pcd(data: bytes) -> tuple[PcdHeader, np.ndarray]:
    """Parse a PCD file's bytes.

    Args:
        data: The whole file.

    Returns:
        ``(header, cloud)``: the header and a structured array of ``header.points``
        records, one named field per PCD field (fields with COUNT > 1 are sub-arrays;
        padding fields ``_`` are named ``_pad<i>``).

    Raises:
        DecodeError: The header is malformed or the body is truncated or inconsistent.
    """
    lines, offset = _split_header(data)
    header = _parse_header(lines)
    body = data[offset:]
    if header.data == 'ascii':
        return header, _parse_ascii(header, body)
    if header.data == 'binary':
        return header, _parse_binary(header, body)
    return header, _parse_binary_compressed(header, body)


def lzf_decompress(data: bytes, expected_size: int) -> bytes:
    """Decompress an LZF stream (liblzf format, as PCL's binary_compressed uses).

    The loop runs once per LZF token (a literal run of up to 32 bytes or a back
    reference), not per byte; LZF has no vectorised form.

    Args:
        data: The compressed bytes.
        expected_size: The size the output must have.

    Returns:
        The decompressed bytes.

    Raises:
        DecodeError: The stream is corrupt or does not decompress to ``expected_size`` bytes.
    """
    out = bytearray()
    ip, n = 0, len(data)
    while ip < n:
        ctrl = data[ip]
        ip += 1
        if ctrl < 32:
            run = ctrl + 1
            if ip + run > n:
                msg = f'LZF stream corrupt: literal run of {run} bytes at byte {ip - 1} passes the end ({n} bytes)'
                raise DecodeError(msg)
            out += data[ip : ip + run]
            ip += run
            continue
        length = ctrl >> 5
        if length == 7:
            if ip >= n:
                msg = 'LZF stream corrupt: back reference cut off at the end'
                raise DecodeError(msg)
            length += data[ip]
            ip += 1
        if ip >= n:
            msg = 'LZF stream corrupt: back reference cut off at the end'
            raise DecodeError(msg)
        distance = ((ctrl & 0x1F) << 8) + data[ip] + 1
        ip += 1
        length += 2
        start = len(out) - distance
        if start < 0:
            msg = f'LZF stream corrupt: back reference {distance} bytes before the start of the output'
            raise DecodeError(msg)
        if distance >= length:
            out += out[start : start + length]
        else:
            # Overlapping copy repeats the last `distance` bytes.
            pattern = bytes(out[start:])
            out += (pattern * (length // distance + 1))[:length]
        if len(out) > expected_size:
            break
    if len(out) != expected_size:
        msg = f'LZF stream decompressed to {len(out)} bytes, expected {expected_size}'
        raise DecodeError(msg)
    return bytes(out)


def unpack_rgb(values: np.ndarray) -> np.ndarray:
    """Colours (N, 3) uint8 from a PCL packed ``rgb`` / ``rgba`` field (float32 or uint32 bits)."""
    v = np.ascontiguousarray(values).reshape(-1)
    if v.dtype.itemsize != 4:
        msg = f'packed rgb field must have 4-byte values, got dtype {v.dtype}'
        raise DecodeError(msg)
    bits = v.view(np.uint32)
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF], axis=1).astype(np.uint8)


def encode_pcd(cloud: np.ndarray, data: str = 'binary', viewpoint: tuple[float, ...] = (0, 0, 0, 1, 0, 0, 0)) -> bytes:
    """Write a structured array as a PCD v0.7 file (``data``: 'ascii' or 'binary').

    Args:
        cloud: 1-D structured array; each field is a scalar or a 1-D sub-array of a
            1/2/4/8-byte integer or 4/8-byte float type.
        data: Body encoding.
        viewpoint: The 7 VIEWPOINT numbers (translation, quaternion w x y z).

    Returns:
        The file bytes.

    Raises:
        DecodeError: The array cannot be expressed as PCD fields.
    """
    if data not in ('ascii', 'binary'):
        msg = f"encode_pcd writes data='ascii' or 'binary', got {data!r}"
        raise DecodeError(msg)
    if cloud.dtype.names is None or cloud.ndim != 1:
        msg = f'encode_pcd needs a 1-D structured array, got dtype {cloud.dtype} with shape {cloud.shape}'
        raise DecodeError(msg)
    names, sizes, types, counts, fmts = [], [], [], [], []
    for name in cloud.dtype.names:
        ftype = cloud.dtype[name]
        base = ftype.base
        kind = {'i': 'I', 'u': 'U', 'f': 'F'}.get(base.kind)
        if kind is None or base.itemsize not in _VALID_SIZES[kind] or len(ftype.shape) > 1:
            msg = f'encode_pcd: field {name!r} of dtype {ftype} has no PCD type'
            raise DecodeError(msg)
        count = int(np.prod(ftype.shape)) if ftype.shape else 1
        names.append(name)
        sizes.append(str(base.itemsize))
        types.append(kind)
        counts.append(str(count))
        fmts += ['%.9g' if base == np.float32 else '%.17g' if kind == 'F' else '%d'] * count
    header = (
        '# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n'
        f'FIELDS {" ".join(names)}\nSIZE {" ".join(sizes)}\nTYPE {" ".join(types)}\nCOUNT {" ".join(counts)}\n'
        f'WIDTH {len(cloud)}\nHEIGHT 1\nVIEWPOINT {" ".join(f"{v:g}" for v in viewpoint)}\n'
        f'POINTS {len(cloud)}\nDATA {data}\n'
    ).encode('ascii')
    if data == 'binary':
        packed = np.dtype([(n, cloud.dtype[n].newbyteorder('<')) for n in names])
        return header + cloud.astype(packed).tobytes()
    columns = [np.asarray(cloud[n]).reshape(len(cloud), -1).astype(np.float64) for n in names]
    table = np.concatenate(columns, axis=1) if columns else np.zeros((len(cloud), 0))
    text = io.StringIO()
    np.savetxt(text, table, fmt=fmts, delimiter=' ')
    return header + text.getvalue().encode('ascii')
