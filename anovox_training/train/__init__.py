"""Training: the trainer, its typed configuration, losses and augmentation.

python -m anovox_training.train --config config/train.yaml
"""
