"""The ground of the synthetic world: a straight road along world x, cast analytically.

Across the road (world y, left positive), from the centre outwards on each side:
driving lanes, an optional parking strip, a kerb step up to the sidewalk (or no
kerb and a gravel shoulder at road level), then a grass verge and terrain that
continues to infinity. Road lines (centre line, lane dividers, edge lines,
crosswalks) are painted on the road and carry label 24.

Shape: the road follows a vertical profile along x (a grade plus a constant
vertical curvature: a crest or a sag), a cross slope (camber) and a parabolic
crown; beyond the kerbs the ground starts at kerb height above the road edge and
rises or falls with the verge slope. Each of the three regions (road, left side,
right side) is one quadratic height field ``z = a0 + c1 x + c2 x^2 + d1 y + d2 y^2``,
joined by the two vertical kerb faces, so a ray meets the ground by solving one
quadratic per region, without tessellation. The default layout is flat (road at
z = 0, everything beyond the kerbs at kerb height). `RoadLayout.height` is the
one ground-height function every user of the ground calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anovox_training.data import labels as L
from anovox_training.data.synth import materials as M

__all__ = [
    'SURFACE_ASPHALT',
    'SURFACE_GRAVEL',
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
SURFACE_ASPHALT, SURFACE_SIDEWALK, SURFACE_KERB, SURFACE_TERRAIN, SURFACE_WHITE, SURFACE_YELLOW, SURFACE_GRAVEL = range(
    7
)
_SURFACE_LABEL = np.array(
    [
        L.LABEL_IDS['road'],
        L.LABEL_IDS['sidewalk'],
        L.LABEL_IDS['sidewalk'],
        L.LABEL_IDS['terrain'],
        L.ROAD_LINE_LABEL,
        L.ROAD_LINE_LABEL,
        L.LABEL_IDS['terrain'],
    ],
    np.uint8,
)
_SURFACE_MATERIAL = np.array([M.ASPHALT, M.CONCRETE, M.CONCRETE, M.GRASS, M.PAINT, M.PAINT, M.GRAVEL], np.uint8)
# Rays must travel this far (in units of the direction vector) before they can meet the ground.
_T_MIN = 1e-9


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
        grade: Longitudinal slope dz/dx of the road at x = 0.
        vertical_curvature_per_m: d2z/dx2 of the road profile (negative: a crest, positive: a sag).
        camber: Cross slope dz/dy of the road (positive: the left side is higher).
        crown_m: How much the centre line stands above the road edges (parabolic cross-section).
        verge_slope: Slope of the ground beyond the kerbs, dz per metre away from the road.
        shoulder: The strip beyond the road edge is a gravel shoulder (terrain) instead of a sidewalk.
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
    grade: float = 0.0
    vertical_curvature_per_m: float = 0.0
    camber: float = 0.0
    crown_m: float = 0.0
    verge_slope: float = 0.0
    shoulder: bool = False
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

    @property
    def is_flat(self) -> bool:
        """True when the road is the plane z = 0 (and the ground beyond the kerbs is level)."""
        shape = (self.grade, self.vertical_curvature_per_m, self.camber, self.crown_m, self.verge_slope)
        return not any(shape)

    def _quadrics(self) -> np.ndarray:
        """(3, 5) height fields ``[a0, c1, c2, d1, d2]`` of the road, the left side and the right side."""
        w, k = self.half_width_m, self.kerb_height_m
        c1, c2 = self.grade, 0.5 * self.vertical_curvature_per_m
        side0 = k - self.verge_slope * w
        return np.array(
            [
                [self.crown_m, c1, c2, self.camber, -self.crown_m / (w * w)],
                [side0, c1, c2, self.camber + self.verge_slope, 0.0],
                [side0, c1, c2, self.camber - self.verge_slope, 0.0],
            ]
        )

    def height(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Ground height (world z, m) at world ``(x, y)``; beyond the kerbs it is the sidewalk or terrain."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        q = self._quadrics()
        region = np.where(np.abs(y) < self.half_width_m, 0, np.where(y > 0, 1, 2))
        a0, c1, c2, d1, d2 = (q[:, i][region] for i in range(5))
        return a0 + (c1 + c2 * x) * x + (d1 + d2 * y) * y

    def flat_height(self, y: np.ndarray | float) -> np.ndarray:
        """Height of the same cross-section on a flat road: 0 on the road, the kerb height beyond it."""
        return np.where(np.abs(np.asarray(y, np.float64)) < self.half_width_m, 0.0, self.kerb_height_m)

    def gradient(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """``(dz/dx, dz/dy)`` of the ground at world ``(x, y)``."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        q = self._quadrics()
        region = np.where(np.abs(y) < self.half_width_m, 0, np.where(y > 0, 1, 2))
        return q[:, 1][region] + 2.0 * q[:, 2][region] * x, q[:, 3][region] + 2.0 * q[:, 4][region] * y

    def normal(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Unit upward ground normals (..., 3) at world ``(x, y)``."""
        gx, gy = self.gradient(x, y)
        n = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
        return n / np.linalg.norm(n, axis=-1, keepdims=True)

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
        strip = SURFACE_GRAVEL if self.shoulder else SURFACE_SIDEWALK
        surface = np.where(ay < self.sidewalk_outer_m, strip, SURFACE_TERRAIN).astype(np.uint8)
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
                [
                    0.55 * self.sidewalk_shade + 0.12,
                    0.52 * self.sidewalk_shade + 0.1,
                    0.45 * self.sidewalk_shade + 0.08,
                ],
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
    """Intersect rays from ``origin`` (world, above the ground) with the ground.

    Each region's height field is quadratic along a ray, so its entry point is a
    root of ``h(o + t d) - (o_z + t d_z)`` where that function rises (the ray goes
    into the ground) and the hit lies inside the region; kerb faces are vertical
    planes at ``|y| = half_width_m`` between the road edge and the kerb top.

    Args:
        layout: The road.
        origin: (3,) world ray origin; must lie above the ground.
        dx, dy, dz: World ray direction components (same shape; any length).

    Returns:
        The hits.
    """
    ox, oy, oz = (float(v) for v in origin)
    w, kh = layout.half_width_m, layout.kerb_height_m
    quadrics = layout._quadrics()
    t = np.full(np.shape(dx), np.inf)
    t_road = t
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        # The x terms are the same in every region (one profile along x): computed once.
        _, c1, c2, _, _ = quadrics[0].tolist()
        a_x = c2 * (dx * dx) if c2 else None
        b_x = (c1 + 2.0 * c2 * ox) * dx - dz if c1 or c2 else -dz
        for region, (a0, _, _, d1, d2) in enumerate(quadrics.tolist()):
            a = a_x if not d2 else (d2 * (dy * dy) if a_x is None else a_x + d2 * (dy * dy))
            b = b_x + (d1 + 2.0 * d2 * oy) * dy if d1 or d2 else b_x
            c = a0 + c1 * ox + c2 * ox * ox + d1 * oy + d2 * oy * oy - oz
            t_hit = _enter_quadric(a, b, c, np.shape(dx))
            y_hit = oy + t_hit * dy
            inside = np.abs(y_hit) < w if region == 0 else (y_hit >= w if region == 1 else y_hit <= -w)
            t_hit = np.where(inside, t_hit, np.inf)
            if region == 0:
                t_road = t_hit
            t = np.minimum(t, t_hit)
        kerb_side = np.zeros(np.shape(dx), np.int8)
        if kh > 0:
            road = quadrics[0]
            for side in (-1, 1):
                t_kerb = (side * w - oy) / dy
                x_kerb = ox + t_kerb * dx
                z_kerb = oz + t_kerb * dz
                bottom = road[1] * x_kerb + road[2] * x_kerb * x_kerb + road[3] * side * w
                ok = (t_kerb > 0) & (z_kerb >= bottom) & (z_kerb <= bottom + kh) & (t_kerb < t)
                t = np.where(ok, t_kerb, t)
                kerb_side[ok] = side
    on_road = (t == t_road) & np.isfinite(t) & (kerb_side == 0)
    return GroundHits(t=t, on_road=on_road, kerb_side=kerb_side)


def _enter_quadric(a: np.ndarray | None, b: np.ndarray, c: float, shape: tuple[int, ...]) -> np.ndarray:
    """Smallest ``t > 0`` where ``a t^2 + b t + c`` (ground height minus ray height) turns positive; inf: never.

    ``a`` None means 0 (a plane along every ray).
    """
    if a is None:
        # A plane: one root, entered where the ray descends relative to it.
        root = -c / b
        return np.where((b > 0) & (root > _T_MIN), root, np.inf)
    disc = b * b - 4.0 * a * c
    sq = np.sqrt(np.maximum(disc, 0.0))
    # Numerically stable roots: q / a and c / q.
    q = -0.5 * (b + np.copysign(sq, b))
    best = np.full(shape, np.inf)
    for root in (q / a, c / q):
        ok = (disc >= 0) & (root > _T_MIN) & (2.0 * a * root + b > 0) & (root < best)
        best = np.where(ok, root, best)
    return best
