"""Operators TensorRT's ONNX parser supports, and a check of an exported graph against them.

Source: onnx/onnx-tensorrt, ``docs/operators.md`` ("Supported ONNX Operators"),
the TensorRT 10.15 edition: operators marked ``Y`` in its support matrix, plus
the restrictions listed there that an exporter can violate. TensorRT 10.0, the
oldest 10.x release, parses opsets 9 to 20, so exported graphs stay in that
range. Update the list (and :data:`SOURCE`) when moving to a newer TensorRT.

The check runs at export and in the tests, so a graph the vehicle's TensorRT
would reject is caught on the training machine, without TensorRT installed.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

__all__ = [
    'MAX_OPSET',
    'MIN_OPSET',
    'SOURCE',
    'TENSORRT_SUPPORTED_OPS',
    'check_tensorrt_compatible',
]

SOURCE = 'onnx/onnx-tensorrt docs/operators.md (TensorRT 10.15 support matrix; opsets 9..20 parse on TensorRT 10.0+)'
MIN_OPSET = 9
MAX_OPSET = 20

# Operators marked Y in the support matrix, alphabetical as there.
_SUPPORTED_TABLE = """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool
    BatchNormalization BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape
    Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum
    Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm
    GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization
    GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If ImageScaler
    InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax
    Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish
    Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu
    QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal
    ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
    ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign
    RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink
    Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub
    Sum Tan Tanh TensorScatter ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
"""
TENSORRT_SUPPORTED_OPS = frozenset(_SUPPORTED_TABLE.split())

# Restrictions from the same table that an exporter can produce.
_RESIZE_MODES = frozenset({'nearest', 'linear'})
_RESIZE_COORDINATE_MODES = frozenset(
    {'half_pixel', 'pytorch_half_pixel', 'tf_half_pixel_for_nn', 'asymmetric', 'align_corners'}
)
_POOLS = frozenset({'AveragePool', 'MaxPool', 'LpPool'})
_ONNX_DOMAINS = frozenset({'', 'ai.onnx'})


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _as_text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _node_problems(node: onnx.NodeProto) -> list[str]:
    """Problems of one node (op support and the listed restrictions)."""
    where = f'node {node.name or "<unnamed>"} ({node.op_type})'
    if node.domain not in _ONNX_DOMAINS:
        return [f'{where}: custom domain {node.domain!r} needs a TensorRT plugin']
    if node.op_type not in TENSORRT_SUPPORTED_OPS:
        return [f'{where}: operator {node.op_type} is not supported by the TensorRT ONNX parser']
    attrs = _attributes(node)
    problems = []
    if node.op_type == 'Resize':
        mode = _as_text(attrs.get('mode', b'nearest'))
        coord = _as_text(attrs.get('coordinate_transformation_mode', b'half_pixel'))
        if mode not in _RESIZE_MODES:
            problems.append(f'{where}: Resize mode {mode!r} (TensorRT: {sorted(_RESIZE_MODES)})')
        if coord not in _RESIZE_COORDINATE_MODES:
            problems.append(f'{where}: Resize coordinate mode {coord!r} (TensorRT: {sorted(_RESIZE_COORDINATE_MODES)})')
        if attrs.get('antialias', 0):
            problems.append(f'{where}: Resize antialiasing is not supported')
    elif node.op_type in _POOLS:
        kernel = attrs.get('kernel_shape', [])
        if len(kernel) not in (2, 3):
            problems.append(f'{where}: only 2D or 3D pooling is supported, kernel_shape={list(kernel)}')
        if any(d != 1 for d in attrs.get('dilations', [])):
            problems.append(f'{where}: pooling dilations must be all ones')
    elif node.op_type == 'TopK' and attrs.get('sorted', 1) != 1:
        problems.append(f'{where}: TopK needs sorted=1')
    return problems


def _graph_problems(graph: onnx.GraphProto) -> Iterable[str]:
    for node in graph.node:
        yield from _node_problems(node)
        for attribute in node.attribute:  # If / Loop / Scan bodies
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _graph_problems(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for body in attribute.graphs:
                    yield from _graph_problems(body)


def check_tensorrt_compatible(model: onnx.ModelProto) -> list[str]:
    """Every reason TensorRT's ONNX parser would reject ``model`` (empty when it would not).

    Checks the default-domain opset range, each node's operator and domain
    (subgraphs included), the listed attribute restrictions, and that no
    graph input or output is float64.
    """
    problems = []
    for opset in model.opset_import:
        if opset.domain in _ONNX_DOMAINS and not MIN_OPSET <= opset.version <= MAX_OPSET:
            problems.append(f'opset {opset.version} is outside {MIN_OPSET}..{MAX_OPSET} (TensorRT 10.0+)')
    problems.extend(_graph_problems(model.graph))
    for value in [*model.graph.input, *model.graph.output]:
        if value.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE:
            problems.append(f'graph I/O {value.name!r} is float64; TensorRT I/O must be float32 or narrower')
    return problems
