"""The ceiling for int8 inference on this CPU: onnxruntime's fp32 and dynamic-int8 (per-channel, as
`sentitune export` quantizes) matrix products on a MiniLM layer's shapes, against torch's fp32 matmul peak.

    flock /tmp/sentitune-cpu.lock python benchmarks/int8_peak.py [--tokens 4096]

At equal work a speed-up over an fp32 `pipeline()` that already runs near the fp32 peak cannot exceed the ratio
of the int8 to the fp32 rate printed here (AVX2 without VNNI multiplies int8 by vpmaddubsw + vpmaddwd).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import torch  # noqa: E402


def matmul_graph(path: Path, k: int, n: int) -> None:
    """An ONNX graph y = x @ W with a constant fp32 W (k x n) and a dynamic number of rows."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((k, n)).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def session_gflops(path: Path, m: int, k: int, n: int, repeats: int = 20) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    session.run(None, {"x": x})
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {"x": x})
        best = min(best, time.perf_counter() - started)
    return 2 * m * k * n / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=4096, help="rows: tokens in one batch")
    args = parser.parse_args()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    print(common.machine(), flush=True)
    rows = {"torch fp32 4096^3": common.matmul_gflops(torch.float32)}
    with tempfile.TemporaryDirectory() as tmp:
        for k, n in ((384, 1536), (1536, 384), (384, 384)):
            fp32, int8 = Path(tmp) / f"mm{k}x{n}.onnx", Path(tmp) / f"mm{k}x{n}-int8.onnx"
            matmul_graph(fp32, k, n)
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
            rows[f"ort fp32 {args.tokens}x{k}x{n}"] = session_gflops(fp32, args.tokens, k, n)
            rows[f"ort int8 {args.tokens}x{k}x{n}"] = session_gflops(int8, args.tokens, k, n)
    for name, value in rows.items():
        print(json.dumps({"product": name, "gflops": round(value, 1)}), flush=True)
    shapes = [name.split(" ", 2)[2] for name in rows if name.startswith("ort fp32")]
    ratio = np.mean([rows[f"ort int8 {s}"] / rows[f"ort fp32 {s}"] for s in shapes])
    print(f"int8 / fp32 on the layer shapes: {ratio:.2f}x (the ceiling for onnx-int8 over fp32 at equal work)")


if __name__ == "__main__":
    main()
