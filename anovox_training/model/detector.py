"""The whole detector: ``AnomalyDetector(inputs, backbones, fusion, head)`` and its builder."""

from __future__ import annotations

from torch import Tensor, nn

from anovox_perception.core.calibration import ScoreRule
from anovox_perception.core.errors import ConfigError
from anovox_perception.core.preprocess import InputSpec
from anovox_training.model.backbones import Backbones, BevBackbone, ImageBackbone
from anovox_training.model.config import ModelConfig
from anovox_training.model.fusion import CrossModalFusion
from anovox_training.model.head import HeadLogits, VoxelHead
from anovox_training.model.inputs import INPUT_NAMES, DetectorInputs, InputStage, example_inputs

__all__ = ['INPUT_NAMES', 'OUTPUT_NAMES', 'AnomalyDetector', 'build_model']

OUTPUT_NAMES = ('occupancy', 'anomaly')


class AnomalyDetector(nn.Module):
    """Camera + LiDAR road-anomaly detector in four stages.

    ``forward`` takes the inputs in :attr:`INPUT_NAMES` order and returns
    ``(occupancy, anomaly)`` probabilities, each (B, nx, ny, nz) on the detector
    grid; this is the exported graph, whose anomaly score follows :attr:`score_rule`.
    Training uses :meth:`logits`.

    Args:
        config: The model configuration.
        inputs: Stage 1 (modality routing).
        backbones: Stage 2.
        fusion: Stage 3, None for the LiDAR-only variant.
        head: Stage 4.
    """

    INPUT_NAMES = INPUT_NAMES
    OUTPUT_NAMES = OUTPUT_NAMES

    def __init__(
        self,
        config: ModelConfig,
        inputs: InputStage,
        backbones: Backbones,
        fusion: CrossModalFusion | None,
        head: VoxelHead,
    ) -> None:
        super().__init__()
        self.config = config
        self.inputs = inputs
        self.backbones = backbones
        self.fusion = fusion
        self.head = head

    @property
    def input_spec(self) -> InputSpec:
        return self.config.input_spec()

    @property
    def score_rule(self) -> ScoreRule:
        """How :meth:`forward` combines the head outputs into the anomaly score."""
        head = self.head
        return ScoreRule(head.semantic_weight, head.temperature, head.score_smoothing, head.lidar_support)

    def set_score_rule(self, rule: ScoreRule) -> None:
        """Make :meth:`forward` (and so an export) compute the anomaly score with ``rule``; no weight changes.

        Raises:
            ConfigError: A LiDAR-support gate on the camera-only variant (it has no LiDAR input).
        """
        _check_gate(self.config, rule)
        self.head.semantic_weight = rule.semantic_weight
        self.head.temperature = rule.anomaly_temperature
        self.head.score_smoothing = rule.score_smoothing
        self.head.lidar_support = rule.lidar_support

    def decode(self, *inputs: Tensor) -> tuple[HeadLogits, Tensor]:
        """Raw per-voxel logits and the routed BEV input the score rule's gate reads."""
        x = self.inputs(DetectorInputs(*inputs))
        image_feats, bev_feats = self.backbones(x.image, x.bev)
        fused = bev_feats[-1]
        if self.fusion is not None:
            fused = self.fusion(fused, image_feats, x.camera_valid, x.cell_uv, x.cell_valid, x.cell_rays, x.token_rays)
        return self.head(fused, bev_feats, x.bev), x.bev

    def logits(self, *inputs: Tensor) -> HeadLogits:
        """Raw per-voxel logits (inputs in :attr:`INPUT_NAMES` order)."""
        return self.decode(*inputs)[0]

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        """(occupancy, anomaly) probabilities in [0, 1], each (B, nx, ny, nz)."""
        logits, bev = self.decode(*inputs)
        return self.head.probabilities(logits, bev)

    def example_inputs(self, batch: int = 1) -> dict[str, Tensor]:
        """Example inputs with static shapes for tracing / export, keyed by input name."""
        return example_inputs(self.input_spec, batch=batch)


def _check_gate(cfg: ModelConfig, rule: ScoreRule) -> None:
    if rule.lidar_support and cfg.modality == 'camera':
        msg = (
            f'score_rule.lidar_support={rule.lidar_support} needs LiDAR input, which the camera-only variant '
            'does not read; use 0 (no gate) for it'
        )
        raise ConfigError(msg)


def build_model(cfg: ModelConfig, score_rule: ScoreRule | None = None) -> AnomalyDetector:
    """Build an untrained detector for ``cfg`` (the image trunk loads ``cfg.image_weights`` if set).

    ``score_rule`` (default ``ScoreRule()``: weight 1, temperature 1, no smoothing) is how
    :meth:`AnomalyDetector.forward` scores anomalies; a trained model gets its calibration's.

    Raises:
        ConfigError: When the image weights file is missing or unusable, or the score rule gates
            the camera-only variant by LiDAR.
    """
    rule = score_rule or ScoreRule()
    _check_gate(cfg, rule)
    spec = cfg.input_spec()
    image = None
    fusion = None
    if cfg.modality != 'lidar':
        image = ImageBackbone(cfg.image_layers, cfg.image_weights)
        fusion = CrossModalFusion(
            bev_channels=cfg.bev_widths[-1],
            image_channels=image.out_channels,
            embed_dim=cfg.embed_dim,
            heads=cfg.attention_heads,
            n_lift=len(cfg.lift_heights_m),
        )
    backbones = Backbones(image, BevBackbone(spec.bev_channels, cfg.bev_widths))
    head = VoxelHead(
        cfg.bev_widths,
        cfg.grid.nz,
        len(cfg.classes),
        rule.semantic_weight,
        spec.bev_channels,
        rule.anomaly_temperature,
        cfg.voxel_refine,
        rule.score_smoothing,
        rule.lidar_support,
    )
    return AnomalyDetector(cfg, InputStage(cfg.modality), backbones, fusion, head)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ += ['count_parameters']
