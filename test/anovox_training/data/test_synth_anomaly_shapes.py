"""Synthetic world: each anomaly category has shapes of its own, and held-out splits differ in shape."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from anovox_training.data.labels import CATEGORY_TO_LABEL
from anovox_training.data.synth.anomalies import BUILDERS, SHAPE_KINDS, SPLIT_CATEGORIES, build_anomaly
from anovox_training.data.synth.anomaly_shapes import CATEGORY_SHAPES
from anovox_training.data.synth.objects import Model
from anovox_training.data.synth.primitives import BOX, CYLINDER, ELLIPSOID, aabb_half_extents

_SAMPLES = 60


def _split_of(category: str) -> str:
    (split,) = [s for s, categories in SPLIT_CATEGORIES.items() if category in categories]
    return split


def test_no_category_is_in_two_splits_and_every_category_is_in_one():
    drawn = [c for categories in SPLIT_CATEGORIES.values() for c in categories]
    assert len(drawn) == len(set(drawn))
    assert set(drawn) == set(CATEGORY_TO_LABEL) == set(SHAPE_KINDS)


def test_no_shape_kind_is_in_two_categories():
    kinds = [k for category_kinds in SHAPE_KINDS.values() for k in category_kinds]
    assert len(kinds) == len(set(kinds)), sorted(k for k in kinds if kinds.count(k) > 1)


def test_the_kind_table_names_exactly_the_builders_of_each_category():
    for category, kinds in SHAPE_KINDS.items():
        assert set(kinds) == set(CATEGORY_SHAPES[category].kinds), category


def test_training_categories_have_many_shape_families():
    assert all(len(SHAPE_KINDS[c]) >= 12 for c in SPLIT_CATEGORIES['train'])


@pytest.mark.parametrize('category', sorted(SHAPE_KINDS))
def test_a_category_builds_only_its_own_kinds_and_all_of_them(category):
    seen = set()
    for seed in range(150):
        model = BUILDERS[category](np.random.default_rng(seed))
        prefix, kind = model.name.split('/')
        assert prefix == category and kind in SHAPE_KINDS[category], model.name
        assert set(model.parts.label.tolist()) == {CATEGORY_TO_LABEL[category]}
        seen.add(kind)
    assert seen == set(SHAPE_KINDS[category])


def test_a_kind_of_another_category_is_refused():
    with pytest.raises(KeyError, match="'ladder' is no shape of 'home'"):
        build_anomaly('home', np.random.default_rng(0), kind='ladder')


def test_anomalies_rest_on_the_ground_with_a_centred_footprint():
    rng = np.random.default_rng(5)
    for category, kinds in SHAPE_KINDS.items():
        for kind in kinds:
            model = build_anomaly(category, rng, kind)
            half = aabb_half_extents(model.parts)
            lo, hi = (model.parts.center - half).min(axis=0), (model.parts.center + half).max(axis=0)
            np.testing.assert_allclose([lo[2], lo[0] + hi[0], lo[1] + hi[1]], 0.0, atol=1e-9, err_msg=model.name)


def _volume(model: Model) -> float:
    b = model.parts
    h, t = b.half, b.taper
    box = 8 * h.prod(axis=1)
    ellipsoid = 4 / 3 * np.pi * h.prod(axis=1)
    cylinder = np.pi * h[:, 0] * h[:, 1] * 2 * h[:, 2] * (1 + t + t * t) / 3
    return float(np.where(b.kind == BOX, box, np.where(b.kind == ELLIPSOID, ellipsoid, cylinder)).sum())


def _descriptor(model: Model) -> np.ndarray:
    """Shape statistics: primitive-type mix, part count, bounding-box aspect and uprightness, size and fill."""
    b = model.parts
    half = aabb_half_extents(b)
    upright = (b.center + half).max(axis=0) - (b.center - half).min(axis=0)
    extent = np.sort(upright)[::-1]
    return np.array(
        [
            *(np.mean(b.kind == k) for k in (BOX, ELLIPSOID, CYLINDER)),
            np.log2(len(b)) / 4,
            extent[1] / extent[0],
            extent[2] / extent[0],
            upright[2] / extent[0],
            np.log2(extent[0]) / 3,
            min(_volume(model) / float(np.prod(extent)), 1.0),
        ]
    )


def _mean_descriptor(category: str, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.mean([_descriptor(build_anomaly(category, rng, kind)) for _ in range(_SAMPLES)], axis=0)


def test_kinds_of_different_splits_differ_in_structure_far_more_than_resamples_of_one_kind():
    kinds = [(c, k) for c, category_kinds in SHAPE_KINDS.items() for k in category_kinds]
    first = {ck: _mean_descriptor(*ck, seed=1) for ck in kinds}
    # A renamed copy of a kind would sit as close as the same kind drawn with other seeds.
    resample = max(float(np.linalg.norm(first[ck] - _mean_descriptor(*ck, seed=2))) for ck in kinds)
    closest = min(
        (float(np.linalg.norm(first[a] - first[b])), a, b)
        for a, b in itertools.combinations(kinds, 2)
        if _split_of(a[0]) != _split_of(b[0])
    )
    assert closest[0] > 2.0 * resample, f'{closest[1]} and {closest[2]} look alike ({closest[0]:.3f} vs {resample:.3f})'
