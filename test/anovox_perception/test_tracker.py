"""Tests for anovox_perception.core.tracker: stable marker ids across frames, marker specs and colours."""

from __future__ import annotations

import numpy as np
import pytest

from anovox_perception.core.errors import ConfigError
from anovox_perception.core.postprocess import Component
from anovox_perception.core.tracker import MarkerSpec, MarkerTracker, score_color


def component_at(x: float, y: float, score: float = 0.9) -> Component:
    return Component(
        centroid_m=(x, y, 0.0),
        box_min_m=(x - 0.5, y - 0.25, -0.5),
        box_max_m=(x + 0.5, y + 0.25, 0.5),
        max_score=score,
        mean_score=score,
        voxel_count=8,
    )


def live_ids(specs: list[MarkerSpec]) -> list[int]:
    return sorted({s.id for s in specs if s.action == 'add'})


def test_tracker_keeps_the_id_when_a_blob_moves_slightly() -> None:
    tracker = MarkerTracker(gate_m=2.0)
    first = tracker.update([component_at(10.0, 0.0), component_at(20.0, 5.0)], stamp_ns=0)
    assert live_ids(first) == [0, 1]
    second = tracker.update([component_at(20.4, 5.3), component_at(10.5, -0.2)], stamp_ns=100)
    boxes = {s.id: s for s in second if s.kind == 'box'}
    assert boxes[0].position_m[:2] == pytest.approx((10.5, -0.2))
    assert boxes[1].position_m[:2] == pytest.approx((20.4, 5.3))


def test_tracker_gives_a_new_id_to_a_blob_that_appears_or_jumps_beyond_the_gate() -> None:
    tracker = MarkerTracker(gate_m=1.0, max_missed=0)
    tracker.update([component_at(10.0, 0.0)], stamp_ns=0)
    specs = tracker.update([component_at(10.2, 0.0), component_at(30.0, 0.0)], stamp_ns=1)
    assert live_ids(specs) == [0, 1]
    specs = tracker.update([component_at(12.0, 0.0), component_at(30.1, 0.0)], stamp_ns=2)
    assert live_ids(specs) == [1, 2]
    assert [(s.id, s.kind) for s in specs if s.action == 'delete'] == [(0, 'box'), (0, 'text')]


def test_tracker_shows_a_missed_track_until_max_missed_then_deletes_it() -> None:
    tracker = MarkerTracker(max_missed=2)
    tracker.update([component_at(5.0, 1.0)], stamp_ns=0)
    for stamp in (1, 2):
        specs = tracker.update([], stamp_ns=stamp)
        assert live_ids(specs) == [0], 'a missed track keeps its markers (no flicker)'
        assert specs[0].position_m[:2] == pytest.approx((5.0, 1.0))
    specs = tracker.update([], stamp_ns=3)
    assert specs == [MarkerSpec(id=0, kind='box', action='delete'), MarkerSpec(id=0, kind='text', action='delete')]
    assert tracker.track_ids == []
    assert tracker.update([], stamp_ns=4) == []


def test_tracker_resets_and_deletes_everything_when_time_goes_backwards() -> None:
    tracker = MarkerTracker()
    tracker.update([component_at(5.0, 1.0)], stamp_ns=1_000)
    specs = tracker.update([component_at(40.0, 1.0)], stamp_ns=10)
    assert [(s.id, s.action) for s in specs] == [(0, 'delete'), (0, 'delete'), (1, 'add'), (1, 'add')]


def test_tracker_markers_carry_box_text_colour_and_lifetime() -> None:
    tracker = MarkerTracker(lifetime_s=0.4, text_height_m=0.5)
    comp = Component((23.0, 4.0, 0.2), (22.4, 3.6, -0.1), (23.6, 4.4, 0.5), 0.93, 0.8, 23)
    box, text = tracker.update([comp], stamp_ns=0)
    assert box.kind == 'box' and text.kind == 'text' and box.id == text.id == 0
    assert box.position_m == pytest.approx((23.0, 4.0, 0.2))
    assert box.scale_m == pytest.approx((1.2, 0.8, 0.6))
    assert box.color_rgba == score_color(0.93)
    assert box.lifetime_s == text.lifetime_s == 0.4
    assert text.text == f'anomaly 0.93 | 1.2x0.8x0.6 m | {np.hypot(23.0, 4.0):.1f} m'
    assert text.position_m == pytest.approx((23.0, 4.0, 1.0))


def test_tracker_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    frames = [[component_at(*rng.uniform(0, 20, 2)) for _ in range(rng.integers(0, 6))] for _ in range(20)]
    runs = []
    for _ in range(2):
        tracker = MarkerTracker(gate_m=3.0)
        runs.append([tracker.update(f, stamp_ns=i) for i, f in enumerate(frames)])
    assert runs[0] == runs[1]


def test_score_color_runs_from_yellow_to_red() -> None:
    assert score_color(0.0) == (1.0, 1.0, 0.0, 0.5)
    assert score_color(1.0, alpha=1.0) == (1.0, 0.0, 0.0, 1.0)
    assert score_color(7.0) == score_color(1.0)


def test_marker_spec_rejects_unknown_kinds_and_negative_ids() -> None:
    with pytest.raises(ConfigError, match="kind='sphere'"):
        MarkerSpec(id=0, kind='sphere')
    with pytest.raises(ConfigError, match='id=-1'):
        MarkerSpec(id=-1, kind='box')


def test_tracker_rejects_bad_configuration() -> None:
    with pytest.raises(ConfigError, match='max_missed must be >= 0'):
        MarkerTracker(max_missed=-1)
