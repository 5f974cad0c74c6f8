"""AnoVox data: reader for real layouts, synthetic world generator, checks."""

__all__: list[str] = []
