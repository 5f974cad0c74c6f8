"""Stage 3: cross-modal attention fusion of image tokens into BEV query cells.

Each BEV query cell (the LiDAR BEV at its coarsest scale) attends to all image
tokens. Queries carry a position encoding of the cell's geometry relative to the
camera (unit directions from the camera centre to the cell at a few heights, the
log distance, and whether each projects into the image); keys carry an encoding
of each token's viewing ray. Both are expressed in LiDAR-frame axes and computed
from the intrinsics and extrinsics at preprocessing time, so a query learns to
attend to the tokens whose rays pass through its cell, and the same weights
serve other camera mounts. A second, direct path samples the image features at
the cell's projections (``grid_sample``), masked by visibility.

The camera contribution is scaled by ``camera_valid``: with 0 the output equals
the LiDAR features, which is the LiDAR-only path.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from anovox_training.model.backbones import ResidualBlock

__all__ = ['CrossModalFusion']


def _pointwise_mlp(c_in: int, c_out: int) -> nn.Sequential:
    """Two 1x1 convs: an MLP applied at every spatial position."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.ReLU(inplace=True), nn.Conv2d(c_out, c_out, 1))


class CrossModalFusion(nn.Module):
    """BEV queries attend to image tokens with geometry-aware position encodings.

    Args:
        bev_channels: Channels of the BEV query features.
        image_channels: Channels of the image features.
        embed_dim: Attention width.
        heads: Attention heads.
        n_lift: Number of lift heights (L) in the geometry inputs.
    """

    def __init__(self, bev_channels: int, image_channels: int, embed_dim: int, heads: int, n_lift: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = embed_dim // heads
        self.n_lift = n_lift
        self.query = nn.Conv2d(bev_channels, embed_dim, 1)
        self.query_pos = _pointwise_mlp(5 * n_lift, embed_dim)
        self.key_pos = _pointwise_mlp(3, embed_dim)
        self.image_proj = nn.Sequential(nn.Conv2d(image_channels, embed_dim, 1), nn.ReLU(inplace=True))
        self.key = nn.Conv2d(embed_dim, embed_dim, 1)
        self.value = nn.Conv2d(embed_dim, embed_dim, 1)
        self.lift = nn.Conv2d(embed_dim * n_lift, embed_dim, 1)
        self.out = nn.Sequential(
            nn.Conv2d(2 * embed_dim, bev_channels, 1, bias=False),
            nn.BatchNorm2d(bev_channels),
            nn.ReLU(inplace=True),
        )
        self.post = ResidualBlock(bev_channels)

    @torch.no_grad()
    def start_near_identity(self, camera_scale: float = 1e-3) -> None:
        """Make the module pass its BEV input through almost unchanged.

        The residual block after the fusion starts as the identity (its last batch
        norm zeroed: ``relu(x) = x`` on the backbone's ReLU outputs) and the camera
        branch's last batch norm starts with a scale of ``camera_scale``: zero would
        leave its ReLU without gradient, so the camera contribution could never
        grow. A model warm-started from a LiDAR-only checkpoint then begins within
        about ``camera_scale`` of that model's features.
        """
        self.post.conv2[1].weight.zero_()
        self.post.conv2[1].bias.zero_()
        self.out[1].weight.fill_(camera_scale)
        self.out[1].bias.zero_()

    def forward(
        self,
        bev: Tensor,
        image: Tensor,
        camera_valid: Tensor,
        cell_uv: Tensor,
        cell_valid: Tensor,
        cell_rays: Tensor,
        token_rays: Tensor,
    ) -> Tensor:
        """Fuse.

        Args:
            bev: (B, Cb, qx, qy) BEV query features.
            image: (B, Ci, th, tw) image features.
            camera_valid: (B, 1) 1 with a camera frame, 0 without.
            cell_uv: (B, L, qx, qy, 2) normalised projections of the query cells.
            cell_valid: (B, L, qx, qy) projection visibility.
            cell_rays: (B, 4 L, qx, qy) camera-to-cell directions and log distances.
            token_rays: (B, 3, th, tw) token viewing rays.

        Returns:
            (B, Cb, qx, qy) fused features.
        """
        b, _, qx, qy = bev.shape
        feats = self.image_proj(image)  # (B, D, th, tw)
        d_model = feats.shape[1]

        # Attention path.
        q = self.query(bev) + self.query_pos(torch.cat([cell_rays, cell_valid], dim=1))
        k = self.key(feats) + self.key_pos(token_rays)
        v = self.value(feats)
        q = q.reshape(b, self.heads, self.head_dim, qx * qy).transpose(2, 3)  # (B, h, Nq, d)
        k = k.reshape(b, self.heads, self.head_dim, -1)  # (B, h, d, Nt)
        v = v.reshape(b, self.heads, self.head_dim, -1).transpose(2, 3)  # (B, h, Nt, d)
        weights = torch.softmax(torch.matmul(q, k) * (1.0 / math.sqrt(self.head_dim)), dim=-1)
        attended = torch.matmul(weights, v).transpose(2, 3).reshape(b, d_model, qx, qy)

        # Direct projection path: sample the image features where each cell projects.
        grid = cell_uv.reshape(b, self.n_lift * qx, qy, 2)
        sampled = F.grid_sample(feats, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
        sampled = sampled.reshape(b, d_model, self.n_lift, qx, qy) * cell_valid[:, None]
        lifted = self.lift(sampled.reshape(b, d_model * self.n_lift, qx, qy))

        delta = self.out(torch.cat([attended, lifted], dim=1))
        return self.post(bev + delta * camera_valid[:, :, None, None])
