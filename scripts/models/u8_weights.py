"""Makes an INT8 ONNX graph give the same numbers on every x86 CPU (imported
by the converters in this folder; not a script).

Dynamic quantisation (onnxruntime.quantization.quantize_dynamic with
QInt8 weights, or a package quantised that way) leaves MatMulInteger nodes
that multiply uint8 activations (DynamicQuantizeLinear) by int8 weights.
Without AVX-VNNI, ONNX Runtime computes u8 x s8 with VPMADDUBSW, whose
16-bit sums of pairs saturate: on an AVX2-only CPU the states of a
transformer drift from a VNNI CPU's by several standard deviations within a
few blocks, and a head fitted on one machine's features scores nonsense on
the other (measured on the CLIP tower: every real face at ~1.0 on an AMD
EPYC without VNNI). Shifting every int8 weight and its zero point by +128
to uint8 keeps the integers (w + 128 - (zp + 128) = w - zp), and ONNX
Runtime runs u8 x u8 on kernels that do not saturate, on every CPU.
"""


def weights_to_uint8(model) -> int:
    """Rewrites, in place, the int8 weight initialisers (and their zero
    points) of every MatMulInteger to uint8, +128. Returns how many tensors
    changed; raises ValueError when a weight is left neither int8 nor uint8."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    shifted = set()
    for n in g.node:
        if n.op_type != "MatMulInteger":
            continue
        for name in (n.input[1], n.input[3] if len(n.input) > 3 else ""):
            t = inits.get(name)
            if t is None or name in shifted or t.data_type != TensorProto.INT8:
                continue
            u8 = (numpy_helper.to_array(t).astype(np.int16) + 128).astype(np.uint8)
            t.CopyFrom(numpy_helper.from_array(u8, name))
            shifted.add(name)
    for n in g.node:
        if n.op_type == "MatMulInteger":
            t = inits.get(n.input[1])
            if t is not None and t.data_type != TensorProto.UINT8:
                raise ValueError(f"MatMulInteger {n.name}: weight {t.name} is neither int8 nor uint8")
    return len(shifted)
