"""Stable RViz markers for anomalous components: track matching across frames and marker specs.

:class:`MarkerTracker` gives each component of
:func:`~anovox_perception.core.postprocess.find_components` a marker id that stays the
same while the blob moves a little between frames, and turns the live tracks into
marker specs (:class:`MarkerSpec`, a box and a text each) that
``msg_codec.markers_to_msg`` converts to a ``visualization_msgs/MarkerArray``.
Numpy only, no middleware.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anovox_perception.core.errors import ConfigError
from anovox_perception.core.parameters import defaults
from anovox_perception.core.postprocess import Component

__all__ = ['MarkerSpec', 'MarkerTracker', 'score_color']

# Gate and lifetime default to the detector node's markers.* parameters.
_DEFAULTS = defaults()


def score_color(score: float, alpha: float = 0.5) -> tuple[float, float, float, float]:
    """RGBA colour of a score in [0, 1]: yellow at 0 through orange to red at 1."""
    s = min(max(float(score), 0.0), 1.0)
    return (1.0, 1.0 - s, 0.0, float(alpha))


@dataclass(frozen=True)
class MarkerSpec:
    """A middleware-free description of one RViz marker (see msg_codec.markers_to_msg).

    ``id`` is shared by a component's box and its text; ``kind`` tells them apart
    (they go to different marker namespaces). ``action='delete'`` removes the
    marker with this ``kind`` and ``id``; other fields are then ignored.
    """

    id: int
    kind: str  # 'box' | 'text'
    action: str = 'add'  # 'add' | 'delete'
    position_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation_xyzw: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    scale_m: tuple[float, float, float] = (1.0, 1.0, 1.0)
    color_rgba: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.5)
    text: str = ''
    lifetime_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ('box', 'text') or self.action not in ('add', 'delete'):
            msg = f'MarkerSpec {self.id}: kind={self.kind!r}, action={self.action!r}; expected box|text, add|delete'
            raise ConfigError(msg)
        if not (0 <= self.id < 2**31):
            msg = f'MarkerSpec: id={self.id} does not fit a marker id (int32 >= 0)'
            raise ConfigError(msg)


@dataclass
class _Track:
    id: int
    component: Component
    missed: int = 0
    last_seen_ns: int = 0


class MarkerTracker:
    """Keeps marker ids stable across frames by matching components to tracks.

    Matching is greedy on centroid distance: the closest (track, component) pair
    within ``gate_m`` is matched first, then the next closest among the rest.
    Unmatched components start new tracks with fresh ids; a track unmatched for
    more than ``max_missed`` consecutive frames is removed.

    Flicker and stale boxes: every live track (matched, or missed at most
    ``max_missed`` times, shown at its last place) is re-published each frame
    with a ``lifetime_s`` a few frame periods long, so a frame with a missed
    detection does not blink and RViz expires everything by itself if the node
    stops. A removed track gets explicit deletes at once, so it does not linger
    for its lifetime. A stamp going backwards (bag loop) deletes every track.
    """

    def __init__(
        self,
        gate_m: float = _DEFAULTS['markers.match_distance_m'],
        max_missed: int = 2,
        lifetime_s: float = _DEFAULTS['markers.lifetime_s'],
        text_height_m: float = 0.8,
    ) -> None:
        """Create an empty tracker.

        Args:
            gate_m: largest centroid distance at which a component continues a track.
            max_missed: consecutive frames a track may go undetected and still be shown.
            lifetime_s: marker lifetime; RViz removes markers not refreshed within it.
            text_height_m: height of the text label's letters.

        Raises:
            ConfigError: a value is out of range.
        """
        if not (gate_m >= 0 and math.isfinite(gate_m)):
            msg = f'MarkerTracker: gate_m must be a finite value >= 0, got {gate_m}'
            raise ConfigError(msg)
        if max_missed < 0:
            msg = f'MarkerTracker: max_missed must be >= 0, got {max_missed}'
            raise ConfigError(msg)
        if not (lifetime_s >= 0 and math.isfinite(lifetime_s)):
            msg = f'MarkerTracker: lifetime_s must be a finite value >= 0, got {lifetime_s}'
            raise ConfigError(msg)
        if not text_height_m > 0:
            msg = f'MarkerTracker: text_height_m must be > 0, got {text_height_m}'
            raise ConfigError(msg)
        self.gate_m = float(gate_m)
        self.max_missed = int(max_missed)
        self.lifetime_s = float(lifetime_s)
        self.text_height_m = float(text_height_m)
        self._tracks: dict[int, _Track] = {}
        self._next_id = 0
        self._last_stamp_ns: int | None = None

    @property
    def track_ids(self) -> list[int]:
        """Ids of the live tracks, ascending."""
        return sorted(self._tracks)

    def reset(self) -> list[MarkerSpec]:
        """Forget every track; returns the deletes that clear their markers."""
        deletes = [spec for tid in sorted(self._tracks) for spec in self._delete_specs(tid)]
        self._tracks.clear()
        self._last_stamp_ns = None
        return deletes

    def update(self, components: Sequence[Component], stamp_ns: int) -> list[MarkerSpec]:
        """Match this frame's components and return the markers to publish.

        Args:
            components: this frame's components (e.g. from :func:`find_components`).
            stamp_ns: the frame's stamp; going backwards resets the tracker.

        Returns:
            Deletes for removed tracks first (ascending id), then a box and a text
            per live track (ascending id).
        """
        specs: list[MarkerSpec] = []
        if self._last_stamp_ns is not None and stamp_ns < self._last_stamp_ns:
            specs.extend(self.reset())
        self._last_stamp_ns = int(stamp_ns)

        track_ids = sorted(self._tracks)
        matched_tracks: set[int] = set()
        matched_comps: set[int] = set()
        if track_ids and components:
            prev = np.array([self._tracks[t].component.centroid_m for t in track_ids])
            cur = np.array([c.centroid_m for c in components])
            dist = np.linalg.norm(prev[:, None, :] - cur[None, :, :], axis=2)
            ti, ci = np.nonzero(dist <= self.gate_m)
            # Closest first; ties by (track id, component index) through the stable sort.
            for k in np.argsort(dist[ti, ci], kind='stable'):
                t, c = track_ids[ti[k]], int(ci[k])
                if t in matched_tracks or c in matched_comps:
                    continue
                matched_tracks.add(t)
                matched_comps.add(c)
                track = self._tracks[t]
                track.component, track.missed, track.last_seen_ns = components[c], 0, int(stamp_ns)

        for t in track_ids:
            if t in matched_tracks:
                continue
            track = self._tracks[t]
            track.missed += 1
            if track.missed > self.max_missed:
                specs.extend(self._delete_specs(t))
                del self._tracks[t]

        for c, comp in enumerate(components):
            if c not in matched_comps:
                tid = self._new_id()
                self._tracks[tid] = _Track(tid, comp, last_seen_ns=int(stamp_ns))

        for t in sorted(self._tracks):
            specs.extend(self._add_specs(self._tracks[t]))
        return specs

    def _new_id(self) -> int:
        # Marker ids are int32; wrap long before overflow, skipping ids still in use.
        while True:
            tid = self._next_id
            self._next_id = (self._next_id + 1) % (2**31 - 1)
            if tid not in self._tracks:
                return tid

    def _add_specs(self, track: _Track) -> list[MarkerSpec]:
        comp = track.component
        size = comp.size_m
        center = comp.box_center_m
        text = f'anomaly {comp.max_score:.2f} | {size[0]:.1f}x{size[1]:.1f}x{size[2]:.1f} m | {comp.range_m:.1f} m'
        box = MarkerSpec(
            id=track.id,
            kind='box',
            position_m=center,
            scale_m=size,
            color_rgba=score_color(comp.max_score),
            lifetime_s=self.lifetime_s,
        )
        label = MarkerSpec(
            id=track.id,
            kind='text',
            position_m=(center[0], center[1], comp.box_max_m[2] + self.text_height_m),
            scale_m=(self.text_height_m, self.text_height_m, self.text_height_m),
            color_rgba=(1.0, 1.0, 1.0, 1.0),
            text=text,
            lifetime_s=self.lifetime_s,
        )
        return [box, label]

    @staticmethod
    def _delete_specs(track_id: int) -> list[MarkerSpec]:
        return [
            MarkerSpec(id=track_id, kind='box', action='delete'),
            MarkerSpec(id=track_id, kind='text', action='delete'),
        ]
