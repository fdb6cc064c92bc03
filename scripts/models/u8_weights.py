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

u8 x u8 has no fast kernel, though: on an AVX2 CPU the CLIP tower is
slower than with int8 weights (an ad hoc timing, not a bench), and VNNI
(u8 x s8 only) is never used.
`weights_to_int7` is the other way out, for a graph whose head is fitted on
its output: each symmetric int8 weight is requantised to 7 bits (w / 2,
rounded, in -64..63; its scale doubled). A pair of u8 x s7 products then
sums to at most 2 x 255 x 64 = 32640, inside VPMADDUBSW's 16-bit range, so
the fast u8 x s8 kernels (VNNI or not) give the exact integers on every CPU.
The weights lose one bit: the tower's states move (features change), so a
head must be fitted on the int7 tower's own output. It is not shipped
(`clip_layers.py --int7` builds it): a face head refitted on its features
did worse on the shared evaluation photographs than the shipped one (see
docs/image-detector.md).
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


def weights_to_int7(model) -> int:
    """Rewrites, in place, every MatMulInteger's symmetric int8 weights (zero
    point 0, or uint8 with zero point 128) to int8 values in -64..63 (w / 2,
    rounded half to even) and doubles the weight's per-channel scale (found
    as the initialiser multiplied into the output's scale). Returns how many
    weights changed; raises ValueError on a graph of another shape."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    done = set()
    for n in g.node:
        if n.op_type != "MatMulInteger" or n.input[1] in done:
            continue
        w, zp = inits.get(n.input[1]), inits.get(n.input[3] if len(n.input) > 3 else "")
        if w is None or zp is None:
            raise ValueError(f"MatMulInteger {n.name}: weight or zero point is not an initialiser")
        wv = numpy_helper.to_array(w).astype(np.int16)
        zv = numpy_helper.to_array(zp).astype(np.int16)
        if w.data_type == TensorProto.UINT8:
            wv, zv = wv - 128, zv - 128
        if (zv != 0).any():
            raise ValueError(f"MatMulInteger {n.name}: weights are not symmetric")
        # Output: MatMulInteger -> Cast -> Mul(., a_scale * w_scale).
        (cast,) = consumers[n.output[0]]
        (mul,) = consumers[cast.output[0]]
        other = [i for i in mul.input if i != cast.output[0]][0]
        scales = producer[other]
        ws = [i for i in scales.input if i in inits]
        if cast.op_type != "Cast" or mul.op_type != "Mul" or scales.op_type != "Mul" or len(ws) != 1:
            raise ValueError(f"MatMulInteger {n.name}: output scale not found")
        s = inits[ws[0]]
        w7 = np.clip(np.round(wv / 2.0), -64, 63).astype(np.int8)
        w.CopyFrom(numpy_helper.from_array(w7, w.name))
        zp.CopyFrom(numpy_helper.from_array(np.zeros(zv.shape, np.int8), zp.name))
        s.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(s) * 2).astype(np.float32), s.name))
        done.add(n.input[1])
    return len(done)
