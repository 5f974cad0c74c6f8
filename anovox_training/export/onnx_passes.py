"""Exact rewrites of exported ONNX graphs that make them cheaper to run.

``fuse_max_softmax``: the anomaly head scores a voxel with the maximum softmax
probability over the normal classes, exported as ``Softmax(axis=1)`` followed
by ``ReduceMax(axis=1)``. ONNX Runtime computes a softmax over a non-last axis
by transposing the whole (B, C, nx, ny, nz) tensor there and back, which on
the base model costs more than half of the CPU run time. The maximum softmax
probability needs no full normalisation:

    max_c softmax(x)_c = exp(max x - max x) / sum_c exp(x_c - max x) = 1 / sum_c exp(x_c - max x)

so the pair becomes ``ReduceMax(keepdims) -> Sub -> Exp -> ReduceSum -> Reciprocal``:
the same arithmetic as the softmax's own max-subtracted form, on operators
TensorRT parses, with no transposes.

``drop_unit_pow``: ``Pow(x, 1.0)`` (a tunable exponent exported at its value 1)
becomes ``Identity``, which every runtime removes; ONNX Runtime otherwise runs
a full elementwise pass over the voxel grid for it.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ['drop_unit_pow', 'drop_unused_constants', 'fuse_max_softmax', 'optimise']


def _attribute(node: onnx.NodeProto, name: str, default: object) -> object:
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _rank(model: onnx.ModelProto, tensor: str) -> int | None:
    for value in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        if value.name == tensor and value.type.tensor_type.HasField('shape'):
            return len(value.type.tensor_type.shape.dim)
    return None


def fuse_max_softmax(model: onnx.ModelProto) -> int:
    """Replace each ``Softmax(axis=k) -> ReduceMax(axes=[k], keepdims=0)`` pair in place.

    Only pairs where the ReduceMax is the softmax's sole consumer and the
    softmax output is not a graph output are rewritten. Needs opset 13..17
    (``ReduceMax`` with an ``axes`` attribute, ``ReduceSum`` with an ``axes``
    input) and runs shape inference to resolve negative axes.

    Returns:
        The number of pairs rewritten.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), 0)
    if not 13 <= opset <= 17:
        return 0
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    nodes = list(graph.node)
    consumers: dict[str, list[int]] = defaultdict(list)
    for index, node in enumerate(nodes):
        for name in node.input:
            consumers[name].append(index)
    outputs = {o.name for o in graph.output}
    replacements: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for index, node in enumerate(nodes):
        if node.op_type != 'Softmax' or node.output[0] in outputs or len(consumers[node.output[0]]) != 1:
            continue
        reduce_index = consumers[node.output[0]][0]
        reduce = nodes[reduce_index]
        axis = int(_attribute(node, 'axis', -1))
        if axis < 0:
            rank = _rank(inferred, node.input[0])
            if rank is None:
                continue
            axis += rank
        axes = list(_attribute(reduce, 'axes', []))
        if reduce.op_type != 'ReduceMax' or _attribute(reduce, 'keepdims', 1) != 0 or axes != [axis]:
            continue
        prefix = f'{node.name or node.output[0]}/max_softmax'
        axes_name = f'{prefix}/axes'
        graph.initializer.append(numpy_helper.from_array(np.array([axis], dtype=np.int64), axes_name))
        x = node.input[0]
        replacements[index] = [
            helper.make_node('ReduceMax', [x], [f'{prefix}/max'], name=f'{prefix}/ReduceMax', axes=[axis], keepdims=1),
            helper.make_node('Sub', [x, f'{prefix}/max'], [f'{prefix}/shifted'], name=f'{prefix}/Sub'),
            helper.make_node('Exp', [f'{prefix}/shifted'], [f'{prefix}/exp'], name=f'{prefix}/Exp'),
            helper.make_node(
                'ReduceSum', [f'{prefix}/exp', axes_name], [f'{prefix}/sum'], name=f'{prefix}/ReduceSum', keepdims=0
            ),
            helper.make_node('Reciprocal', [f'{prefix}/sum'], [reduce.output[0]], name=f'{prefix}/Reciprocal'),
        ]
        dropped.add(reduce_index)
    if not replacements:
        return 0
    rewritten = []
    for index, node in enumerate(nodes):
        if index not in dropped:
            rewritten.extend(replacements.get(index, [node]))
    del graph.node[:]
    graph.node.extend(rewritten)
    return len(replacements)


def _constant_value(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    """The value of an initializer or Constant-node output, else None."""
    for initializer in model.graph.initializer:
        if initializer.name == name:
            return numpy_helper.to_array(initializer)
    for node in model.graph.node:
        if node.op_type == 'Constant' and node.output[0] == name:
            value = _attribute(node, 'value', None)
            return numpy_helper.to_array(value) if value is not None else None
    return None


def drop_unit_pow(model: onnx.ModelProto) -> int:
    """Replace ``Pow(x, c)`` with a constant ``c`` that is exactly 1 by ``Identity(x)``, in place.

    Returns:
        The number of nodes replaced.
    """
    replaced = 0
    for node in model.graph.node:
        if node.op_type != 'Pow' or len(node.input) != 2:
            continue
        exponent = _constant_value(model, node.input[1])
        if exponent is None or exponent.size != 1 or float(exponent.reshape(-1)[0]) != 1.0:
            continue
        identity = helper.make_node('Identity', [node.input[0]], list(node.output), name=f'{node.name}/unit')
        node.CopyFrom(identity)
        replaced += 1
    return replaced


def drop_unused_constants(model: onnx.ModelProto) -> int:
    """Remove Constant nodes and initializers nothing reads (left behind by the other passes), in place.

    Returns:
        The number of nodes and initializers removed.
    """
    graph = model.graph
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    nodes = [n for n in graph.node if n.op_type != 'Constant' or n.output[0] in used]
    initializers = [i for i in graph.initializer if i.name in used]
    removed = len(graph.node) - len(nodes) + len(graph.initializer) - len(initializers)
    if removed:
        del graph.node[:]
        graph.node.extend(nodes)
        del graph.initializer[:]
        graph.initializer.extend(initializers)
    return removed


def optimise(model: onnx.ModelProto) -> dict[str, int]:
    """Run every pass in place; returns pass name -> rewrites."""
    counts = {'fuse_max_softmax': fuse_max_softmax(model), 'drop_unit_pow': drop_unit_pow(model)}
    counts['drop_unused_constants'] = drop_unused_constants(model)
    return counts
