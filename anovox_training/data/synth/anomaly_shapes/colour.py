"""Anomaly colours: drawn from the palettes of normal objects, so colour never gives an anomaly away."""

from __future__ import annotations

import numpy as np

from anovox_training.data.synth import materials as M

__all__ = ['anomaly_colour']


def anomaly_colour(rng: np.random.Generator, family: str) -> np.ndarray:
    """A colour of ``family`` half of the time and of any family otherwise, so anomaly colours overlap every class."""
    return M.sample_color(rng, None if rng.random() < 0.5 else family)
