"""anovox_training: AnoVox data, fusion detector model, training, evaluation, export."""

__all__: list[str] = []
