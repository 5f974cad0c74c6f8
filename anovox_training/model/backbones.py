"""Stage 2: backbones. A torchvision ResNet-18 trunk for the image, a small 2D CNN for the LiDAR BEV."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import resnet18

from anovox_perception.core.errors import ConfigError

__all__ = ['BevBackbone', 'Backbones', 'ImageBackbone', 'conv_bn_relu']


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    """Conv + BatchNorm + ReLU (BatchNorm folds into the conv at export)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut (ResNet's BasicBlock without downsampling)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(channels, channels)
        self.conv2 = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(x + self.conv2(self.conv1(x)))


class ImageBackbone(nn.Module):
    """ResNet-18 trunk through ``layer2`` (stride 8) or ``layer3`` (stride 16).

    Args:
        layers: Stages kept, 2 or 3.
        weights_path: Optional local torchvision ResNet-18 state dict (``.pth``); the
            classifier and unused stages are skipped. Nothing is ever downloaded.

    Raises:
        ConfigError: When the weights file is missing or does not fit ResNet-18.
    """

    def __init__(self, layers: int = 3, weights_path: str | None = None) -> None:
        super().__init__()
        net = resnet18(weights=None)
        if weights_path:
            _load_resnet_weights(net, Path(weights_path))
        stages = [net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2]
        if layers == 3:
            stages.append(net.layer3)
        self.trunk = nn.Sequential(*stages)
        self.out_channels = 256 if layers == 3 else 128
        self.stride = 16 if layers == 3 else 8

    def forward(self, image: Tensor) -> Tensor:
        return self.trunk(image)


def _load_resnet_weights(net: nn.Module, path: Path) -> None:
    if not path.is_file():
        msg = f'image_weights: {path} does not exist; give a local torchvision resnet18 state dict or leave it empty'
        raise ConfigError(msg)
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises several unrelated types for bad files
        msg = f'image_weights: cannot read {path} as a torch state dict: {err}'
        raise ConfigError(msg) from err
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    if not isinstance(state, dict):
        msg = f'image_weights: {path} holds a {type(state).__name__}, expected a state dict'
        raise ConfigError(msg)
    try:
        missing, _ = net.load_state_dict(state, strict=False)
    except RuntimeError as err:
        msg = f'image_weights: {path} does not fit ResNet-18: {err}'
        raise ConfigError(msg) from err
    needed = [k for k in missing if not k.startswith(('layer4', 'fc'))]
    if needed:
        msg = f'image_weights: {path} lacks {len(needed)} ResNet-18 tensors, e.g. {needed[:3]}'
        raise ConfigError(msg)


class BevBackbone(nn.Module):
    """2D CNN over the LiDAR BEV; each scale after the first at half the previous resolution.

    The full-resolution stage is a single 3x3 conv (most of the grid is empty and
    compute there is expensive); the coarser stages add a residual block each.
    Returns the feature map of every scale (finest first): the coarsest feeds the
    fusion queries, the finer ones are skip connections for the head.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        stages = [conv_bn_relu(in_channels, widths[0])]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            stages.append(nn.Sequential(conv_bn_relu(c_in, c_out, stride=2), ResidualBlock(c_out)))
        self.stages = nn.ModuleList(stages)

    def forward(self, bev: Tensor) -> list[Tensor]:
        feats = []
        x = bev
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class Backbones(nn.Module):
    """Both backbones; the image one is absent for the LiDAR-only variant."""

    def __init__(self, image: ImageBackbone | None, bev: BevBackbone) -> None:
        super().__init__()
        self.image = image
        self.bev = bev

    def forward(self, image: Tensor, bev: Tensor) -> tuple[Tensor | None, list[Tensor]]:
        image_feats = self.image(image) if self.image is not None else None
        return image_feats, self.bev(bev)
