"""Model configuration: the architecture (sizes of the four stages), validated, with ``base`` and ``tiny`` presets.

The decision rule (occupancy threshold and score rule) is not part of it: it is chosen
after training and travels as the checkpoint's and model card's ``calibration``
(:mod:`anovox_perception.core.calibration`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from anovox_perception.core.calibration import is_smoothing_window
from anovox_perception.core.errors import ConfigError, GeometryError
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.preprocess import LIDAR_INTENSITY_MODES, InputSpec

__all__ = ['MODALITIES', 'NORMAL_CLASSES', 'SCORE_RULE_KEYS', 'ModelConfig', 'is_smoothing_window']

MODALITIES = ('fusion', 'lidar', 'camera')
# Keys of the score rule, which older model configs held: it is the calibration's now
# (chosen after training; training validates with eval.<key> until then).
SCORE_RULE_KEYS = ('semantic_weight', 'anomaly_temperature', 'score_smoothing')

# Normal (in-distribution) semantic classes the head predicts per voxel, as groups
# of CARLA label ids. Coarse on purpose: fine classes that look alike in 0.5 m
# voxels (road vs road line) would make the semantic confidence a poor anomaly cue.
NORMAL_CLASSES: dict[str, tuple[int, ...]] = {
    'road': (1, 24),
    'sidewalk': (2,),
    'terrain': (10, 23, 25, 27),
    'structure': (3, 4, 5, 26, 28),
    'pole': (6, 7, 8),
    'vegetation': (9,),
    'vehicle': (14, 15, 16, 17, 18, 19),
    'person': (12, 13),
    'other': (0, 11, 20, 21, 22),
}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and options of the detector.

    Attributes:
        name: Preset or user name, recorded in checkpoints and model cards.
        modality: 'fusion' (camera + LiDAR), 'lidar' (image branch off) or 'camera'
            (LiDAR BEV input ignored); the single-modality variants exist for evaluation.
        grid: Detector grid.
        image_width: Model image width (px), a multiple of 32.
        image_height: Model image height (px), a multiple of 32.
        image_layers: ResNet-18 stages kept: 2 (stride 8, 128 channels) or 3 (stride 16, 256 channels).
        image_weights: Optional path of a local torchvision ResNet-18 state dict; never downloaded.
        bev_widths: BEV CNN channels per scale, the first at full grid resolution, each
            next one at half the previous; the last scale holds the fusion queries.
        embed_dim: Attention width.
        attention_heads: Attention heads (must divide ``embed_dim``).
        lift_heights_m: LiDAR-frame heights (m) at which query cells sample the image.
        classes: Normal semantic classes predicted per voxel.
        voxel_refine: Hidden width of the head's per-voxel refiner (0: none); see ``head.py``.
            Off in the presets: on the shipped recipe it fitted the training categories
            better and the held-out ones worse (``models/README.md``).
        lidar_intensity: ``'use'`` the LiDAR intensity BEV channel, or ``'ignore'`` it (always 0,
            in training and at run time) for sensors whose intensity does not match the
            training data's (e.g. a real HDL-64E's reflectance vs the synthetic intensity).
            Carried to the runtime in the model card's ``input_spec``.
    """

    name: str = 'base'
    modality: str = 'fusion'
    grid: GridSpec = field(default_factory=GridSpec)
    image_width: int = 384
    image_height: int = 256
    image_layers: int = 3
    image_weights: str | None = None
    bev_widths: tuple[int, ...] = (16, 48, 96)
    embed_dim: int = 96
    attention_heads: int = 4
    lift_heights_m: tuple[float, ...] = (-1.5, -0.5, 0.5, 1.5)
    classes: tuple[str, ...] = tuple(NORMAL_CLASSES)
    voxel_refine: int = 0
    lidar_intensity: str = 'use'

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            msg = f'ModelConfig.modality must be one of {MODALITIES}, got {self.modality!r}'
            raise ConfigError(msg)
        if self.image_layers not in (2, 3):
            msg = f'ModelConfig.image_layers must be 2 or 3 (ResNet-18 stages kept), got {self.image_layers!r}'
            raise ConfigError(msg)
        for name in ('image_width', 'image_height'):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 32 or value % 32:
                msg = f'ModelConfig.{name} must be a positive multiple of 32 (px), got {value!r}'
                raise ConfigError(msg)
        if len(self.bev_widths) < 2 or any(not isinstance(w, int) or w <= 0 for w in self.bev_widths):
            msg = f'ModelConfig.bev_widths needs >= 2 positive integers, got {self.bev_widths!r}'
            raise ConfigError(msg)
        if self.embed_dim <= 0 or self.attention_heads <= 0 or self.embed_dim % self.attention_heads:
            msg = (
                f'ModelConfig: embed_dim ({self.embed_dim}) must be a positive multiple of '
                f'attention_heads ({self.attention_heads})'
            )
            raise ConfigError(msg)
        if len(self.classes) < 2:
            msg = f'ModelConfig.classes needs >= 2 normal classes, got {self.classes!r}'
            raise ConfigError(msg)
        if isinstance(self.voxel_refine, bool) or not isinstance(self.voxel_refine, int) or self.voxel_refine < 0:
            msg = f'ModelConfig.voxel_refine must be an integer >= 0 (0: no refiner), got {self.voxel_refine!r}'
            raise ConfigError(msg)
        if self.lidar_intensity not in LIDAR_INTENSITY_MODES:
            msg = f'ModelConfig.lidar_intensity must be one of {LIDAR_INTENSITY_MODES}, got {self.lidar_intensity!r}'
            raise ConfigError(msg)
        self.input_spec()  # validates the grid / stride / image size combination

    @property
    def bev_stride(self) -> int:
        """Grid cells per fusion query cell."""
        return 2 ** (len(self.bev_widths) - 1)

    @property
    def image_stride(self) -> int:
        return 8 if self.image_layers == 2 else 16

    @property
    def image_channels(self) -> int:
        return 128 if self.image_layers == 2 else 256

    def input_spec(self) -> InputSpec:
        """The preprocessing spec this model expects."""
        return InputSpec(
            grid=self.grid,
            image_width=self.image_width,
            image_height=self.image_height,
            image_stride=self.image_stride,
            bev_stride=self.bev_stride,
            lift_heights_m=self.lift_heights_m,
            lidar_intensity=self.lidar_intensity,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out['grid'] = self.grid.to_dict()
        for key in ('bev_widths', 'lift_heights_m', 'classes'):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build from a mapping (YAML / checkpoint); unknown keys are errors.

        Raises:
            ConfigError: On unknown keys or invalid values.
        """
        if not isinstance(data, Mapping):
            msg = f'ModelConfig: expected a mapping, got {type(data).__name__}'
            raise ConfigError(msg)
        moved = [k for k in SCORE_RULE_KEYS if k in data]
        if moved:
            msg = (
                f'ModelConfig: {", ".join(moved)} {"is not a model key" if len(moved) == 1 else "are not model keys"} '
                'any more: the score rule is part of the '
                f'calibration chosen after training; in a training config set eval.{", eval.".join(moved)} '
                '(the value validation uses until the score rule is chosen), and add the calibration section to '
                'checkpoints and model cards written before with '
                'python -m anovox_training.export.upgrade_calibration FILE'
            )
            raise ConfigError(msg)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            msg = f'ModelConfig: unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}'
            raise ConfigError(msg)
        kwargs = dict(data)
        try:
            if 'grid' in kwargs:
                kwargs['grid'] = GridSpec.from_dict(kwargs['grid'])
            for key, kind in (('bev_widths', int), ('lift_heights_m', float), ('classes', str)):
                if key in kwargs:
                    kwargs[key] = tuple(kind(v) for v in kwargs[key])
            for key in _INT_KEYS:
                if key in kwargs:
                    kwargs[key] = _as_int(key, kwargs[key])
        except (TypeError, ValueError) as err:
            if isinstance(err, ConfigError | GeometryError):
                raise ConfigError(str(err)) from err
            msg = f'ModelConfig: malformed value: {err}'
            raise ConfigError(msg) from err
        return cls(**kwargs)

    @classmethod
    def base(cls, **overrides: Any) -> ModelConfig:
        """The shipped size: ResNet-18 through layer3 at 384x256, 160x160x16 grid."""
        return replace(cls(), **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> ModelConfig:
        """A few-second model for tests: 96x64 image, 32x32x8 grid, narrow BEV CNN."""
        tiny = cls(
            name='tiny',
            grid=GridSpec(x_min_m=-4.0, x_max_m=12.0, y_min_m=-8.0, y_max_m=8.0, z_min_m=-3.0, z_max_m=1.0),
            image_width=96,
            image_height=64,
            image_layers=2,
            bev_widths=(8, 16, 24),
            embed_dim=16,
            attention_heads=2,
            lift_heights_m=(-1.5, 0.0),
        )
        return replace(tiny, **overrides)


_INT_KEYS = (
    'image_width',
    'image_height',
    'image_layers',
    'embed_dim',
    'attention_heads',
    'voxel_refine',
)


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        msg = f'ModelConfig.{key} must be an integer, got {value!r}'
        raise ConfigError(msg)
    return int(value)
