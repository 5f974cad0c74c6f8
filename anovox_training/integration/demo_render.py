"""Pictures of what the node published: camera view with projected anomaly boxes, BEV score map, GIF.

Each frame is one PNG with two panels, drawn with matplotlib's Agg canvas (no display needed):

- camera: the input image with the node's anomaly boxes (its MarkerArray boxes)
  projected as 3D wireframes, and the ground-truth anomaly voxels as green dots;
- bird's-eye view: the node's score grid (OccupancyGrid, 0..100), its boxes, the
  ground-truth anomaly voxels and the ego position; forward is up, left is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter
from PIL import Image

from anovox_perception.core.geometry import CameraModel, anovox_voxel_center, transform_points
from anovox_training.data.labels import is_anomaly
from anovox_training.integration.node_run import FrameOutput

__all__ = ['box_corners', 'render_frame', 'write_gif']

_BOX_COLOUR = '#ff7f0e'
_TRUTH_COLOUR = '#2ca02c'
# The 12 edges of a box whose corners are numbered by (x, y, z) bits.
_MAX_LABELS = 6  # score labels drawn in the camera view (highest first), so they stay readable
_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]


def _box_score(text: str) -> float:
    """The score in a marker text ('anomaly 0.93 | ...'); 0 when there is none."""
    parts = text.split()
    try:
        return float(parts[1]) if len(parts) > 1 and parts[0] == 'anomaly' else 0.0
    except ValueError:
        return 0.0


def box_corners(centre_m: Sequence[float], size_m: Sequence[float]) -> np.ndarray:
    """(8, 3) corners of an axis-aligned box; corner k has bit 2/1/0 of k selecting +x/+y/+z."""
    bits = np.array([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], dtype=np.float64)
    return np.asarray(centre_m, dtype=np.float64) + (bits - 0.5) * np.asarray(size_m, dtype=np.float64)


def _camera_panel(ax, rgb, camera, t_cam_lidar, output: FrameOutput, truth_xyz: np.ndarray) -> None:
    ax.imshow(rgb)
    ax.set_xlim(0, rgb.shape[1])
    ax.set_ylim(rgb.shape[0], 0)
    ax.set_axis_off()
    cam = (
        camera
        if (camera.width, camera.height) == (rgb.shape[1], rgb.shape[0])
        else camera.scaled(rgb.shape[1], rgb.shape[0])
    )
    if len(truth_xyz):
        uv, visible = cam.project(transform_points(t_cam_lidar, truth_xyz))
        ax.scatter(uv[visible, 0], uv[visible, 1], s=2, c=_TRUTH_COLOUR, alpha=0.6, linewidths=0)
    segments, labels = [], []
    for centre, size, text in output.boxes:
        corners = transform_points(t_cam_lidar, box_corners(centre, size))
        if (corners[:, 2] < 0.5).any():
            continue  # partly behind the camera: a projection would be misleading
        uv = np.stack([cam.fx * corners[:, 0] / corners[:, 2], cam.fy * corners[:, 1] / corners[:, 2]], 1)
        uv += [cam.cx, cam.cy]
        segments.extend(uv[[a, b]] for a, b in _EDGES)
        top = uv[:, 1].argmin()
        labels.append((_box_score(text), uv[top, 0], uv[top, 1]))
    # One collection for all edges: hundreds of separate plot calls make rendering slow.
    ax.add_collection(LineCollection(segments, colors=_BOX_COLOUR, linewidths=1.2))
    for score, u, v in sorted(labels, reverse=True)[:_MAX_LABELS]:
        ax.text(u, v - 4, f'{score:.2f}', color=_BOX_COLOUR, fontsize=7, clip_on=True)
    ax.set_title('camera: node boxes (orange), ground-truth anomaly voxels (green)', fontsize=9)


def _bev_panel(ax, output: FrameOutput, truth_xyz: np.ndarray) -> None:
    ax.set_facecolor('0.12')
    handle = None
    if output.score_grid is not None:
        ny, nx = output.score_grid.shape
        res = output.grid_resolution_m
        x0, y0 = output.grid_origin_m
        # Rows of the grid run along y, columns along x; plot forward (x) up and left (+y) to the left.
        image = np.ma.masked_less(output.score_grid.T[::-1, ::-1].astype(np.float32), 0)
        extent = (-(y0 + ny * res), -y0, x0, x0 + nx * res)
        handle = ax.imshow(
            image, extent=extent, origin='upper', cmap='inferno', vmin=0, vmax=100, interpolation='nearest'
        )
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
    if len(truth_xyz):
        ax.scatter(-truth_xyz[:, 1], truth_xyz[:, 0], s=3, c=_TRUTH_COLOUR, alpha=0.7, linewidths=0)
    rectangles = [
        Rectangle((-centre[1] - size[1] / 2, centre[0] - size[0] / 2), size[1], size[0])
        for centre, size, _ in output.boxes
    ]
    ax.add_collection(PatchCollection(rectangles, facecolor='none', edgecolor=_BOX_COLOUR, linewidth=1.2))
    ax.plot([0], [0], marker='^', color='white', markersize=7)
    # Plot coordinate u = -y keeps left on the left; label the ticks with y itself.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda u, _pos: f'{-u:g}'))
    ax.set_xlabel('y (m, + = left)', fontsize=8)
    ax.set_ylabel('x forward (m)', fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_aspect('equal')
    ax.set_title('BEV anomaly score (max over height, 0..100)', fontsize=9)
    if handle is not None:
        ax.figure.colorbar(handle, ax=ax, fraction=0.04, pad=0.02)


def render_frame(
    path: str | Path,
    rgb: np.ndarray | None,
    camera: CameraModel,
    t_cam_lidar: np.ndarray,
    output: FrameOutput,
    truth_voxels: np.ndarray | None,
    title: str,
) -> Path:
    """Write one frame's picture.

    Args:
        path: PNG to write.
        rgb: (H, W, 3) uint8 camera image synced with the cloud, or None.
        camera: Camera model of the bag.
        t_cam_lidar: (4, 4) LiDAR -> camera optical transform.
        output: What the node published for the cloud.
        truth_voxels: (M, 4) AnoVox voxels ``[ix, iy, iz, label]`` of the frame, or None.
        title: Figure title.

    Returns:
        ``path``.
    """
    truth_xyz = np.zeros((0, 3))
    if truth_voxels is not None and len(truth_voxels):
        truth_xyz = anovox_voxel_center(truth_voxels[is_anomaly(truth_voxels[:, 3])])
    fig = Figure(figsize=(13, 4.8), dpi=80, layout='constrained')
    FigureCanvasAgg(fig)
    cam_ax, bev_ax = fig.subplots(1, 2, gridspec_kw={'width_ratios': [1.55, 1.0]})
    if rgb is not None:
        _camera_panel(cam_ax, rgb, camera, t_cam_lidar, output, truth_xyz)
    else:
        cam_ax.set_axis_off()
        cam_ax.text(0.5, 0.5, 'LiDAR-only frame (no image)', ha='center', va='center', transform=cam_ax.transAxes)
    _bev_panel(bev_ax, output, truth_xyz)
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path)
    return path


def write_gif(frames: Sequence[Path], path: str | Path, width_px: int = 800, frame_ms: int = 250) -> Path:
    """A looping GIF of the PNG frames, scaled to ``width_px`` wide."""
    images = []
    for frame in frames:
        with Image.open(frame) as img:
            scale = width_px / img.width
            small = img.convert('RGB').resize((width_px, round(img.height * scale)), Image.Resampling.LANCZOS)
            images.append(small.quantize(colors=128, method=Image.Quantize.MEDIANCUT))
    path = Path(path)
    if images:
        images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0, optimize=True)
    return path
