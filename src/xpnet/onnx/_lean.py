"""Make a traced graph lean: at most three nodes per layer (MatMul, Add, activation).

ndonnx writes graphs for any runtime, so it guards a matrix product and a maximum against
empty inputs with ``If`` subgraphs (onnxruntime once failed on them) and makes ``max``
propagate NaN by hand; and it spells out an activation written with several array
operations as that many nodes. Here, on the ``ModelProto``:

1. a *size guard* (an ``If`` whose condition is ``size == 0`` computed from ``Size``
   nodes alone) becomes its ``else`` branch, the general case: onnxruntime multiplies and
   reduces empty tensors correctly (the tests run 0 rows);
2. ``Constant`` nodes become initializers, ``Identity`` nodes go;
3. a NaN guard ``where(any(isnan(x)), nan, reduce_max(x))`` becomes the bare reduction,
   which propagates NaN in onnxruntime (tested);
4. an *elementwise island* (nodes computing a function of one tensor and scalar
   constants) that feeds only matrix products becomes the one ONNX operator it equals
   (``Sigmoid``, ``Tanh``, ``Relu``) or nothing (identity): equality is checked by
   evaluating both on a probe of values with onnx's reference evaluator, to a few units
   in the last place. Only hidden layers are fused: there an absolute error of an ulp is
   what matters, whereas an output probability must stay relatively exact (onnxruntime's
   ``Sigmoid`` is not, far in its tails), so the output keeps xpnet's own form;
5. nodes and initializers nothing reads are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["count_nodes", "lean"]

_ELEMENTWISE = frozenset({
    "Abs", "Neg", "Exp", "Log", "Tanh", "Sigmoid", "Relu", "Reciprocal", "Sqrt", "Add",
    "Sub", "Mul", "Div", "Max", "Min", "Greater", "GreaterOrEqual", "Less", "LessOrEqual",
    "Where",
})
_FUSED = ("Sigmoid", "Tanh", "Relu", "Identity")
_SHAPE_ONLY = frozenset({"Size", "Mul", "Identity", "Constant", "Cast"})


def count_nodes(graph: onnx.GraphProto) -> int:
    """Nodes of ``graph``, those of every subgraph (``If`` branches, loops) included."""
    total = 0
    for node in graph.node:
        total += 1
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                total += count_nodes(attribute.g)
            total += sum(count_nodes(g) for g in attribute.graphs)
    return total


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {name: node for node in graph.node for name in node.output}


def _constant_value(name: str, graph: onnx.GraphProto, producers: dict[str, Any]
                    ) -> np.ndarray | None:
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    node = producers.get(name)
    if node is not None and node.op_type == "Constant" and node.attribute[0].name == "value":
        return numpy_helper.to_array(node.attribute[0].t)
    return None


def _is_size_guard(name: str, graph: onnx.GraphProto, producers: dict[str, Any]) -> bool:
    """Whether ``name`` is ``Equal(f(Size(a), Size(b), ...), 0)``: true only for empty
    tensors."""
    node = producers.get(name)
    if node is None or node.op_type != "Equal":
        return False
    values = [_constant_value(i, graph, producers) for i in node.input]
    if not any(v is not None and v.size == 1 and v.item() == 0 for v in values):
        return False
    pending = [i for i, v in zip(node.input, values) if v is None]
    while pending:
        source = producers.get(pending.pop())
        if source is None or source.op_type not in _SHAPE_ONLY:
            return False
        if source.op_type != "Size":
            pending.extend(source.input)
    return True


def _inline_size_guards(graph: onnx.GraphProto) -> bool:
    producers = _producers(graph)
    nodes: list[onnx.NodeProto] = []
    changed = False
    for node in graph.node:
        if node.op_type != "If" or not _is_size_guard(node.input[0], graph, producers):
            nodes.append(node)
            continue
        branch = next(a.g for a in node.attribute if a.name == "else_branch")
        nodes.extend(branch.node)
        graph.initializer.extend(branch.initializer)
        nodes.extend(helper.make_node("Identity", [out.name], [name])
                     for out, name in zip(branch.output, node.output))
        changed = True
    _replace_nodes(graph, nodes)
    return changed


def _replace_nodes(graph: onnx.GraphProto, nodes: Iterable[onnx.NodeProto]) -> None:
    nodes = list(nodes)
    del graph.node[:]
    graph.node.extend(nodes)


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every use of the value ``old`` (in subgraphs too) reads ``new``."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH \
                    else attribute.graphs:
                _rename(sub, old, new)


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    nodes = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 \
                and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            nodes.append(node)
    _replace_nodes(graph, nodes)


def _bypass_identities(graph: onnx.GraphProto) -> None:
    outputs = {o.name for o in graph.output}
    kept = []
    producers = _producers(graph)
    sources = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for node in list(graph.node):
        if node.op_type != "Identity":
            kept.append(node)
            continue
        source, target = node.input[0], node.output[0]
        if target not in outputs:
            _rename(graph, target, source)
        elif source not in outputs and source not in sources and source in producers:
            producer = producers[source]
            producer.output[list(producer.output).index(source)] = target
            _rename(graph, source, target)
        else:
            kept.append(node)
    _replace_nodes(graph, kept)


def _chain_source(name: str, producers: dict[str, Any], ops: frozenset[str]) -> str:
    """Follow ``name`` up through shape-only nodes (``ops``) to what they reshape."""
    while name in producers and producers[name].op_type in ops:
        name = producers[name].input[0]
    return name


def _drop_nan_guards(graph: onnx.GraphProto) -> None:
    producers = _producers(graph)
    reshapes = frozenset({"Squeeze", "Unsqueeze", "Reshape", "Identity"})
    for node in graph.node:
        if node.op_type != "Where":
            continue
        condition, nan, value = node.input
        nan_value = _constant_value(nan, graph, producers)
        reduced = producers.get(_chain_source(value, producers, reshapes))
        if nan_value is None or nan_value.size != 1 or not np.isnan(nan_value).all() \
                or reduced is None or reduced.op_type not in ("ReduceMax", "ReduceMin"):
            continue
        data = _chain_source(reduced.input[0], producers, reshapes)
        if _reads_only_isnan_of(condition, data, graph, producers):
            _rename(graph, node.output[0], value)
            node.op_type = "Identity"  # left for _drop_unused (or read by an output)
            del node.input[:]
            node.input.append(value)
    _bypass_identities(graph)


def _reads_only_isnan_of(name: str, data: str, graph: onnx.GraphProto,
                         producers: dict[str, Any]) -> bool:
    """Whether ``name`` is computed from ``IsNaN(data)`` and constants alone."""
    pending, seen_isnan = [name], False
    while pending:
        current = pending.pop()
        if _constant_value(current, graph, producers) is not None:
            continue
        source = producers.get(current)
        if source is None:
            return False
        if source.op_type == "IsNaN":
            if _chain_source(source.input[0], producers, frozenset({"Unsqueeze", "Identity"})) \
                    != data:
                return False
            seen_isnan = True
            continue
        pending.extend(source.input)
    return seen_isnan


def _roots(graph: onnx.GraphProto, scalars: set[str]) -> dict[str, str]:
    """For each value, the one tensor it is an elementwise function of (with scalar
    constants), or itself where it is not such a function."""
    root: dict[str, str] = {}
    for node in graph.node:
        sources = {root.get(name, name) for name in node.input if name not in scalars}
        single = node.op_type in _ELEMENTWISE and len(sources) == 1
        for out in node.output:
            root[out] = next(iter(sources)) if single else out
    return root


def _probe(dtype: np.dtype) -> np.ndarray:
    """Values an activation is checked on: dense near 0, its tails, signed zeros."""
    span = 80.0 if dtype == np.float32 else 700.0
    values = np.concatenate([np.linspace(-40, 40, 8001), np.geomspace(1e-30, span, 400),
                             -np.geomspace(1e-30, span, 400), [0.0, -0.0]])
    return values.astype(dtype)


def _evaluate(nodes: list[onnx.NodeProto], root: str, out: str, graph: onnx.GraphProto,
              elem_type: int, opset: int, z: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    used = {name for node in nodes for name in node.input}
    inits = [t for t in graph.initializer if t.name in used]
    mini = helper.make_graph(
        nodes, "probe", [helper.make_tensor_value_info(root, elem_type, [None])],
        [helper.make_tensor_value_info(out, elem_type, None)], inits)
    model = helper.make_model(mini, opset_imports=[helper.make_opsetid("", opset)])
    feeds: dict[str, Any] = {root: z}
    result: Any = ReferenceEvaluator(model).run(None, feeds)
    return np.asarray(result[0])


def _equal_operator(nodes: list[onnx.NodeProto], root: str, out: str,
                    graph: onnx.GraphProto, elem_type: int, opset: int) -> str | None:
    """The operator of :data:`_FUSED` that the island ``nodes`` (``root`` -> ``out``)
    equals on the probe, to 4 units in the last place (relative to max(1, |value|))."""
    dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    z = _probe(dtype)
    with np.errstate(all="ignore"):
        island = _evaluate(nodes, root, out, graph, elem_type, opset, z)
        if island.shape != z.shape:
            return None
        tolerance = 4 * np.finfo(dtype).eps * np.maximum(1.0, np.abs(island))
        for op in _FUSED:
            single = [helper.make_node(op, [root], [out])]
            expected = _evaluate(single, root, out, graph, elem_type, opset, z)
            if np.all(np.abs(expected.astype(np.float64) - island) <= tolerance):
                return op
    return None


def _fuse_hidden_activations(model: onnx.ModelProto) -> None:
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    scalars = {t.name for t in graph.initializer if int(np.prod(t.dims)) == 1}
    root = _roots(graph, scalars)
    types = {v.name: v.type.tensor_type.elem_type for v in
             onnx.shape_inference.infer_shapes(model).graph.value_info}
    types.update({v.name: v.type.tensor_type.elem_type for v in graph.input})
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    islands: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        if node.op_type in _ELEMENTWISE and root[node.output[0]] != node.output[0]:
            islands.setdefault(root[node.output[0]], []).append(node)
    fused: dict[int, onnx.NodeProto | None] = {}
    for start, nodes in islands.items():
        inside = {id(n) for n in nodes}
        leaving = [out for n in nodes for out in n.output
                   if out in outputs or any(id(c) not in inside for c in consumers.get(out, []))]
        if len(nodes) < 2 or len(leaving) != 1 or start not in types or leaving[0] in outputs \
                or any(c.op_type != "MatMul" for c in consumers[leaving[0]]):
            continue
        op = _equal_operator(nodes, start, leaving[0], graph, types[start], opset)
        if op is not None:
            fused.update({id(n): None for n in nodes})
            fused[id(nodes[-1])] = helper.make_node(op, [start], [leaving[0]])
    if fused:
        kept = [fused.get(id(n), n) for n in graph.node]
        _replace_nodes(graph, [n for n in kept if n is not None])
        _bypass_identities(graph)


def _merge_keepdims_reductions(model: onnx.ModelProto) -> None:
    """``Squeeze(ReduceMax(Unsqueeze(x, [r]), axes, keepdims=1), [-1])`` with ``r`` the
    new last axis (ndonnx's ``max(..., keepdims=True)``) is ``ReduceMax(x, axes,
    keepdims=1)``."""
    graph = model.graph
    producers = _producers(graph)
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in
             [*onnx.shape_inference.infer_shapes(model).graph.value_info, *graph.input]}
    for node in graph.node:
        reduced = producers.get(node.input[0]) if node.op_type == "Squeeze" else None
        if reduced is None or reduced.op_type not in ("ReduceMax", "ReduceMin") \
                or len(reduced.input) < 2 or len(node.input) < 2:
            continue
        expanded = producers.get(reduced.input[0])
        if expanded is None or expanded.op_type != "Unsqueeze" or expanded.input[0] not in ranks:
            continue
        rank = ranks[expanded.input[0]]
        new_axis = _constant_value(expanded.input[1], graph, producers)
        squeezed = _constant_value(node.input[1], graph, producers)
        axes = _constant_value(reduced.input[1], graph, producers)
        if new_axis is None or squeezed is None or axes is None \
                or {int(a) % (rank + 1) for a in new_axis.ravel()} != {rank} \
                or {int(a) % (rank + 1) for a in squeezed.ravel()} != {rank} \
                or rank in {int(a) % (rank + 1) for a in axes.ravel()}:
            continue
        merged = helper.make_node(reduced.op_type, [expanded.input[0], reduced.input[1]],
                                  [node.output[0]], keepdims=1)
        node.CopyFrom(merged)
    _drop_unused(graph)


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    names: set[str] = set()
    for attribute in node.attribute:
        for sub in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH \
                else attribute.graphs:
            for inner in sub.node:
                names.update(inner.input)
                names.update(_subgraph_inputs(inner))
    return names


def _drop_unused(graph: onnx.GraphProto) -> None:
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
            needed.update(_subgraph_inputs(node))
    _replace_nodes(graph, reversed(kept))
    initializers = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def lean(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` made lean in place (see the module docstring), and returned."""
    graph = model.graph
    while _inline_size_guards(graph):
        pass
    _constants_to_initializers(graph)
    _bypass_identities(graph)
    _drop_nan_guards(graph)
    _drop_unused(graph)
    _fuse_hidden_activations(model)
    _merge_keepdims_reductions(model)
    _drop_unused(graph)
    return model
