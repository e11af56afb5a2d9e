"""Write the small LiteRT (.tflite) test models without TensorFlow.

TensorFlow is too heavy for the test environment and ``litert-torch`` would downgrade pydantic,
so the flatbuffers are written directly with the generated schema of the ``tflite`` package
(``pip install tflite``; only this script needs it, the tests read the committed files and
``ai-edge-litert`` runs them). Run from the repository root to regenerate::

    python tests/adapters/data/make_tflite.py

Models (a 4 -> 8 -> 3 MLP, ReLU on the hidden layer, weights from ``mlp_weights()``):

* ``mlp_float.tflite``: float32 in and out, input ``input`` [?, 4], output ``logits`` [?, 3],
  in a ``serving_default`` signature.
* ``mlp_int8.tflite``: fully integer: int8 input and output with their own scale and zero
  point, int8 per-tensor symmetric weights, int32 biases (``INT8_PARAMS`` holds the scales).

Every number comes from a seeded generator, so the bytes are reproducible
(``tests/adapters/test_litert.py`` checks that the committed files equal this script's output).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20261201
N_IN, N_HIDDEN, N_OUT = 4, 8, 3

_FLOAT32, _INT32, _UINT8, _INT8 = 0, 2, 3, 9  # tflite.TensorType
_FULLY_CONNECTED = 9  # tflite.BuiltinOperator
_FC_OPTIONS = 8  # tflite.BuiltinOptions.FullyConnectedOptions
_NONE, _RELU = 0, 1  # tflite.ActivationFunctionType
_NP_TYPES = {_FLOAT32: np.float32, _INT32: np.int32, _UINT8: np.uint8, _INT8: np.int8}


def mlp_weights(seed: int = SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(W1 [4, 8], b1 [8]), (W2 [8, 3], b2 [3])]`` float32: ``relu(x W1 + b1) W2 + b2``."""
    rng = np.random.default_rng(seed)
    sizes = [N_IN, N_HIDDEN, N_OUT]
    return [
        (
            rng.normal(scale=0.6, size=(a, b)).astype(np.float32),
            rng.normal(scale=0.3, size=b).astype(np.float32),
        )
        for a, b in itertools.pairwise(sizes)
    ]


def calibration_inputs(seed: int = SEED) -> np.ndarray:
    """The rows whose ranges set the int8 model's activation scales (standard normal)."""
    return np.random.default_rng(seed + 1).normal(size=(512, N_IN)).astype(np.float32)


@dataclass
class _Tensor:
    name: str
    type: int
    shape: tuple[int, ...]
    signature: tuple[int, ...] | None = None
    data: np.ndarray | None = None
    scale: Sequence[float] = ()
    zero_point: Sequence[int] = ()


@dataclass
class _Graph:
    tensors: list[_Tensor] = field(default_factory=list)
    ops: list[tuple[list[int], list[int], int]] = field(default_factory=list)

    def add(self, tensor: _Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1


def _serialize(
    graph: _Graph,
    inputs: Mapping[str, int],
    outputs: Mapping[str, int],
    signature_keys: Sequence[str] = ("serving_default",),
) -> bytes:
    """One subgraph of FULLY_CONNECTED ops and one signature per key, all on that subgraph."""
    import importlib

    import flatbuffers

    # ``from tflite import Buffer`` gives the class; the builder functions live in the module.
    def schema(name: str) -> Any:
        return importlib.import_module(f"tflite.{name}")

    Buffer, FullyConnectedOptions, Model, Operator, OperatorCode = map(
        schema, ["Buffer", "FullyConnectedOptions", "Model", "Operator", "OperatorCode"]
    )
    QuantizationParameters, SignatureDef, SubGraph, Tensor, TensorMap = map(
        schema, ["QuantizationParameters", "SignatureDef", "SubGraph", "Tensor", "TensorMap"]
    )

    b = flatbuffers.Builder(4096)

    def vector(start: Any, offsets: Sequence[int]) -> int:
        start(b, len(offsets))
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return int(b.EndVector())

    # Buffer 0 is the empty sentinel; each constant tensor gets its own buffer.
    buffer_of: dict[int, int] = {}
    buffers: list[int] = []
    Buffer.Start(b)
    buffers.append(Buffer.End(b))
    for i, t in enumerate(graph.tensors):
        if t.data is None:
            continue
        data = b.CreateNumpyVector(np.frombuffer(np.ascontiguousarray(t.data).tobytes(), np.uint8))
        Buffer.Start(b)
        Buffer.AddData(b, data)
        buffer_of[i] = len(buffers)
        buffers.append(Buffer.End(b))

    tensors = []
    for i, t in enumerate(graph.tensors):
        name = b.CreateString(t.name)
        shape = b.CreateNumpyVector(np.asarray(t.shape, np.int32))
        signature = b.CreateNumpyVector(np.asarray(t.signature, np.int32)) if t.signature else None
        quant = None
        if t.scale:
            scale = b.CreateNumpyVector(np.asarray(t.scale, np.float32))
            zero = b.CreateNumpyVector(np.asarray(t.zero_point, np.int64))
            QuantizationParameters.Start(b)
            QuantizationParameters.AddScale(b, scale)
            QuantizationParameters.AddZeroPoint(b, zero)
            quant = QuantizationParameters.End(b)
        Tensor.Start(b)
        Tensor.AddShape(b, shape)
        if signature is not None:
            Tensor.AddShapeSignature(b, signature)
        Tensor.AddType(b, t.type)
        Tensor.AddBuffer(b, buffer_of.get(i, 0))
        Tensor.AddName(b, name)
        if quant is not None:
            Tensor.AddQuantization(b, quant)
        tensors.append(Tensor.End(b))

    operators = []
    for op_inputs, op_outputs, activation in graph.ops:
        FullyConnectedOptions.Start(b)
        FullyConnectedOptions.AddFusedActivationFunction(b, activation)
        options = FullyConnectedOptions.End(b)
        ins = b.CreateNumpyVector(np.asarray(op_inputs, np.int32))
        outs = b.CreateNumpyVector(np.asarray(op_outputs, np.int32))
        Operator.Start(b)
        Operator.AddOpcodeIndex(b, 0)
        Operator.AddInputs(b, ins)
        Operator.AddOutputs(b, outs)
        Operator.AddBuiltinOptionsType(b, _FC_OPTIONS)
        Operator.AddBuiltinOptions(b, options)
        operators.append(Operator.End(b))

    sub_name = b.CreateString("main")
    tensor_vec = vector(SubGraph.StartTensorsVector, tensors)
    op_vec = vector(SubGraph.StartOperatorsVector, operators)
    in_vec = b.CreateNumpyVector(np.asarray(list(inputs.values()), np.int32))
    out_vec = b.CreateNumpyVector(np.asarray(list(outputs.values()), np.int32))
    SubGraph.Start(b)
    SubGraph.AddTensors(b, tensor_vec)
    SubGraph.AddInputs(b, in_vec)
    SubGraph.AddOutputs(b, out_vec)
    SubGraph.AddOperators(b, op_vec)
    SubGraph.AddName(b, sub_name)
    subgraph = SubGraph.End(b)

    def tensor_maps(names: Mapping[str, int]) -> int:
        maps = []
        for key, index in names.items():
            s = b.CreateString(key)
            TensorMap.Start(b)
            TensorMap.AddName(b, s)
            TensorMap.AddTensorIndex(b, index)
            maps.append(TensorMap.End(b))
        return vector(SignatureDef.StartInputsVector, maps)

    signature_defs = []
    for signature_key in signature_keys:
        sig_in, sig_out = tensor_maps(inputs), tensor_maps(outputs)
        key = b.CreateString(signature_key)
        SignatureDef.Start(b)
        SignatureDef.AddInputs(b, sig_in)
        SignatureDef.AddOutputs(b, sig_out)
        SignatureDef.AddSignatureKey(b, key)
        SignatureDef.AddSubgraphIndex(b, 0)
        signature_defs.append(SignatureDef.End(b))

    OperatorCode.Start(b)
    OperatorCode.AddDeprecatedBuiltinCode(b, _FULLY_CONNECTED)
    OperatorCode.AddBuiltinCode(b, _FULLY_CONNECTED)
    OperatorCode.AddVersion(b, 1)
    opcode = OperatorCode.End(b)

    description = b.CreateString("compval test model (tests/adapters/data/make_tflite.py)")
    opcodes = vector(Model.StartOperatorCodesVector, [opcode])
    subgraphs = vector(Model.StartSubgraphsVector, [subgraph])
    buffer_vec = vector(Model.StartBuffersVector, buffers)
    signatures = vector(Model.StartSignatureDefsVector, signature_defs)
    Model.Start(b)
    Model.AddVersion(b, 3)
    Model.AddOperatorCodes(b, opcodes)
    Model.AddSubgraphs(b, subgraphs)
    Model.AddDescription(b, description)
    Model.AddBuffers(b, buffer_vec)
    Model.AddSignatureDefs(b, signatures)
    b.Finish(Model.End(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def build_float(
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    input_name: str = "input",
    output_name: str = "logits",
    signature_keys: Sequence[str] = ("serving_default",),
) -> bytes:
    """A float32 chain of FULLY_CONNECTED layers (ReLU on all but the last), batch dim dynamic.

    Each layer is ``(W [in, out], b [out])``; TFLite stores the weights as ``[out, in]``.
    """
    g = _Graph()
    x = g.add(
        _Tensor(input_name, _FLOAT32, (1, layers[0][0].shape[0]), (-1, layers[0][0].shape[0]))
    )
    for i, (w, bias) in enumerate(layers):
        last = i == len(layers) - 1
        wt = g.add(_Tensor(f"w{i}", _FLOAT32, w.T.shape, data=np.ascontiguousarray(w.T)))
        bt = g.add(_Tensor(f"b{i}", _FLOAT32, bias.shape, data=bias))
        name = output_name if last else f"h{i}"
        y = g.add(_Tensor(name, _FLOAT32, (1, w.shape[1]), (-1, w.shape[1])))
        g.ops.append(([x, wt, bt], [y], _NONE if last else _RELU))
        x = y
    return _serialize(g, {input_name: 0}, {output_name: x}, signature_keys)


def _affine(lo: float, hi: float, qmin: int, qmax: int) -> tuple[float, int]:
    """Scale and zero point mapping [lo, hi] (widened to contain 0) onto [qmin, qmax]."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (qmax - qmin)
    zero = round(qmin - lo / scale)
    return float(np.float32(scale)), int(np.clip(zero, qmin, qmax))


def int8_params(
    layers: Sequence[tuple[np.ndarray, np.ndarray]], calib: np.ndarray, *, unsigned: bool = False
) -> dict[str, Any]:
    """The quantization: activation (scale, zero point), weight scales, q-weights, q-biases.

    int8: activations in [-128, 127], symmetric int8 weights (zero point 0). ``unsigned``:
    TFLite's legacy uint8 scheme, activations in [0, 255] and weights offset by 128.
    """
    qmin, qmax = (0, 255) if unsigned else (-128, 127)
    activations: list[tuple[float, int]] = [
        _affine(float(calib.min()), float(calib.max()), qmin, qmax)
    ]
    h = calib.astype(np.float64)
    qweights, wscales, qbiases = [], [], []
    for i, (w, bias) in enumerate(layers):
        h = h @ w + bias
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
        activations.append(_affine(float(h.min()), float(h.max()), qmin, qmax))
        ws = float(np.float32(np.abs(w).max() / 127.0))
        qw = np.clip(np.round(w / ws), -127, 127)
        qweights.append((qw + 128).astype(np.uint8) if unsigned else qw.astype(np.int8))
        wscales.append(ws)
        bias_scale = np.float64(np.float32(activations[i][0])) * np.float64(np.float32(ws))
        qbiases.append(np.round(bias / bias_scale).astype(np.int32))
    return {
        "activations": activations,
        "weight_scales": wscales,
        "qweights": qweights,
        "qbiases": qbiases,
    }


def build_int8(
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    calib: np.ndarray,
    *,
    input_name: str = "input",
    output_name: str = "logits",
    unsigned: bool = False,
) -> bytes:
    """The fully int8 version of ``build_float``'s model (int8 input and output).

    ``unsigned``: uint8 activations, inputs and outputs and uint8 weights with zero point 128.
    """
    p = int8_params(layers, calib, unsigned=unsigned)
    act_type, w_zero = (_UINT8, 128) if unsigned else (_INT8, 0)
    acts = p["activations"]
    g = _Graph()
    n_in = layers[0][0].shape[0]
    s, z = acts[0]
    x = g.add(_Tensor(input_name, act_type, (1, n_in), (-1, n_in), scale=[s], zero_point=[z]))
    for i, (w, _) in enumerate(layers):
        last = i == len(layers) - 1
        ws, qw, qb = p["weight_scales"][i], p["qweights"][i], p["qbiases"][i]
        wt = g.add(
            _Tensor(
                f"w{i}",
                act_type,
                qw.T.shape,
                data=np.ascontiguousarray(qw.T),
                scale=[ws],
                zero_point=[w_zero],
            )
        )
        bs = float(np.float32(np.float64(np.float32(acts[i][0])) * np.float64(np.float32(ws))))
        bt = g.add(_Tensor(f"b{i}", _INT32, qb.shape, data=qb, scale=[bs], zero_point=[0]))
        name = output_name if last else f"h{i}"
        s, z = acts[i + 1]
        y = g.add(
            _Tensor(name, act_type, (1, w.shape[1]), (-1, w.shape[1]), scale=[s], zero_point=[z])
        )
        g.ops.append(([x, wt, bt], [y], _NONE if last else _RELU))
        x = y
    return _serialize(g, {input_name: 0}, {output_name: x})


def main() -> None:
    layers = mlp_weights()
    (HERE / "mlp_float.tflite").write_bytes(build_float(layers))
    (HERE / "mlp_int8.tflite").write_bytes(build_int8(layers, calibration_inputs()))
    for name in ("mlp_float.tflite", "mlp_int8.tflite"):
        print(f"wrote {HERE / name} ({(HERE / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
