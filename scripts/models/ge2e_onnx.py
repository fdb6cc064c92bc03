#!/usr/bin/env python3
"""Builds an ONNX speaker encoder from the GE2E weights that the PyPI wheel
`Resemblyzer` 0.1.4 ships (`resemblyzer/pretrained.pt`, Apache-2.0): run by
scripts/setup.py (model source `convert`); the output's sha256 is pinned in
models/manifest.toml, so the build must be, and is, deterministic.

The checkpoint is a PyTorch file in the legacy (pre-1.6, non-zip) format.
It is read here without PyTorch: a restricted unpickler that knows only
ordered dicts, float storages and the tensor-rebuild function, then the raw
little-endian storages that follow the pickles. Nothing else in the file is
executed.

Network (Wan et al., "Generalized end-to-end loss for speaker verification",
2018, as trained by Resemblyzer): 3 LSTM layers of 256 units over 40-band mel
power frames (25 ms window, 10 ms hop, 16 kHz), a 256x256 linear layer on
the last layer's final hidden state, ReLU, L2 normalisation.

  mels       [N, T, 40] f32  mel power spectrogram frames (not log), T = 160
                             for the 1.6 s partial utterances Candor uses
  embedding  [N, 256]   f32  unit-norm speaker embedding (compare by cosine)

PyTorch orders an LSTM's gates input, forget, cell, output; ONNX orders them
input, output, forget, cell: the weight blocks are reordered. The built graph
is checked against a NumPy LSTM written from the equations on random input
(max difference printed; above 1e-4 the build fails).

Usage: ge2e_onnx.py IN.pt OUT.onnx   Needs: onnx, onnxruntime, numpy (pinned by setup.py).
"""
import collections
import pickle
import struct
import sys

HIDDEN = 256
MELS = 40
LAYERS = 3
MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    """A float32 storage named in the pickle; filled from the file afterwards."""

    def __init__(self, key, size):
        self.key = key
        self.size = size
        self.data = None


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def numpy(self):
        import numpy as np

        base = self.storage.data
        if not self.size:
            return np.array(base[self.offset], dtype=np.float32)
        item = base.itemsize
        return np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=[s * item for s in self.stride]
        ).astype(np.float32, copy=True)


class _FloatStorageType:
    pass


def _rebuild_tensor_v2(storage, offset, size, stride, *_rest):
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *_rest):
    return data


class _Unpickler(pickle.Unpickler):
    ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch", "FloatStorage"): _FloatStorageType,
    }

    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused: {module}.{name}") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key, _location, size = pid[1:5]
        if storage_type is not _FloatStorageType:
            raise pickle.UnpicklingError("only float32 storages are expected")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not expected")
        if key not in self.storages:
            self.storages[key] = _Storage(key, size)
        return self.storages[key]


def load_legacy(path):
    import numpy as np

    with open(path, "rb") as f:
        if pickle.load(f) != MAGIC:
            raise ValueError("not a legacy PyTorch file (magic number)")
        if pickle.load(f) != 1001:
            raise ValueError("unknown legacy protocol version")
        pickle.load(f)  # sys_info: endianness and type sizes
        storages = {}
        result = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            (n,) = struct.unpack("<q", f.read(8))
            st = storages[key]
            if n != st.size:
                raise ValueError(f"storage {key}: {n} elements, pickle said {st.size}")
            st.data = np.frombuffer(f.read(4 * n), dtype="<f4")
            if st.data.size != n:
                raise ValueError(f"storage {key} truncated")
    return result


def reorder_gates(w):
    """PyTorch [i, f, g, o] blocks -> ONNX [i, o, f, c]."""
    import numpy as np

    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def build(state):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    axes0 = const("axes0", np.array([0], dtype=np.int64))
    axes1 = const("axes1", np.array([1], dtype=np.int64))
    nodes.append(helper.make_node("Transpose", ["mels"], ["x0"], perm=[1, 0, 2]))
    x = "x0"
    for k in range(LAYERS):
        w = reorder_gates(state[f"lstm.weight_ih_l{k}"])[None]
        r = reorder_gates(state[f"lstm.weight_hh_l{k}"])[None]
        b = np.concatenate(
            [reorder_gates(state[f"lstm.bias_ih_l{k}"]), reorder_gates(state[f"lstm.bias_hh_l{k}"])]
        )[None]
        nodes.append(
            helper.make_node(
                "LSTM",
                [x, const(f"W{k}", w), const(f"R{k}", r), const(f"B{k}", b)],
                [f"y{k}", f"h{k}", ""],
                hidden_size=HIDDEN,
            )
        )
        if k + 1 < LAYERS:
            nodes.append(helper.make_node("Squeeze", [f"y{k}", axes1], [f"x{k + 1}"]))
            x = f"x{k + 1}"
    nodes.append(helper.make_node("Squeeze", [f"h{LAYERS - 1}", axes0], ["last"]))
    nodes.append(
        helper.make_node(
            "Gemm", ["last", const("lin_w", state["linear.weight"]), const("lin_b", state["linear.bias"])],
            ["lin"], transB=1,
        )
    )
    nodes.append(helper.make_node("Relu", ["lin"], ["act"]))
    nodes.append(helper.make_node("ReduceL2", ["act"], ["norm"], axes=[1], keepdims=1))
    nodes.append(helper.make_node("Max", ["norm", const("eps", np.array(1e-12, dtype=np.float32))], ["den"]))
    nodes.append(helper.make_node("Div", ["act", "den"], ["embedding"]))
    graph = helper.make_graph(
        nodes,
        "ge2e_speaker_encoder",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["N", "T", MELS])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", HIDDEN])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="candor-ge2e-onnx"
    )
    model.ir_version = 8
    model.doc_string = "GE2E speaker encoder (Resemblyzer 0.1.4 pretrained.pt, Apache-2.0), built by scripts/models/ge2e_onnx.py"
    return model


def reference(state, mels):
    """The network from the LSTM equations, in NumPy (PyTorch gate order)."""
    import numpy as np

    def sig(v):
        return 0.5 * (1.0 + np.tanh(0.5 * v))

    x = mels.astype(np.float64)
    n, t, _ = x.shape
    for k in range(LAYERS):
        wi = state[f"lstm.weight_ih_l{k}"].astype(np.float64)
        wh = state[f"lstm.weight_hh_l{k}"].astype(np.float64)
        b = (state[f"lstm.bias_ih_l{k}"] + state[f"lstm.bias_hh_l{k}"]).astype(np.float64)
        h = np.zeros((n, HIDDEN))
        c = np.zeros((n, HIDDEN))
        ys = []
        for s in range(t):
            z = x[:, s] @ wi.T + h @ wh.T + b
            i, f, g, o = np.split(z, 4, axis=1)
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
            ys.append(h)
        x = np.stack(ys, axis=1)
    e = np.maximum(h @ state["linear.weight"].T.astype(np.float64) + state["linear.bias"], 0.0)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    import numpy as np
    import onnx
    import onnxruntime as ort

    ckpt = load_legacy(sys.argv[1])
    raw = ckpt["model_state"] if isinstance(ckpt, dict) and "model_state" in ckpt else ckpt
    state = {k: v.numpy() for k, v in raw.items() if k.startswith(("lstm.", "linear."))}
    expect = {"linear.weight": (HIDDEN, HIDDEN), "linear.bias": (HIDDEN,)}
    for k in range(LAYERS):
        inp = MELS if k == 0 else HIDDEN
        expect[f"lstm.weight_ih_l{k}"] = (4 * HIDDEN, inp)
        expect[f"lstm.weight_hh_l{k}"] = (4 * HIDDEN, HIDDEN)
        expect[f"lstm.bias_ih_l{k}"] = (4 * HIDDEN,)
        expect[f"lstm.bias_hh_l{k}"] = (4 * HIDDEN,)
    for name, shape in expect.items():
        if name not in state or state[name].shape != shape:
            print(f"weight {name}: expected {shape}, found {getattr(state.get(name), 'shape', None)}", file=sys.stderr)
            return 1

    model = build(state)
    onnx.checker.check_model(model)
    data = model.SerializeToString()

    rng = np.random.default_rng(7)
    mels = (rng.gamma(0.6, 2.0, size=(3, 40, MELS)) ** 2).astype(np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    got = sess.run(["embedding"], {"mels": mels})[0]
    diff = float(np.abs(got - reference(state, mels)).max())
    print(f"ge2e_onnx: ONNX vs NumPy reference, max |diff| = {diff:.2e}")
    if not diff < 1e-4:
        print("ge2e_onnx: the ONNX graph does not match the reference", file=sys.stderr)
        return 1
    with open(sys.argv[2], "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
