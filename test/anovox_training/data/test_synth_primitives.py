"""Synthetic world: ray-primitive intersections, normals and bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anovox_perception.core.geometry import rotation_from_rpy
from anovox_training.data.synth.parts import Parts
from anovox_training.data.synth.primitives import (
    BOX,
    CYLINDER,
    ELLIPSOID,
    aabb_half_extents,
    intersect,
    local_normals,
)


def _rays(directions: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.array(directions, dtype=np.float64)
    return d[:, 0], d[:, 1], d[:, 2]


def test_box_hit_distance_is_the_near_face():
    t = intersect(
        BOX, np.array([-5.0, 0.0, 0.0]), *_rays([(1, 0, 0), (1, 0.1, 0), (0, 1, 0)]), np.array([1.0, 2.0, 3.0])
    )
    np.testing.assert_allclose(t[:2], [4.0, 4.0])
    assert np.isinf(t[2])


def test_sphere_hit_distance_matches_geometry_and_scales_with_direction_length():
    origin = np.array([0.0, 0.0, -10.0])
    half = np.array([2.0, 2.0, 2.0])
    t = intersect(ELLIPSOID, origin, *_rays([(0, 0, 1), (0, 0, 2), (0, 0.1, 1), (0, 1, 1)]), half)
    np.testing.assert_allclose(t[0], 8.0)
    np.testing.assert_allclose(t[1], 4.0)
    # Ray through (0, 0.1 t, t - 10): (0.1 t)^2 + (t - 10)^2 = 4.
    a, b, c = 1.01, -20.0, 96.0
    np.testing.assert_allclose(t[2], (-b - math.sqrt(b * b - 4 * a * c)) / (2 * a))
    assert np.isinf(t[3])


def test_small_distant_sphere_is_hit_precisely():
    t = intersect(ELLIPSOID, np.array([-400.0, 0.0, 0.0]), *_rays([(1, 0, 0), (1, 0.00004, 0)]), np.full(3, 0.05))
    np.testing.assert_allclose(t[0], 399.95, rtol=1e-12)
    assert np.isfinite(t[1])


def test_cylinder_side_and_caps_are_hit():
    half = np.array([1.0, 1.0, 2.0])
    side = intersect(CYLINDER, np.array([-5.0, 0.0, 0.0]), *_rays([(1, 0, 0)]), half)
    cap = intersect(CYLINDER, np.array([0.0, 0.0, 5.0]), *_rays([(0, 0, -1)]), half)
    miss = intersect(CYLINDER, np.array([-5.0, 0.0, 2.5]), *_rays([(1, 0, 0)]), half)
    np.testing.assert_allclose([side[0], cap[0]], [4.0, 3.0])
    assert np.isinf(miss[0])


def test_cone_radius_shrinks_towards_the_top():
    half = np.array([1.0, 1.0, 1.0])
    # At z = 0 the cone's radius is 0.5, at z = 0.8 it is 0.1.
    t = intersect(CYLINDER, np.array([-5.0, 0.0, 0.0]), *_rays([(1, 0, 0)]), half, taper=0.0)
    t_top = intersect(CYLINDER, np.array([-5.0, 0.0, 0.8]), *_rays([(1, 0, 0)]), half, taper=0.0)
    np.testing.assert_allclose([t[0], t_top[0]], [4.5, 4.9])


def test_rays_starting_inside_a_primitive_do_not_hit_it():
    for kind in (BOX, ELLIPSOID, CYLINDER):
        t = intersect(kind, np.zeros(3), *_rays([(1, 0, 0), (0, 0, 1)]), np.ones(3))
        assert np.isinf(t).all()


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match='unknown primitive kind 7'):
        intersect(7, np.zeros(3), *_rays([(1, 0, 0)]), np.ones(3))


def test_normals_are_unit_and_point_outwards():
    rng = np.random.default_rng(0)
    half = np.array([[1.0, 2.0, 0.5]] * 3)
    for kind in (BOX, ELLIPSOID, CYLINDER):
        origin = np.array([-6.0, 0.3, 0.1])
        d = rng.normal(size=(200, 3)) * [0.1, 0.3, 0.1] + [1.0, 0.0, 0.0]
        t = intersect(kind, origin, d[:, 0], d[:, 1], d[:, 2], half[0], taper=0.5)
        hit = np.isfinite(t)
        p = origin + t[hit, None] * d[hit]
        n = local_normals(np.full(hit.sum(), kind), p, np.repeat(half[:1], hit.sum(), 0), np.full(hit.sum(), 0.5))
        np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0)
        assert (np.einsum('ij,ij->i', n, d[hit]) < 0).all()


def test_axis_aligned_extents_enclose_rotated_primitives_tightly():
    rng = np.random.default_rng(1)
    rpy = (0.4, -0.3, 1.1)
    parts = Parts(1, 0, (0.5, 0.5, 0.5))
    parts.box((0, 0, 0), (2.0, 1.0, 0.5), rpy=rpy)
    parts.ellipsoid((0, 0, 0), (1.0, 0.5, 0.25), rpy=rpy)
    batch = parts.build()
    half = aabb_half_extents(batch)
    corners = batch.corners()[0]
    np.testing.assert_allclose(half[0], np.abs(corners).max(axis=0))
    u = rng.normal(size=(20000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    surface = (u * [1.0, 0.5, 0.25]) @ rotation_from_rpy(*rpy).T
    assert (np.abs(surface).max(axis=0) <= half[1] + 1e-9).all()
    np.testing.assert_allclose(np.abs(surface).max(axis=0), half[1], atol=5e-3)
