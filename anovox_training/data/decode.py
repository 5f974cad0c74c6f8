"""Bytes and loaded files -> typed numpy arrays, for every AnoVox file kind.

Reading (finding and opening files) lives in reader.py; these functions only turn
bytes or raw arrays into the arrays of `AnoVoxFrame` and check them. They raise
`DecodeError` saying what was expected; the reader adds scenario, frame and file.

Encodings (both AnoVox layouts):
- RGB: PNG, 3 or 4 channels, 8 bit.
- Depth: CARLA linear encoding, metres = 1000 * (R + 256 G + 65536 B) / (256^3 - 1).
- Semantic (Layout B, CARLA raw): label id in the R channel, or a single-channel
  image of ids (what AnoVox's generator actually saves).
- Semantic (Layout A, colour-coded): Cityscapes palette plus AnoVox's anomaly colours.
- Instance (CARLA raw): R = label, G + 256 B = instance id.
- Point clouds: .npy (N, 4) or .pcd with x, y, z and intensity / label / rgb.
- Voxel grids: .npy (M, 4) integer [ix, iy, iz, label].
- csv: ``key ; value`` lines; values are Python literals, numbers or numpy-style arrays.
"""

from __future__ import annotations

import ast
import io
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from anovox_perception.core.errors import DecodeError
from anovox_perception.core.geometry import ANOVOX_GRID_SHAPE
from anovox_training.data.frame import AnomalyInfo
from anovox_training.data.labels import (
    ANOMALY_CATEGORIES,
    ANOMALY_COLOR,
    ANOMALY_LABELS,
    CATEGORY_TO_LABEL,
    EGO_LABEL,
    GENERIC_ANOMALY_LABEL,
    LABEL_COLORS,
    LABEL_TO_CATEGORY,
)
from anovox_training.data.pcd import parse_pcd, unpack_rgb

__all__ = [
    'PCD_INTENSITY_FIELDS',
    'SEMANTIC_PALETTE',
    'MissingIntensityWarning',
    'PcdPoints',
    'anomalies_from_csv',
    'as_matrix4',
    'as_vector',
    'carla_depth_m',
    'decode_image',
    'decode_json',
    'decode_npy',
    'instance_from_raw',
    'parse_kv_csv',
    'parse_value',
    'points_from_array',
    'points_from_pcd',
    'read_pcd_points',
    'rgb_from_image',
    'semantic_from_colors',
    'semantic_from_raw',
    'voxels_from_array',
]

_DEPTH_SCALE_M = 1000.0 / (256**3 - 1)


def _palette() -> dict[tuple[int, int, int], int]:
    """Colour -> label id of colour-coded AnoVox semantic images (Layout A)."""
    colours = {colour: label for label, colour in LABEL_COLORS.items() if label <= 28}
    colours[ANOMALY_COLOR] = GENERIC_ANOMALY_LABEL
    # AnoVox's generator tints each anomaly category (245, id, 0); one benchmark palette
    # gives the first four categories their own colours.
    for label in CATEGORY_TO_LABEL.values():
        colours[(245, label, 0)] = label
    colours.update({(250, 128, 114): 29, (255, 36, 0): 30, (224, 17, 95): 31, (184, 15, 10): 32})
    # Agent-mode actors (112..119) are their class colour nudged by one; the ego is (0, 0, 1) or white.
    colours.update(
        {
            (220, 20, 61): 112,
            (255, 0, 1): 113,
            (3, 0, 143): 114,
            (0, 0, 71): 115,
            (0, 60, 101): 116,
            (0, 0, 231): 118,
            (119, 11, 33): 119,
            (0, 0, 1): EGO_LABEL,
            (255, 255, 255): EGO_LABEL,
        }
    )
    return colours


SEMANTIC_PALETTE: dict[tuple[int, int, int], int] = _palette()
_PALETTE_KEYS = np.array(sorted((r << 16) | (g << 8) | b for r, g, b in SEMANTIC_PALETTE), dtype=np.int64)
_PALETTE_LABELS = np.array(
    [SEMANTIC_PALETTE[((k >> 16) & 255, (k >> 8) & 255, k & 255)] for k in _PALETTE_KEYS.tolist()], dtype=np.uint8
)


# --- images -------------------------------------------------------------------------------------


def decode_image(data: bytes) -> np.ndarray:
    """Decode PNG (or any PIL-readable) bytes to a uint8 array (H, W) or (H, W, C).

    Raises:
        DecodeError: The bytes are not a complete image, or not 8 bits per channel.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode == 'P':
                img = img.convert('RGBA' if 'transparency' in img.info else 'RGB')
            array = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        msg = f'not a readable image ({len(data)} bytes): {err}'
        raise DecodeError(msg) from err
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype != np.uint8:
        msg = f'expected an 8-bit image, got pixel type {array.dtype} (PIL mode {img.mode})'
        raise DecodeError(msg)
    return array


def _require_channels(image: np.ndarray, what: str) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        msg = f'{what}: expected an (H, W, 3) or (H, W, 4) uint8 image, got shape {image.shape} dtype {image.dtype}'
        raise DecodeError(msg)
    return image


def rgb_from_image(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an RGB or RGBA image (alpha dropped)."""
    return np.ascontiguousarray(_require_channels(image, 'RGB image')[:, :, :3])


def carla_depth_m(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 metres from a CARLA depth image (R + 256 G + 65536 B over 256^3 - 1 of 1000 m)."""
    img = _require_channels(image, 'CARLA depth image').astype(np.float64)
    depth = (img[:, :, 0] + 256.0 * img[:, :, 1] + 65536.0 * img[:, :, 2]) * _DEPTH_SCALE_M
    return depth.astype(np.float32)


def semantic_from_raw(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 label ids from a CARLA raw semantic image (ids in R) or a single-channel id image."""
    if image.dtype == np.uint8 and image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 2:
        # PIL 'LA': ids with an alpha channel.
        return np.ascontiguousarray(image[:, :, 0])
    return np.ascontiguousarray(_require_channels(image, 'semantic image')[:, :, 0])


def semantic_from_colors(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 label ids from a colour-coded semantic image (AnoVox Layout A).

    Single-channel images are taken as label ids already.

    Raises:
        DecodeError: Some pixels have colours outside `SEMANTIC_PALETTE` (names up to five).
    """
    if image.dtype == np.uint8 and image.ndim == 2:
        return np.ascontiguousarray(image)
    rgb = _require_channels(image, 'colour-coded semantic image')[:, :, :3].astype(np.int64)
    keys = (rgb[:, :, 0] << 16) | (rgb[:, :, 1] << 8) | rgb[:, :, 2]
    pos = np.clip(np.searchsorted(_PALETTE_KEYS, keys), 0, len(_PALETTE_KEYS) - 1)
    known = _PALETTE_KEYS[pos] == keys
    if not known.all():
        bad, counts = np.unique(keys[~known], return_counts=True)
        order = np.argsort(-counts)[:5]
        pairs = zip(bad[order].tolist(), counts[order].tolist(), strict=True)
        shown = ', '.join(f'({k >> 16}, {(k >> 8) & 255}, {k & 255}) x{c}' for k, c in pairs)
        msg = (
            f'{int((~known).sum())} pixels have colours outside the AnoVox semantic palette '
            f'(Cityscapes + anomaly (245, 0, 0)), e.g. {shown}'
        )
        raise DecodeError(msg)
    return _PALETTE_LABELS[pos]


def instance_from_raw(image: np.ndarray) -> np.ndarray:
    """(H, W) int32 instance ids from a CARLA instance image (G + 256 B), or a single-channel id image."""
    if image.ndim == 2 and image.dtype.kind in 'ui':
        return image.astype(np.int32)
    img = _require_channels(image, 'instance image').astype(np.int32)
    return img[:, :, 1] + 256 * img[:, :, 2]


# --- arrays and point clouds --------------------------------------------------------------------


def decode_npy(data: bytes) -> np.ndarray:
    """Load .npy bytes (no pickles).

    Raises:
        DecodeError: Not a complete .npy array (truncated, wrong magic, object array).
    """
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        msg = f'not a readable .npy array ({len(data)} bytes): {err}'
        raise DecodeError(msg) from err
    if not isinstance(array, np.ndarray):
        msg = f'expected a single .npy array, got {type(array).__name__} (an .npz archive?)'
        raise DecodeError(msg)
    return array


def points_from_array(array: np.ndarray, *, negate_y: bool, labels: bool = False) -> np.ndarray:
    """(N, 4) float32 x, y, z, intensity (or label) from a stored (N, 4) point array.

    Args:
        array: Stored points, any real dtype (AnoVox writes float32; its semantic
            LiDAR comes out float64 because labels are concatenated as uint32).
        negate_y: Flip the sign of y (stored CARLA-handed y -> REP-103).
        labels: The 4th column holds label ids (whole numbers 0..65535).

    Raises:
        DecodeError: Wrong shape or dtype, non-finite coordinates, or bad label values.
    """
    what = 'semantic point cloud' if labels else 'point cloud'
    if array.ndim != 2 or array.shape[1] != 4 or array.dtype.kind not in 'fiu':
        fourth = 'label' if labels else 'intensity'
        msg = f'{what}: expected an (N, 4) numeric array [x, y, z, {fourth}], got shape {array.shape} {array.dtype}'
        raise DecodeError(msg)
    points = array.astype(np.float32)
    if not np.isfinite(points[:, :3]).all():
        bad = int((~np.isfinite(points[:, :3])).any(axis=1).sum())
        msg = f'{what}: {bad} of {len(points)} points have non-finite coordinates'
        raise DecodeError(msg)
    if labels:
        tags = array[:, 3]
        if tags.size and (not np.all(np.mod(tags, 1) == 0) or tags.min() < 0 or tags.max() > 65535):
            msg = f'{what}: labels must be whole numbers in 0..65535, got values in [{tags.min()}, {tags.max()}]'
            raise DecodeError(msg)
    if negate_y:
        points[:, 1] = -points[:, 1]
    return points


# Where a .pcd keeps the LiDAR return strength, in the order looked for; then a grey packed
# ``rgb`` / ``rgba`` (Open3D writes AnoVox's benchmark clouds with intensity as r = g = b).
PCD_INTENSITY_FIELDS = ('intensity', 'i', 'reflectivity', 'reflectance')
_PCD_COLOUR_FIELDS = ('rgb', 'rgba')


class MissingIntensityWarning(UserWarning):
    """A LiDAR .pcd without an intensity field: its intensity is read as 0."""


def _pcd_intensity(cloud: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """(N,) intensity of a parsed PCD and the field it came from, or (None, None) when there is none."""
    names = cloud.dtype.names or ()
    n = len(cloud)
    field = next((f for f in PCD_INTENSITY_FIELDS if f in names), None)
    if field is not None:
        return np.asarray(cloud[field], dtype=np.float64).reshape(n, -1)[:, 0], field
    field = next((f for f in _PCD_COLOUR_FIELDS if f in names), None)
    if field is not None:
        colours = unpack_rgb(np.asarray(cloud[field]).reshape(n, -1)[:, 0]).astype(np.float64)
        return colours.mean(axis=1) / 255.0, field
    return None, None


@dataclass(frozen=True)
class PcdPoints:
    """Points read from a .pcd, with where their 4th column came from.

    Attributes:
        points: (N, 4) float32 x, y, z, intensity (or label).
        value_field: the intensity (or label) field used; None when a plain cloud has
            no intensity field (its 4th column is 0).
        fields: every field of the file, in order.
    """

    points: np.ndarray
    value_field: str | None
    fields: tuple[str, ...]

    @property
    def missing_intensity_message(self) -> str:
        """What to warn about a cloud without an intensity field."""
        known = ', '.join([*PCD_INTENSITY_FIELDS, *_PCD_COLOUR_FIELDS])
        return f'PCD has no intensity field (looked for {known}); fields are {list(self.fields)}; intensity read as 0'


def read_pcd_points(data: bytes, *, negate_y: bool, labels: bool = False) -> PcdPoints:
    """Like :func:`points_from_pcd`, without the warning; says which field the 4th column came from.

    Raises:
        DecodeError: Malformed PCD, missing x/y/z, or no usable label field.
    """
    _, cloud = parse_pcd(data)
    names = cloud.dtype.names or ()
    missing = [axis for axis in 'xyz' if axis not in names]
    if missing:
        msg = f'PCD has no {"/".join(missing)} field; fields are {list(names)}'
        raise DecodeError(msg)
    n = len(cloud)
    if labels:
        field = next((f for f in ('label', 'ObjTag', 'tag', 'semantic') if f in names), None)
        if field is not None:
            fourth = np.asarray(cloud[field], dtype=np.float64).reshape(n)
        elif 'rgb' in names or 'rgba' in names:
            field = 'rgb' if 'rgb' in names else 'rgba'
            colours = unpack_rgb(cloud[field])
            fourth = semantic_from_colors(colours.reshape(1, n, 3)).reshape(n).astype(np.float64)
        else:
            msg = f'semantic PCD has no label field (label, ObjTag, tag, semantic or rgb); fields are {list(names)}'
            raise DecodeError(msg)
    else:
        intensity, field = _pcd_intensity(cloud)
        fourth = np.zeros(n) if intensity is None else intensity
    stacked = np.stack([np.asarray(cloud[a], dtype=np.float64).reshape(n) for a in 'xyz'] + [fourth], axis=1)
    return PcdPoints(points_from_array(stacked, negate_y=negate_y, labels=labels), field, tuple(names))


def points_from_pcd(data: bytes, *, negate_y: bool, labels: bool = False) -> np.ndarray:
    """(N, 4) float32 from PCD bytes: x, y, z and intensity, or label for semantic clouds.

    The 4th column comes from the first field present of: :data:`PCD_INTENSITY_FIELDS`
    or a grey packed ``rgb`` / ``rgba`` (mean of r, g, b / 255) for plain clouds, 0
    with a :class:`MissingIntensityWarning` when none is present; ``label`` / ``ObjTag`` /
    ``tag`` / ``semantic`` / packed ``rgb`` for semantic clouds (rgb is decoded with
    the AnoVox palette as Open3D-written benchmark clouds store colours).

    Raises:
        DecodeError: Malformed PCD, missing x/y/z, or no usable label field.
    """
    read = read_pcd_points(data, negate_y=negate_y, labels=labels)
    if read.value_field is None:
        warnings.warn(read.missing_intensity_message, MissingIntensityWarning, stacklevel=2)
    return read.points


def voxels_from_array(array: np.ndarray) -> np.ndarray:
    """(M, 4) uint16 [ix, iy, iz, label] from a stored voxel grid, checked against the AnoVox grid.

    Raises:
        DecodeError: Wrong shape, non-integer values, or indices outside 1000 x 1000 x 64.
    """
    if array.ndim != 2 or array.shape[1] != 4 or array.dtype.kind not in 'fiu':
        msg = f'voxel grid: expected an (M, 4) integer array [ix, iy, iz, label], got shape {array.shape} {array.dtype}'
        raise DecodeError(msg)
    if array.dtype.kind == 'f' and not np.all(np.mod(array, 1) == 0):
        msg = 'voxel grid: values must be whole numbers (indices and labels)'
        raise DecodeError(msg)
    if array.size:
        values = array.astype(np.int64)
        limits = np.array([*ANOVOX_GRID_SHAPE, 65536])
        low, high = values.min(axis=0), values.max(axis=0)
        if (low < 0).any() or (high >= limits).any():
            msg = (
                f'voxel grid: columns must lie in [0, {list(limits)}) (AnoVox grid {ANOVOX_GRID_SHAPE} and a label); '
                f'got min {low.tolist()} max {high.tolist()}'
            )
            raise DecodeError(msg)
    return array.astype(np.uint16)


# --- csv / json ---------------------------------------------------------------------------------

_NUMBER = r'[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)'
_ARRAY_TOKEN = re.compile(rf'\s*(\[|\]|\(|\)|,|{_NUMBER})', re.IGNORECASE)
_NUMBER_ONLY = re.compile(rf'^(?:{_NUMBER})$', re.IGNORECASE)


def _parse_numeric_nest(text: str) -> np.ndarray | None:
    """A bracketed nest of numbers (Python list/tuple or numpy print style) as float64, else None."""
    stack: list[list[Any]] = [[]]
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _ARRAY_TOKEN.match(text, pos)
        if m is None:
            return None
        tok = m.group(1)
        pos = m.end()
        if tok in '[(':
            stack.append([])
        elif tok in '])':
            if len(stack) < 2:
                return None
            inner = stack.pop()
            stack[-1].append(inner)
        elif tok != ',':
            stack[-1].append(float(tok))
    if len(stack) != 1 or len(stack[0]) != 1 or not isinstance(stack[0][0], list):
        return None
    try:
        return np.array(stack[0][0], dtype=np.float64)
    except ValueError:
        return None  # ragged


def parse_value(text: str) -> Any:
    """Parse one csv value: bool, None, int, float, numeric array, Python literal, else the stripped string."""
    s = text.strip()
    if s in ('True', 'False'):
        return s == 'True'
    if s == 'None':
        return None
    if _NUMBER_ONLY.match(s):
        try:
            return int(s)
        except ValueError:
            return float(s)
    if s[:1] in '[(':
        nest = _parse_numeric_nest(s)
        if nest is not None:
            return nest
        try:
            return ast.literal_eval(s)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return s
    return s


def _bracket_depth(text: str) -> int:
    return text.count('[') + text.count('(') - text.count(']') - text.count(')')


def parse_kv_csv(text: str) -> dict[str, Any]:
    """Parse AnoVox ``key ; value`` csv text into a dict of parsed values.

    A value whose brackets are still open continues on the next lines (numpy prints
    matrices over several lines). Blank lines are skipped.

    Raises:
        DecodeError: A line is not ``key ; value``, a key repeats, or brackets never close.
    """
    result: dict[str, Any] = {}
    key: str | None = None
    value = ''
    start_line = 0

    def finish() -> None:
        if key is None:
            return
        if _bracket_depth(value) != 0:
            msg = f'line {start_line}: value of {key!r} has unbalanced brackets: {value.strip()[:80]!r}'
            raise DecodeError(msg)
        result[key] = parse_value(value)

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if key is not None and _bracket_depth(value) > 0:
            value += ' ' + line
            continue
        name, sep, rest = line.partition(';')
        if not sep or not name.strip():
            msg = f'line {number}: expected "key ; value", got {line[:80]!r}'
            raise DecodeError(msg)
        finish()
        key, value, start_line = name.strip(), rest, number
        if key in result:
            msg = f'line {number}: key {key!r} appears twice'
            raise DecodeError(msg)
    finish()
    return result


def as_matrix4(value: Any, key: str) -> np.ndarray:
    """A parsed csv value as a finite (4, 4) float64 matrix.

    Raises:
        DecodeError: Not a 4x4 numeric matrix.
    """
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        msg = f'{key}: expected a 4x4 numeric matrix, got {str(value)[:80]!r}'
        raise DecodeError(msg) from err
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        msg = f'{key}: expected a finite 4x4 matrix, got shape {matrix.shape}'
        raise DecodeError(msg)
    return matrix


def as_vector(value: Any, size: int, key: str) -> np.ndarray:
    """A parsed csv value as a (size,) float64 vector (NaN allowed).

    Raises:
        DecodeError: Not ``size`` numbers.
    """
    try:
        vector = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        msg = f'{key}: expected {size} numbers, got {str(value)[:80]!r}'
        raise DecodeError(msg) from err
    if vector.shape != (size,):
        msg = f'{key}: expected {size} numbers, got {vector.size}'
        raise DecodeError(msg)
    return vector


def decode_json(data: bytes) -> Any:
    """Parse JSON bytes.

    Raises:
        DecodeError: Not UTF-8 JSON (says where parsing stopped).
    """
    try:
        return json.loads(data.decode('utf-8'))
    except UnicodeDecodeError as err:
        msg = f'not UTF-8 text: {err}'
        raise DecodeError(msg) from err
    except json.JSONDecodeError as err:
        msg = f'invalid JSON at line {err.lineno} column {err.colno}: {err.msg}'
        raise DecodeError(msg) from err


# --- anomaly csv --------------------------------------------------------------------------------

_SUFFIXED = re.compile(r'^(?P<key>.+)_(?P<index>\d+)$')
_NAN3 = (float('nan'),) * 3
# Keys that describe one object (this project's generator and AnoVox's); several objects repeat them suffixed _<k>.
_OBJECT_KEYS = ('category', 'anomaly_id', 'anomaly_type_id', 'semantic_tags')
# AnoVox's own keys: an object that has one gives its location (and yaw) in CARLA world coordinates.
_ANOVOX_KEYS = ('anomaly_type_id', 'semantic_tags')


def _anomaly_blocks(values: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per object: the unsuffixed keys, or the keys suffixed ``_<k>`` (``category_0``, ``location_1``, ...)."""
    if any(key in values for key in _OBJECT_KEYS):
        return [values]
    blocks: dict[int, dict[str, Any]] = {}
    for key, value in values.items():
        m = _SUFFIXED.match(key)
        if m is not None:
            blocks.setdefault(int(m['index']), {})[m['key']] = value
    return [blocks[i] for i in sorted(blocks) if any(key in blocks[i] for key in _OBJECT_KEYS)]


def _int_or(value: Any, default: int, key: str) -> int:
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        msg = f'{key}: expected an integer, got {value!r}'
        raise DecodeError(msg) from err
    if number != int(number):
        msg = f'{key}: expected an integer, got {value!r}'
        raise DecodeError(msg)
    return int(number)


def _category(block: dict[str, Any]) -> str:
    category = str(block['category']).strip().lower()
    if category not in ANOMALY_CATEGORIES:
        msg = f'category: expected one of {ANOMALY_CATEGORIES} or none, got {category!r}'
        raise DecodeError(msg)
    return category


def _label(block: dict[str, Any], default: int) -> int:
    label = _int_or(block.get('label'), default, 'label')
    if label not in ANOMALY_LABELS:
        msg = f'label: expected an anomaly label {sorted(ANOMALY_LABELS)}, got {label}'
        raise DecodeError(msg)
    return label


def _number(block: dict[str, Any], key: str) -> float:
    value = block.get(key, float('nan'))
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        msg = f'{key}: expected a number, got {value!r}'
        raise DecodeError(msg)
    return float(value)


def anomalies_from_csv(values: dict[str, Any], lidar_from_world_carla: np.ndarray | None = None) -> list[AnomalyInfo]:
    """Anomaly objects described by a parsed ANOMALY csv.

    Each object is one block of keys; several objects repeat the keys suffixed
    ``_<k>`` (``category_0``, ``location_1``, ...). A block takes one of two dialects:

    - AnoVox's (any block with ``anomaly_type_id`` or ``semantic_tags``, and blocks
      without ``category``): ``anomaly_id``, ``semantic_tags`` and ``location`` in
      CARLA world coordinates, brought into the LiDAR frame with
      ``lidar_from_world_carla`` (the inverse of the ACTION csv's lidar
      transformation matrix; NaN without it). Optional extra keys, as this project's
      generator writes them: ``category``, ``label``, ``size`` ([l, w, h] m; other
      values such as a CARLA prop's size class are ignored), ``yaw`` (CARLA world
      yaw, deg, converted to the LiDAR frame) and ``instance_id``. Without them the
      label comes from the semantic tags (100 when none is an anomaly id) and size
      and yaw are NaN.
    - Legacy (this project's generator before it wrote AnoVox's keys): ``category``,
      ``label``, ``location`` (LiDAR frame, m), ``size``, ``yaw_deg``, ``instance_id``.

    ``category ; none`` marks a frame without anomaly. A file with none of the object
    keys (AnoVox's vehicle dict of a sudden-braking scenario) is one generic anomaly.

    Args:
        values: Output of `parse_kv_csv`.
        lidar_from_world_carla: (4, 4) CARLA world -> LiDAR (CARLA axes) transform.

    Returns:
        One `AnomalyInfo` per object (empty for normality frames).

    Raises:
        DecodeError: Missing or malformed fields, or a category / label that is not an AnoVox anomaly.
    """
    blocks = _anomaly_blocks(values)
    if not blocks:
        return [_anovox_anomaly(values, lidar_from_world_carla)] if values else []
    anomalies = []
    for block in blocks:
        if 'category' in block and str(block['category']).strip().lower() == 'none':
            continue
        if 'category' in block and not any(key in block for key in _ANOVOX_KEYS):
            anomalies.append(_legacy_anomaly(block))
        else:
            anomalies.append(_anovox_anomaly(block, lidar_from_world_carla))
    return anomalies


def _legacy_anomaly(block: dict[str, Any]) -> AnomalyInfo:
    category = _category(block)
    label = _label(block, CATEGORY_TO_LABEL[category])
    for key in ('location', 'size'):
        if key not in block:
            msg = f'{key}: missing for the {category} anomaly; expected [x, y, z] metres'
            raise DecodeError(msg)
    return AnomalyInfo(
        category=category,
        label=label,
        location_m=as_vector(block['location'], 3, 'location'),
        size_m=as_vector(block['size'], 3, 'size'),
        yaw_deg=_number(block, 'yaw_deg'),
        instance_id=_int_or(block.get('instance_id', block.get('anomaly_id')), -1, 'instance_id'),
    )


def _anovox_anomaly(block: dict[str, Any], lidar_from_world_carla: np.ndarray | None) -> AnomalyInfo:
    tags = block.get('semantic_tags', [])
    tags = np.asarray(tags, dtype=np.float64).reshape(-1) if isinstance(tags, (list, tuple, np.ndarray)) else []
    tagged = next((int(t) for t in tags if int(t) in ANOMALY_LABELS), GENERIC_ANOMALY_LABEL)
    if 'category' in block:
        category = _category(block)
        label = _label(block, CATEGORY_TO_LABEL[category])
    else:
        label = _label(block, tagged)
        category = LABEL_TO_CATEGORY.get(label, 'unknown')
    location = np.array(_NAN3)
    yaw_deg = float('nan')
    world_yaw = _number(block, 'yaw')
    if lidar_from_world_carla is not None:
        rotation, translation = lidar_from_world_carla[:3, :3], lidar_from_world_carla[:3, 3]
        if 'location' in block:
            local = rotation @ as_vector(block['location'], 3, 'location') + translation
            location = local * np.array([1.0, -1.0, 1.0])  # CARLA y right -> REP-103 y left
        if np.isfinite(world_yaw):
            heading = rotation @ np.array([np.cos(np.radians(world_yaw)), np.sin(np.radians(world_yaw)), 0.0])
            yaw_deg = float(np.degrees(np.arctan2(-heading[1], heading[0])))
    size = block.get('size')
    return AnomalyInfo(
        category=category,
        label=label,
        location_m=location,
        size_m=as_vector(size, 3, 'size') if isinstance(size, (list, tuple, np.ndarray)) else np.array(_NAN3),
        yaw_deg=yaw_deg,
        instance_id=_int_or(block.get('instance_id', block.get('anomaly_id')), -1, 'instance_id'),
    )
