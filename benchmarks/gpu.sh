#!/usr/bin/env bash
# One short GPU check for sentitune (a few minutes on a CUDA machine with the package installed), at the precision
# sentitune.machine.Runtime picks there (bf16 on Ampere and later, fp16 on older GPUs; fp32 for a smoke run on a
# CPU without native bf16), each figure labelled by it:
#   1. matmul peak of the GPU (8192^3),
#   2. training throughput of a BERT-base-sized model built from BertConfig() (random weights; a hardware probe,
#      not sentitune's Trainer),
#   3. inference throughput of the same model (autocast, and weights cast to that precision),
#   4. the default model's accuracy after `sentitune train` (gpu-base schedule, 1 epoch) on a small IMDB slice.
# Prints the device and the CPU (benchmarks/common.py machine()) first and a Markdown table last.
#
#   bash benchmarks/gpu.sh                         # IMDB from $SENTITUNE_DATA, else the Hub's stanfordnlp/imdb
#   SENTITUNE_DATA=/data/imdb bash benchmarks/gpu.sh
#   GPU_SH_SMOKE=1 bash benchmarks/gpu.sh          # tiny sizes on whatever device there is: checks the script runs
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-0}"  # the Hub's IMDB is the fallback when $SENTITUNE_DATA is unset
python - <<'EOF'
import json
import os
import sys
import tempfile
import time

import torch
from transformers import BertConfig, BertForSequenceClassification

sys.path.insert(0, "benchmarks")
from common import machine, markdown_table, train_flops  # noqa: E402
from sentitune.machine import Runtime  # noqa: E402

SMOKE = os.environ.get("GPU_SH_SMOKE") == "1"
if not torch.cuda.is_available() and not SMOKE:
    sys.exit("benchmarks/gpu.sh: no CUDA device (set GPU_SH_SMOKE=1 for a tiny run on CPU)")
RUNTIME = Runtime.resolve()  # the device and precision `sentitune train` would use here
DEV, PRECISION = RUNTIME.device, RUNTIME.precision
AMP = f"{PRECISION} autocast" if PRECISION != "fp32" else "fp32"
BATCH, WIDTH, STEPS = (4, 32, 2) if SMOKE else (32, 256, 20)
INFER_BATCH = 8 if SMOKE else 256
MODEL = "tiny BERT (smoke)" if SMOKE else "BERT-base"
rows = []


def sync() -> None:
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, steps: int) -> float:
    """Seconds per call of fn after 3 warm-up calls."""
    for _ in range(3):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - start) / steps


def matmul_peak() -> float:
    n = 1024 if SMOKE else 8192
    a, b = (torch.randn(n, n, device=DEV, dtype=RUNTIME.dtype) for _ in range(2))
    return 2 * n**3 / timed(lambda: a @ b, 5 if SMOKE else 50) / 1e12


def bert_base():
    small = dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512) if SMOKE else {}
    config = BertConfig(num_labels=2, **small)  # defaults: BERT-base, 12 x 768, 110M parameters
    return BertForSequenceClassification(config).to(DEV), config


def train_throughput(peak: float) -> None:
    model, config = bert_base()
    ids = torch.randint(1000, config.vocab_size, (BATCH, WIDTH), device=DEV)
    labels = torch.randint(0, 2, (BATCH,), device=DEV)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=DEV.type == "cuda")

    def step():
        with RUNTIME.autocast():
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    seconds = timed(step, STEPS)
    tflops = train_flops(config, BATCH, WIDTH) / seconds / 1e12
    rows.append({"measure": f"{MODEL} train, {AMP}, batch {BATCH} x {WIDTH}", "per_s": BATCH / seconds,
                 "tokens_per_s": BATCH * WIDTH / seconds, "tflops": tflops, "share_of_peak": tflops / peak})


@torch.inference_mode()
def inference_throughput() -> None:
    model, config = bert_base()
    model.eval()
    ids = torch.randint(1000, config.vocab_size, (INFER_BATCH, WIDTH), device=DEV)
    with RUNTIME.autocast():
        seconds = timed(lambda: model(input_ids=ids), STEPS)
    rows.append({"measure": f"{MODEL} inference, {AMP}, batch {INFER_BATCH} x {WIDTH}",
                 "per_s": INFER_BATCH / seconds, "tokens_per_s": INFER_BATCH * WIDTH / seconds})
    if PRECISION == "fp32":  # weights already fp32: the row above
        return
    model.to(RUNTIME.dtype)
    seconds = timed(lambda: model(input_ids=ids), STEPS)
    rows.append({"measure": f"{MODEL} inference, {PRECISION} weights, batch {INFER_BATCH} x {WIDTH}",
                 "per_s": INFER_BATCH / seconds, "tokens_per_s": INFER_BATCH * WIDTH / seconds})


def default_model_accuracy() -> None:
    from sentitune.config import load_config
    from sentitune.errors import SentituneError
    from sentitune.train import train

    per_class = (16, 8, 16) if SMOKE else (1000, 100, 500)
    data = {"train_per_class": per_class[0], "validation_per_class": per_class[1], "test_per_class": per_class[2]}
    if os.environ.get("SENTITUNE_DATA"):
        data["data"] = os.environ["SENTITUNE_DATA"]
    cfg = load_config(preset="gpu-base", overrides={"output_dir": tempfile.mkdtemp(prefix="sentitune-gpu-"),
                                                     "name": "gpu-check", "max_length": 64 if SMOKE else 256,
                                                     "epochs": 1.0, "data": data})
    measure = f"default model, gpu-base 1 epoch, {2 * per_class[0]} IMDB train -> {2 * per_class[2]} test"
    try:
        metrics = json.loads((train(cfg, overwrite=True) / "metrics.json").read_text())
    except SentituneError as exc:
        rows.append({"measure": measure, "accuracy": f"skipped: {exc}"})
        return
    measure += f" ({metrics['train'].get('precision', PRECISION)})"
    rows.append({"measure": measure, "per_s": metrics["train"]["train_examples_per_s"],
                 "accuracy": metrics["test"]["accuracy"], "train_wall_s": metrics["train"]["wall_time_s"]})


name = torch.cuda.get_device_name(0) if DEV.type == "cuda" else "CPU (smoke run)"
print(f"{name}, torch {torch.__version__}, {PRECISION}")
print(machine())
peak = matmul_peak()
rows.append({"measure": f"{PRECISION} matmul peak", "tflops": peak})
train_throughput(peak)
inference_throughput()
default_model_accuracy()
print(markdown_table(rows, ["measure", "per_s", "tokens_per_s", "tflops", "share_of_peak", "accuracy", "train_wall_s"]))
EOF
