"""Pictures of the detector on a real frame: camera view with LiDAR points coloured by score, BEV score map.

The two panels are those of the demo (``anovox_training.integration.demo_render``): the camera image with
the anomaly boxes projected as wireframes, and the bird's-eye score grid with the boxes. On top
of the camera view, each LiDAR point is drawn in the colour of its voxel's anomaly score
(grey where the model calls the voxel free or the point lies outside the grid), with the
operating threshold marked on the colour bar: on a frame without anomalies, everything
drawn above it is a false alarm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from anovox_perception.core.detector import FrameResult
from anovox_perception.core.geometry import CameraModel, transform_points
from anovox_training.integration.demo_render import _bev_panel, _camera_panel
from anovox_training.integration.node_run import FrameOutput

__all__ = ['frame_output', 'point_scores', 'render_real_frame']

_CMAP = 'inferno'
_FREE_COLOUR = '0.75'
_NO_TRUTH = np.zeros((0, 3))


def frame_output(result: FrameResult) -> FrameOutput:
    """What the node would publish for ``result``, in the form the demo's panels draw.

    Boxes are the markers' boxes with the texts of the same id, as RViz shows them.
    """
    texts = {m.id: m.text for m in result.markers if m.kind == 'text' and m.action == 'add'}
    boxes = [
        (m.position_m, m.scale_m, texts.get(m.id, '')) for m in result.markers if m.kind == 'box' and m.action == 'add'
    ]
    grid = result.grid
    return FrameOutput(
        stamp_ns=result.stamp_ns,
        frame_id=result.frame_id,
        voxel_scores=result.voxel_scores,
        score_grid=result.score_grid,
        grid_origin_m=(grid.x_min_m, grid.y_min_m),
        grid_resolution_m=grid.cell_m,
        boxes=boxes,
    )


def point_scores(result: FrameResult, points: np.ndarray) -> np.ndarray:
    """(N,) anomaly score of each point's voxel; NaN where the voxel is free or outside the grid."""
    index, inside = result.grid.cell_index(points)
    scores = np.full(len(points), np.nan, dtype=np.float64)
    ix, iy, iz = index[inside].T
    occupied = result.occupancy[ix, iy, iz] >= result.occupancy_threshold
    scores[np.flatnonzero(inside)[occupied]] = result.anomaly[ix, iy, iz][occupied]
    return scores


def render_real_frame(
    path: str | Path,
    rgb: np.ndarray,
    points: np.ndarray,
    camera: CameraModel,
    t_cam_lidar: np.ndarray,
    result: FrameResult,
    threshold: float,
    title: str,
) -> Path:
    """Write one frame's picture (PNG).

    Args:
        path: PNG to write.
        rgb: (H, W, 3) uint8 camera image of the frame.
        points: (N, >=3) LiDAR points of the frame (LiDAR frame).
        camera: Camera model of ``rgb``.
        t_cam_lidar: (4, 4) LiDAR -> camera optical transform.
        result: The detector's result for the frame.
        threshold: Operating threshold on the anomaly score (marked on the colour bar).
        title: Figure title.

    Returns:
        ``path``.
    """
    output = frame_output(result)
    fig = Figure(figsize=(15, 5.2), dpi=80, layout='constrained')
    FigureCanvasAgg(fig)
    aspect = rgb.shape[1] / rgb.shape[0]
    cam_ax, bev_ax = fig.subplots(1, 2, gridspec_kw={'width_ratios': [min(aspect, 3.5), 1.0]})
    _camera_panel(cam_ax, rgb, camera, t_cam_lidar, output, _NO_TRUTH)
    uv, visible = camera.project(transform_points(t_cam_lidar, points))
    scores = point_scores(result, points)
    free = visible & np.isnan(scores)
    scored = visible & ~np.isnan(scores)
    norm = Normalize(0.0, 1.0)
    # Below the boxes (zorder 2): the wireframes must stay readable over a dense cloud.
    cam_ax.scatter(uv[free, 0], uv[free, 1], s=0.6, c=_FREE_COLOUR, alpha=0.5, linewidths=0, zorder=1.5)
    order = np.flatnonzero(scored)[np.argsort(scores[scored])]  # high scores drawn last, on top
    cam_ax.scatter(uv[order, 0], uv[order, 1], s=2.0, c=scores[order], cmap=_CMAP, norm=norm, linewidths=0, zorder=1.6)
    cam_ax.set_title(
        'camera: LiDAR points by voxel score (grey: free voxel or outside the grid), anomaly boxes (orange)',
        fontsize=9,
    )
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=_CMAP), ax=cam_ax, fraction=0.03, pad=0.01)
    bar.ax.axhline(threshold, color='cyan', linewidth=1.5)
    bar.set_label(f'anomaly score (cyan: threshold {threshold:g})', fontsize=8)
    bar.ax.tick_params(labelsize=7)
    _bev_panel(bev_ax, output, _NO_TRUTH)
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path)
    return path
