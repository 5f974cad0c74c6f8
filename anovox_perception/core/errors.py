"""Exceptions raised by the anovox_perception runtime.

Every error names what went wrong, where, and what to do about it. Callers in the
node catch `AnovoxError`, log it, count it and keep running.
"""

from __future__ import annotations

__all__ = [
    'AnovoxError',
    'BackendError',
    'ConfigError',
    'DataError',
    'DecodeError',
    'EngineCacheError',
    'GeometryError',
    'ModelCardError',
]


class AnovoxError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(AnovoxError, ValueError):
    """A configuration value or parameter is missing, of the wrong type or out of range."""


class GeometryError(AnovoxError, ValueError):
    """A grid, camera model or transform is inconsistent."""


class DecodeError(AnovoxError, ValueError):
    """A sensor message or file could not be turned into arrays."""


class DataError(AnovoxError):
    """A dataset file is missing, truncated or malformed."""


class ModelCardError(AnovoxError, ValueError):
    """A model card is missing, malformed or does not match its model."""


class BackendError(AnovoxError, RuntimeError):
    """An inference backend is unavailable or failed to load or run a model."""


class EngineCacheError(BackendError):
    """A cached TensorRT engine is stale, mismatched or corrupt."""
