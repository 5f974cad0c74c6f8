"""The ground of the synthetic world: a straight road along world x, cast analytically.

Across the road (world y, left positive), from the centre outwards on each side:
driving lanes, an optional parking strip, a kerb step up to the sidewalk, then a
grass verge and terrain that continues at kerb height to infinity. Road lines
(centre line, lane dividers, edge lines, crosswalks) are painted on the road
plane and carry label 24. The ground is two horizontal planes (road at z = 0,
everything beyond the kerbs at z = kerb height) joined by the two kerb faces, so
rays meet it without any tessellation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anovox_training.data import labels as L
from anovox_training.data.synth import materials as M

__all__ = [
    'SURFACE_ASPHALT',
    'SURFACE_KERB',
    'SURFACE_SIDEWALK',
    'SURFACE_TERRAIN',
    'SURFACE_WHITE',
    'SURFACE_YELLOW',
    'GroundHits',
    'RoadLayout',
    'RoadLine',
    'intersect_ground',
]

# Ground surface categories, and their labels and materials.
SURFACE_ASPHALT, SURFACE_SIDEWALK, SURFACE_KERB, SURFACE_TERRAIN, SURFACE_WHITE, SURFACE_YELLOW = range(6)
_SURFACE_LABEL = np.array(
    [
        L.LABEL_IDS['road'],
        L.LABEL_IDS['sidewalk'],
        L.LABEL_IDS['sidewalk'],
        L.LABEL_IDS['terrain'],
        L.ROAD_LINE_LABEL,
        L.ROAD_LINE_LABEL,
    ],
    np.uint8,
)
_SURFACE_MATERIAL = np.array([M.ASPHALT, M.CONCRETE, M.CONCRETE, M.GRASS, M.PAINT, M.PAINT], np.uint8)


@dataclass(frozen=True)
class RoadLine:
    """A painted line parallel to the road.

    Attributes:
        y_m: Lateral position of the line's centre.
        width_m: Painted width.
        dashed: Whether the line is dashed (else solid).
        yellow: Paint colour (yellow or white).
    """

    y_m: float
    width_m: float
    dashed: bool
    yellow: bool = False


@dataclass(frozen=True)
class RoadLayout:
    """Cross-section and markings of the straight road.

    Attributes:
        lane_width_m: Width of one driving lane.
        lanes_per_direction: Driving lanes on each side of the centre line.
        parking_width_m: Width of the parking strip beyond the outer lane (0 = none).
        sidewalk_width_m: Sidewalk width beyond the kerb.
        verge_width_m: Grass strip beyond the sidewalk, before the terrain.
        kerb_height_m: Height of sidewalk and terrain above the road.
        double_centre_line: Solid double yellow centre line (else a dashed white one).
        dash_length_m, dash_period_m: Dashed-line pattern along x.
        crosswalks_x_m: Centres (x) of zebra crossings.
        crosswalk_length_m: Extent of a crossing along x.
        asphalt_shade: Grey level of the asphalt.
        sidewalk_shade: Grey level of the sidewalk.
        terrain_rgb: Colour of grass and terrain.
    """

    lane_width_m: float = 3.5
    lanes_per_direction: int = 1
    parking_width_m: float = 0.0
    sidewalk_width_m: float = 3.0
    verge_width_m: float = 1.5
    kerb_height_m: float = 0.15
    double_centre_line: bool = True
    dash_length_m: float = 3.0
    dash_period_m: float = 9.0
    crosswalks_x_m: tuple[float, ...] = ()
    crosswalk_length_m: float = 4.0
    asphalt_shade: float = 0.32
    sidewalk_shade: float = 0.62
    terrain_rgb: tuple[float, float, float] = (0.32, 0.42, 0.2)
    lines: tuple[RoadLine, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.lines:
            object.__setattr__(self, 'lines', self._default_lines())

    @property
    def lanes_half_width_m(self) -> float:
        """Distance from the centre line to the outer edge of the driving lanes."""
        return self.lanes_per_direction * self.lane_width_m

    @property
    def half_width_m(self) -> float:
        """Distance from the centre line to the kerb."""
        return self.lanes_half_width_m + self.parking_width_m

    @property
    def sidewalk_outer_m(self) -> float:
        """Distance from the centre line to the outer edge of the sidewalk."""
        return self.half_width_m + self.sidewalk_width_m

    @property
    def verge_outer_m(self) -> float:
        """Distance from the centre line to the outer edge of the verge (where buildings may start)."""
        return self.sidewalk_outer_m + self.verge_width_m

    def lane_center_y(self, lane: int) -> float:
        """World y of a lane centre: lanes 0..n-1 drive along +x (right side, y < 0), -1..-n along -x."""
        if lane >= 0:
            return -(lane + 0.5) * self.lane_width_m
        return (-lane - 0.5) * self.lane_width_m

    def _default_lines(self) -> tuple[RoadLine, ...]:
        lines: list[RoadLine] = []
        if self.double_centre_line:
            lines += [RoadLine(-0.12, 0.12, False, True), RoadLine(0.12, 0.12, False, True)]
        else:
            lines.append(RoadLine(0.0, 0.15, True))
        for k in range(1, self.lanes_per_direction):
            lines += [RoadLine(-k * self.lane_width_m, 0.15, True), RoadLine(k * self.lane_width_m, 0.15, True)]
        edge = self.lanes_half_width_m if self.parking_width_m > 0 else self.half_width_m - 0.3
        lines += [RoadLine(-edge, 0.15, False), RoadLine(edge, 0.15, False)]
        return tuple(lines)

    def classify(self, x: np.ndarray, y: np.ndarray, kerb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels and surface categories of ground points.

        Args:
            x, y: World coordinates of ground hits (1-D, same length).
            kerb: Mask of hits on a kerb face.

        Returns:
            ``(label, surface)``: uint8 labels, and uint8 surface categories (SURFACE_* constants)
            that index `surface_albedo`.
        """
        ay = np.abs(y)
        on_road = (ay < self.half_width_m) & ~kerb
        surface = np.where(ay < self.sidewalk_outer_m, SURFACE_SIDEWALK, SURFACE_TERRAIN).astype(np.uint8)
        surface[on_road] = SURFACE_ASPHALT
        dash_on = np.mod(x, self.dash_period_m) < self.dash_length_m
        for line in self.lines:
            hit = on_road & (np.abs(y - line.y_m) < line.width_m / 2)
            if line.dashed:
                hit &= dash_on
            surface[hit] = SURFACE_YELLOW if line.yellow else SURFACE_WHITE
        for xc in self.crosswalks_x_m:
            zebra = on_road & (np.abs(x - xc) < self.crosswalk_length_m / 2) & (np.mod(y, 1.2) < 0.6)
            zebra &= ay < self.lanes_half_width_m
            surface[zebra] = SURFACE_WHITE
        surface[kerb] = SURFACE_KERB
        return _SURFACE_LABEL.take(surface), surface

    def surface_albedo(self, surface: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Base colours (N, 3) float32 and material ids (N,) of surface categories."""
        palette = np.array(
            [
                [self.asphalt_shade] * 3,
                [self.sidewalk_shade] * 3,
                [self.sidewalk_shade * 0.9] * 3,
                self.terrain_rgb,
                (0.85, 0.85, 0.82),
                (0.85, 0.68, 0.15),
            ],
            np.float32,
        )
        return np.take(palette, surface, axis=0), _SURFACE_MATERIAL.take(surface)


@dataclass
class GroundHits:
    """Where rays meet the ground.

    Attributes:
        t: Ray parameters of the hits (inf where a ray misses the ground).
        on_road: Hit on the road plane.
        kerb_side: -1 / +1 where a hit is on the right / left kerb face, else 0.
    """

    t: np.ndarray
    on_road: np.ndarray
    kerb_side: np.ndarray


def intersect_ground(
    layout: RoadLayout, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray
) -> GroundHits:
    """Intersect rays from ``origin`` (world, above the road) with the ground.

    Args:
        layout: The road.
        origin: (3,) world ray origin; must lie above the road plane, between the kerbs.
        dx, dy, dz: World ray direction components (same shape; any length).

    Returns:
        The hits.
    """
    ox, oy, oz = (float(v) for v in origin)
    w, kh = layout.half_width_m, layout.kerb_height_m
    with np.errstate(divide='ignore', invalid='ignore'):
        t_road = np.where(dz < 0, -oz / dz, np.inf)
        y_road = oy + t_road * dy
        t_road = np.where(np.abs(y_road) < w, t_road, np.inf)
        t_high = np.where(dz < 0, (kh - oz) / dz, np.inf)
        y_high = oy + t_high * dy
        t_high = np.where(np.abs(y_high) >= w, t_high, np.inf)
        t = np.minimum(t_road, t_high)
        kerb_side = np.zeros(dx.shape, np.int8)
        for side in (-1, 1):
            t_kerb = (side * w - oy) / dy
            z_kerb = oz + t_kerb * dz
            ok = (t_kerb > 0) & (z_kerb >= 0) & (z_kerb <= kh) & (t_kerb < t)
            t = np.where(ok, t_kerb, t)
            kerb_side[ok] = side
    on_road = (t == t_road) & np.isfinite(t) & (kerb_side == 0)
    return GroundHits(t=t, on_road=on_road, kerb_side=kerb_side)
