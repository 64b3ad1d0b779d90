"""xpnet's estimators in skl2onnx: ``skl2onnx.to_onnx(pipeline)`` converts a pipeline that
holds an :class:`xpnet.MLPClassifier` or :class:`xpnet.MLPRegressor`.

Registered through skl2onnx's documented ``update_registered_converter`` when
:mod:`xpnet.onnx` is imported. The converter copies the nodes and initializers of the same
lean graph :func:`xpnet.onnx.build` exports (traced from xpnet's forward code) into
skl2onnx's container, with skl2onnx's conventions: probabilities and predictions in the
pipeline's float type, numeric class labels as int64, a regression prediction ``(N, k)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["register"]


def _float_type(operator: Any) -> Any:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    kind = operator.inputs[0].type
    return DoubleTensorType if isinstance(kind, DoubleTensorType) else FloatTensorType


def _classifier_shapes(operator: Any) -> None:
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType

    est = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    n_out = est.n_outputs_
    multilabel = est.out_activation_ == "logistic" and n_out > 1
    strings = not multilabel and np.asarray(est.classes_).dtype.kind in "UO"
    label_shape = [n, n_out] if multilabel else [n]
    operator.outputs[0].type = (StringTensorType if strings else Int64TensorType)(label_shape)
    width = n_out if multilabel else len(est.classes_)
    operator.outputs[1].type = _float_type(operator)([n, width])


def _regressor_shapes(operator: Any) -> None:
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _float_type(operator)([n, operator.raw_operator.n_outputs_])


def _convert(scope: Any, operator: Any, container: Any) -> None:
    from onnx import helper, numpy_helper

    from ._graph import trace
    from ._lean import lean
    from ._sources import served

    opset = container.target_opset
    if opset is not None and opset < 18:
        raise RuntimeError(f"xpnet's {type(operator.raw_operator).__name__} converter needs "
                           f"target_opset >= 18 (ReduceMax with an axes input); got {opset}")
    spec = served(operator.raw_operator)
    float_type = _float_type(operator)
    spec.input_dtype = spec.skl2onnx_dtype = (
        "float64" if float_type.__name__ == "DoubleTensorType" else "float32")
    graph = lean(trace(spec)).graph
    names = {"X": operator.inputs[0].full_name}
    names.update({out.name: var.full_name for out, var in zip(graph.output, operator.outputs)})

    def name(value: str) -> str:
        if value not in names:
            names[value] = scope.get_unique_variable_name(f"xpnet_{value}")
        return names[value]

    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        container.add_initializer(name(tensor.name), tensor.data_type, list(array.shape),
                                  array.ravel().tolist())
    for node in graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if "to" in attributes:  # Cast's dtype is an int that skl2onnx passes on as is
            attributes["to"] = int(attributes["to"])
        container.add_node(node.op_type, [name(i) for i in node.input],
                           [name(o) for o in node.output],
                           name=scope.get_unique_operator_name(f"xpnet_{node.op_type}"),
                           op_domain="", op_version=opset, **attributes)


def register() -> None:
    """Register both estimators with skl2onnx (the classifier with skl2onnx's ``zipmap``
    option; ``nocl`` only False: the labels are always the estimator's classes)."""
    from skl2onnx import update_registered_converter

    from ..sklearn import MLPClassifier, MLPRegressor

    update_registered_converter(MLPClassifier, "XpnetMLPClassifier", _classifier_shapes,
                                _convert, options={"zipmap": [True, False, "columns"],
                                                   "nocl": [False]})
    update_registered_converter(MLPRegressor, "XpnetMLPRegressor", _regressor_shapes,
                                _convert)
