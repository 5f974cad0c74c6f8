"""anovox_perception: online camera+LiDAR road-anomaly detection (runtime).

Never imports anovox_training; the training package depends on this one.
"""

__all__ = ['__version__']

__version__ = '0.1.0'
