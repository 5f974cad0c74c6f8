"""Contact sheet of one AnoVox frame: ``python -m anovox_training.data.render SCENARIO_DIR --frame F --out sheet.png``.

Four panels: RGB, semantic labels (Cityscapes colours, anomalies red), depth,
and a LiDAR bird's-eye view with points coloured by semantic label, anomaly
voxels of the voxel grid outlined and the ANOMALY csv boxes drawn. Rendered with
matplotlib's Agg canvas, so it needs no display.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle
from matplotlib.ticker import FuncFormatter

from anovox_perception.core.errors import DataError
from anovox_perception.core.geometry import ANOVOX_VOXEL_M, GridSpec, anovox_voxel_center
from anovox_training.data.frame import AnoVoxFrame
from anovox_training.data.labels import is_anomaly, label_colors
from anovox_training.data.reader import ScenarioReader

__all__ = ['main', 'render_frame', 'save_contact_sheet']

_ANOMALY_EDGE = '#ff2020'
_MAX_DEPTH_M = 100.0


def _empty(ax: Axes, title: str, text: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha='center', va='center', transform=ax.transAxes, color='0.4')
    ax.set_xticks([])
    ax.set_yticks([])


def _image(ax: Axes, title: str, image: np.ndarray | None, **kwargs: object) -> None:
    if image is None:
        _empty(ax, title, f'no {title.lower()}')
        return
    handle = ax.imshow(image, interpolation='nearest', **kwargs)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if 'cmap' in kwargs:
        ax.figure.colorbar(handle, ax=ax, fraction=0.035, pad=0.02, label='m')


def _bev_xy(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plot coordinates of LiDAR points: left (y) to the left, forward (x) up."""
    return -points[:, 1], points[:, 0]


def _bev(ax: Axes, frame: AnoVoxFrame, grid: GridSpec) -> None:
    cloud, coloured = frame.semantic_points, True
    if cloud is None:
        cloud, coloured = frame.points, False
    if cloud is None and frame.voxels is None:
        _empty(ax, 'LiDAR BEV', 'no LiDAR points or voxels')
        return
    ax.set_facecolor('black')
    if cloud is not None and len(cloud):
        u, v = _bev_xy(cloud)
        colours = label_colors(cloud[:, 3]) / 255.0 if coloured else np.full((len(cloud), 3), 0.8)
        anomalous = is_anomaly(cloud[:, 3]) if coloured else np.zeros(len(cloud), bool)
        # Normal points first, anomaly points on top and larger so they stay visible.
        ax.scatter(u[~anomalous], v[~anomalous], s=0.5, c=colours[~anomalous], linewidths=0)
        ax.scatter(u[anomalous], v[anomalous], s=3.0, c=colours[anomalous], linewidths=0)
    if frame.voxels is not None and len(frame.voxels):
        anomaly_voxels = frame.voxels[is_anomaly(frame.voxels[:, 3])]
        centres = anovox_voxel_center(anomaly_voxels)
        half = ANOVOX_VOXEL_M / 2
        squares = [Rectangle((-c[1] - half, c[0] - half), ANOVOX_VOXEL_M, ANOVOX_VOXEL_M) for c in centres]
        ax.add_collection(PatchCollection(squares, facecolor='none', edgecolor=_ANOMALY_EDGE, linewidth=0.6))
    for anomaly in frame.anomalies:
        location, size = anomaly.location_m, anomaly.size_m
        if not np.isfinite(location[:2]).all():
            continue
        length, width = size[:2] if np.isfinite(size[:2]).all() else (1.0, 1.0)
        yaw = math.radians(anomaly.yaw_deg) if math.isfinite(anomaly.yaw_deg) else 0.0
        corners = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * [length / 2, width / 2]
        rot = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
        xy = corners @ rot.T + location[:2]
        ax.add_patch(Polygon(np.column_stack([-xy[:, 1], xy[:, 0]]), fill=False, ec='yellow', ls='--', lw=1.0))
        ax.annotate(anomaly.category, (-location[1], location[0]), color='yellow', fontsize=7, xytext=(4, 4),
                    textcoords='offset points')  # fmt: skip
    ax.plot([0], [0], marker='^', color='white', markersize=6)
    ax.set_xlim(-grid.y_max_m, -grid.y_min_m)
    ax.set_ylim(grid.x_min_m, grid.x_max_m)
    ax.set_aspect('equal')
    # Plotted horizontally as -y so left stays left; label the ticks with y itself.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda u, _: f'{-u:g}'))
    ax.set_xlabel('y left (m)')
    ax.set_ylabel('x forward (m)')
    ax.set_title('LiDAR BEV (anomaly voxels red, ANOMALY boxes yellow)')


def render_frame(frame: AnoVoxFrame, grid: GridSpec | None = None) -> Figure:
    """A 2 x 2 contact sheet of ``frame`` (not attached to any GUI backend).

    Args:
        frame: The frame to draw; missing fields give an empty panel.
        grid: BEV extent (default: the detector grid).

    Returns:
        The figure, with an Agg canvas.
    """
    grid = grid or GridSpec()
    fig = Figure(figsize=(13, 10), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    _image(axes[0, 0], 'RGB', frame.rgb)
    semantic = None if frame.semantic is None else label_colors(frame.semantic)
    _image(axes[0, 1], 'Semantic', semantic)
    depth = None if frame.depth_m is None else np.clip(frame.depth_m, 0.0, _MAX_DEPTH_M)
    _image(axes[1, 0], 'Depth', depth, cmap='magma_r', vmin=0.0, vmax=_MAX_DEPTH_M)
    _bev(axes[1, 1], frame, grid)
    names = ', '.join(f'{a.category} ({a.label})' for a in frame.anomalies) or 'none'
    fig.suptitle(f'{frame.scenario}  frame {frame.frame_id}  anomalies: {names}')
    fig.tight_layout()
    return fig


def save_contact_sheet(frame: AnoVoxFrame, path: str | Path, dpi: int = 100) -> Path:
    """Render ``frame`` and write it as a PNG; returns the path written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    render_frame(frame).savefig(out, dpi=dpi, format='png')
    return out


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m anovox_training.data.render',
        description='Write a PNG contact sheet (RGB, semantic, depth, LiDAR BEV) of one AnoVox frame.',
    )
    parser.add_argument('scenario', type=Path, help='a Scenario_* folder (Layout A or B)')
    parser.add_argument('--frame', type=int, default=None, help='frame id (default: the first frame)')
    parser.add_argument('--out', type=Path, required=True, help='output PNG path')
    parser.add_argument('--dpi', type=int, default=100)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        reader = ScenarioReader(args.scenario)
        if not reader.frame_ids:
            print(f'{reader.name}: no frames to render', file=sys.stderr)
            return 1
        frame_id = reader.frame_ids[0] if args.frame is None else args.frame
        path = save_contact_sheet(reader.read(frame_id), args.out, dpi=args.dpi)
    except DataError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
