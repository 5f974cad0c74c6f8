"""Export: ONNX export and graph passes, INT8 variants, TensorRT plugins.

python -m anovox_training.export --checkpoint ... --out models
"""
