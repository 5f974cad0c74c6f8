"""The model card: everything the runtime needs to know about an exported model.

The exporter writes the card as JSON into the ONNX file's ``metadata_props``
(key :data:`CARD_METADATA_KEY`) and beside it as ``<name>.json``. The node takes
the grid, image size, normalisation and default camera from the card, so
preprocessing cannot drift from training, and every backend checks its
engine's real input/output names, shapes and dtypes against it.

JSON shape (all keys required, no others)::

    {"name": "anovox_tiny", "version": "0.1.0",
     "input_spec": {...InputSpec.to_dict()...},
     "camera": {"width": 768, "height": 512, "fx": 384.0, ...},
     "T_cam_lidar": [[...4 floats...] x 4],
     "classes": ["unlabeled", "road", ...],
     "inputs": {"image": {"shape": [1, 3, 256, 384], "dtype": "float32"}, ...},
     "outputs": {"occupancy": {"shape": [1, 160, 160, 16], "dtype": "float32"}, ...},
     "calibration": {...Calibration.to_dict()...},
     "training_config": {...}, "data_hash": "...", "onnx_sha256": "<64 hex>"}

``calibration`` (:mod:`anovox_perception.core.calibration`) is the decision rule: the occupancy
threshold the runtime selects voxels with and the score rule the graph computes. Cards
written before it existed are refused with the command that adds it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anovox_perception.core.calibration import Calibration, CalibrationError, read_calibration
from anovox_perception.core.errors import GeometryError, ModelCardError
from anovox_perception.core.geometry import CameraModel
from anovox_perception.core.onnx_file import read_onnx_file
from anovox_perception.core.preprocess import InputSpec, input_shapes

__all__ = [
    'CARD_METADATA_KEY',
    'TENSOR_DTYPES',
    'ModelCard',
    'TensorSpec',
    'card_path_for',
    'load_card',
    'verify_onnx_against_card',
]

CARD_METADATA_KEY = 'anovox_perception.model_card'
# numpy dtype names a model tensor may have (those TensorRT and ONNX Runtime both bind).
TENSOR_DTYPES = ('float32', 'float16', 'int32', 'int64', 'uint8', 'bool')
_FIELDS = (
    'name',
    'version',
    'input_spec',
    'camera',
    'T_cam_lidar',
    'classes',
    'inputs',
    'outputs',
    'calibration',
    'training_config',
    'data_hash',
    'onnx_sha256',
)
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
_SHA256_RE = re.compile(r'^[0-9a-f]{64}$')


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: static shape and numpy dtype name."""

    shape: tuple[int, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {'shape': list(self.shape), 'dtype': self.dtype}


class _Fields:
    """Parses one card's fields; every error names the source and the field."""

    def __init__(self, data: Mapping[str, Any], source: str) -> None:
        self.data = data
        self.source = source

    def fail(self, field: str, problem: str) -> ModelCardError:
        return ModelCardError(f'model card {self.source}: field {field!r}: {problem}')

    def text(self, field: str, pattern: re.Pattern[str] | None = None) -> str:
        value = self.data[field]
        if not isinstance(value, str) or not value:
            raise self.fail(field, f'expected a non-empty string, got {value!r}')
        if pattern is not None and not pattern.match(value):
            raise self.fail(field, f'{value!r} does not match {pattern.pattern}')
        return value

    def input_spec(self) -> dict[str, Any]:
        value = self.mapping('input_spec')
        try:
            InputSpec.from_dict(value)
        except (ValueError, TypeError, KeyError) as err:  # ConfigError and GeometryError are ValueErrors
            raise self.fail('input_spec', str(err)) from None
        return value

    def mapping(self, field: str) -> dict[str, Any]:
        value = self.data[field]
        if not isinstance(value, Mapping):
            raise self.fail(field, f'expected a JSON object, got {type(value).__name__}')
        return dict(value)

    def tensors(self, field: str) -> dict[str, TensorSpec]:
        value = self.mapping(field)
        if not value:
            raise self.fail(field, 'expected at least one tensor')
        specs = {}
        for name, spec in value.items():
            where = f'{field}.{name}'
            if not isinstance(spec, Mapping) or set(spec) != {'shape', 'dtype'}:
                raise self.fail(where, f'expected {{"shape": [...], "dtype": "..."}}, got {spec!r}')
            shape = spec['shape']
            if not isinstance(shape, list | tuple) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
            ):
                raise self.fail(where, f'shape must be a list of positive integers (static shapes), got {shape!r}')
            if spec['dtype'] not in TENSOR_DTYPES:
                raise self.fail(where, f'dtype {spec["dtype"]!r} is not one of {TENSOR_DTYPES}')
            specs[str(name)] = TensorSpec(tuple(shape), spec['dtype'])
        return specs

    def camera(self) -> CameraModel:
        try:
            return CameraModel.from_dict(self.mapping('camera'))
        except (GeometryError, TypeError, ValueError) as err:
            raise self.fail('camera', str(err)) from None

    def transform(self) -> tuple[tuple[float, ...], ...]:
        try:
            matrix = np.asarray(self.data['T_cam_lidar'], dtype=np.float64)
        except (TypeError, ValueError):
            raise self.fail('T_cam_lidar', 'expected a 4x4 list of numbers') from None
        if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
            raise self.fail('T_cam_lidar', f'expected a finite 4x4 matrix, got shape {matrix.shape}')
        if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
            raise self.fail('T_cam_lidar', f'last row must be [0, 0, 0, 1], got {matrix[3].tolist()}')
        rotation = matrix[:3, :3]
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4) or np.linalg.det(rotation) < 0:
            raise self.fail('T_cam_lidar', 'the 3x3 block is not a rotation (orthonormal, det +1)')
        return tuple(tuple(float(v) for v in row) for row in matrix)

    def classes(self) -> tuple[str, ...]:
        value = self.data['classes']
        if not isinstance(value, list | tuple) or not value:
            raise self.fail('classes', f'expected a non-empty list of names, got {value!r}')
        if not all(isinstance(c, str) and c for c in value):
            raise self.fail('classes', 'every class name must be a non-empty string')
        if len(set(value)) != len(value):
            raise self.fail('classes', 'class names must be unique')
        return tuple(value)


@dataclass(frozen=True)
class ModelCard:
    """A validated model card (see the module docstring for the JSON shape).

    Attributes:
        name: Model name, also the file stem (``<name>.onnx``, ``<name>.json``).
        version: The project version that exported the model.
        input_spec: ``InputSpec.to_dict()`` of the preprocessing the model expects, including
            ``lidar_intensity`` (``'ignore'``: the intensity BEV channel is zeroed; absent: ``'use'``).
        camera: Default camera model (used when no CameraInfo arrives).
        T_cam_lidar: Default LiDAR -> camera optical transform, 4x4 rows.
        classes: Class names of the model's semantic head, in output order.
        inputs: Input name -> spec, in the graph's input order.
        outputs: Output name -> spec, in the graph's output order.
        calibration: The occupancy threshold and the score rule chosen after training, and their data.
        training_config: The full training configuration.
        data_hash: Hash of the training data (``none`` for untrained models).
        onnx_sha256: sha256 of the ONNX file without the card record.
    """

    name: str
    version: str
    input_spec: dict[str, Any]
    camera: CameraModel
    T_cam_lidar: tuple[tuple[float, ...], ...]
    classes: tuple[str, ...]
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    calibration: Calibration
    training_config: dict[str, Any]
    data_hash: str
    onnx_sha256: str

    @classmethod
    def from_dict(cls, data: Any, source: str = '<dict>', model_file: str | None = None) -> ModelCard:
        """Validate and build a card from its JSON object.

        Args:
            data: The decoded JSON object.
            source: Where it came from (a file path), for error messages.
            model_file: The model file to name when the card lacks its calibration (default: ``source``).

        Raises:
            ModelCardError: A field is missing, unknown or invalid; the message
                names the source and the field.
        """
        if not isinstance(data, Mapping):
            msg = f'model card {source}: expected a JSON object, got {type(data).__name__}'
            raise ModelCardError(msg)
        try:
            calibration = read_calibration(data, f'model card {source}', model_file or source)
        except CalibrationError as err:
            raise ModelCardError(str(err)) from None
        missing = [f for f in _FIELDS if f not in data]
        unknown = sorted(set(data) - set(_FIELDS))
        if missing or unknown:
            msg = f'model card {source}: missing fields {missing}, unknown fields {unknown}'
            raise ModelCardError(msg)
        fields = _Fields(data, source)
        card = cls(
            name=fields.text('name', _NAME_RE),
            version=fields.text('version'),
            input_spec=fields.input_spec(),
            camera=fields.camera(),
            T_cam_lidar=fields.transform(),
            classes=fields.classes(),
            inputs=fields.tensors('inputs'),
            outputs=fields.tensors('outputs'),
            calibration=calibration,
            training_config=fields.mapping('training_config'),
            data_hash=fields.text('data_hash'),
            onnx_sha256=fields.text('onnx_sha256', _SHA256_RE),
        )
        overlap = set(card.inputs) & set(card.outputs)
        if overlap:
            raise fields.fail('outputs', f'names {sorted(overlap)} are also inputs')
        return card

    @classmethod
    def from_json(cls, text: str | bytes, source: str = '<json>', model_file: str | None = None) -> ModelCard:
        """Parse and validate a card from JSON text (``model_file``: see :meth:`from_dict`)."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            msg = f'model card {source}: not valid JSON ({err})'
            raise ModelCardError(msg) from None
        return cls.from_dict(data, source, model_file)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (inverse of :meth:`from_dict`)."""
        return {
            'name': self.name,
            'version': self.version,
            'input_spec': self.input_spec,
            'camera': self.camera.to_dict(),
            'T_cam_lidar': [list(row) for row in self.T_cam_lidar],
            'classes': list(self.classes),
            'inputs': {k: v.to_dict() for k, v in self.inputs.items()},
            'outputs': {k: v.to_dict() for k, v in self.outputs.items()},
            'calibration': self.calibration.to_dict(),
            'training_config': self.training_config,
            'data_hash': self.data_hash,
            'onnx_sha256': self.onnx_sha256,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @property
    def T_cam_lidar_array(self) -> np.ndarray:
        """T_cam_lidar as a (4, 4) float64 array."""
        return np.array(self.T_cam_lidar, dtype=np.float64)

    def make_input_spec(self) -> InputSpec:
        """The card's :class:`InputSpec` (validated when the card was built)."""
        return InputSpec.from_dict(self.input_spec)

    @property
    def lidar_intensity(self) -> str:
        """``'use'`` or ``'ignore'``: whether the model reads LiDAR intensity (cards without the key: ``'use'``)."""
        return self.make_input_spec().lidar_intensity

    def check_preprocessing(self, where: str) -> None:
        """Check that the card's input tensors are what its ``input_spec`` makes.

        The runtime builds every input from ``input_spec`` (preprocess.input_shapes); a card whose
        ``inputs`` disagree (edited by hand, or written by another preprocessing version) would
        feed the model tensors it was not trained on, or fail on the first frame.

        Args:
            where: The model file, for the message.

        Raises:
            ModelCardError: One line listing every mismatch.
        """
        made = input_shapes(self.make_input_spec())
        problems = [f'input {name!r} is not made by the preprocessing' for name in self.inputs if name not in made]
        problems += [
            f'input {name!r} shape {list(spec.shape)} != {list(made[name])} from input_spec'
            for name, spec in self.inputs.items()
            if name in made and spec.shape != made[name]
        ]
        problems += [f'input {name!r} is missing' for name in made if name not in self.inputs]
        if problems:
            msg = (
                f'{where}: model card {self.name!r} does not match its preprocessing (input_spec): '
                + '; '.join(problems)
                + '; re-export the model with this version'
            )
            raise ModelCardError(msg)

    def check_io(
        self,
        inputs: Mapping[str, tuple[tuple[int | str | None, ...], str]],
        outputs: Mapping[str, tuple[tuple[int | str | None, ...], str]],
        where: str,
    ) -> None:
        """Check a loaded model's real I/O against the card.

        Args:
            inputs: Name -> (shape, numpy dtype name) as the backend reports them,
                in the backend's order. Dimensions that are not ints (symbolic)
                count as mismatches: the card promises static shapes.
            outputs: The same for outputs.
            where: What was loaded (backend and file), for the message.

        Raises:
            ModelCardError: Listing every mismatch.
        """
        problems = []
        for kind, expected, actual in (('input', self.inputs, inputs), ('output', self.outputs, outputs)):
            if list(actual) != list(expected):
                problems.append(f'{kind} names {list(actual)} != card {list(expected)}')
                continue
            for name, (shape, dtype) in actual.items():
                spec = expected[name]
                if tuple(shape) != spec.shape:
                    problems.append(f'{kind} {name!r} shape {list(shape)} != card {list(spec.shape)}')
                if dtype != spec.dtype:
                    problems.append(f'{kind} {name!r} dtype {dtype} != card {spec.dtype}')
        if problems:
            msg = f'{where} does not match model card {self.name!r}: ' + '; '.join(problems)
            raise ModelCardError(msg)


def card_path_for(onnx_path: str | Path) -> Path:
    """The sidecar card path of an ONNX file: ``<stem>.json`` beside it."""
    return Path(onnx_path).with_suffix('.json')


def load_card(path: str | Path, *, verify: bool = False) -> ModelCard:
    """Load the model card of an ONNX model (or a card JSON file).

    For ``.onnx`` files the card comes from the metadata (read without
    decoding the graph's weights) and falls back to ``<stem>.json`` beside it.

    Args:
        path: ``.onnx`` model or ``.json`` card.
        verify: For ``.onnx``, also check the file's graph hash against the card
            (reads the whole file once; catches modified or corrupt models).

    Returns:
        The validated card.

    Raises:
        ModelCardError: No card, an invalid card, a corrupt or truncated ONNX file,
            or (``verify``) a graph that does not match the card.
    """
    path = Path(path)
    if path.suffix == '.json':
        return _load_sidecar(path)
    info = read_onnx_file(path, hash_graph=verify, exclude_keys=[CARD_METADATA_KEY])
    if CARD_METADATA_KEY in info.metadata:
        card = ModelCard.from_json(info.metadata[CARD_METADATA_KEY], f'{path} (ONNX metadata)', str(path))
    else:
        sidecar = card_path_for(path)
        if not sidecar.is_file():
            msg = (
                f'{path} has no model card: no ONNX metadata key {CARD_METADATA_KEY!r} and no {sidecar.name} '
                'beside it; export models with python -m anovox_training.export'
            )
            raise ModelCardError(msg)
        card = _load_sidecar(sidecar, model_file=str(path))
    if verify:
        _check_hash(path, card, info.graph_sha256)
    return card


def verify_onnx_against_card(onnx_path: str | Path, card: ModelCard) -> str:
    """Check that an ONNX file's graph hash matches ``card.onnx_sha256``.

    Returns:
        The graph sha256.

    Raises:
        ModelCardError: Corrupt, truncated or modified file.
    """
    info = read_onnx_file(onnx_path, hash_graph=True, exclude_keys=[CARD_METADATA_KEY])
    return _check_hash(Path(onnx_path), card, info.graph_sha256)


def _check_hash(path: Path, card: ModelCard, digest: str | None) -> str:
    if digest != card.onnx_sha256:
        msg = (
            f'ONNX model {path} does not match model card {card.name!r}: graph sha256 {digest} '
            f'!= card {card.onnx_sha256}; the file was modified or corrupted, re-export or re-copy it'
        )
        raise ModelCardError(msg)
    return digest


def _load_sidecar(path: Path, model_file: str | None = None) -> ModelCard:
    try:
        text = path.read_bytes()
    except OSError as err:
        msg = f'model card {path}: cannot read ({err.strerror})'
        raise ModelCardError(msg) from None
    return ModelCard.from_json(text, str(path), model_file)
