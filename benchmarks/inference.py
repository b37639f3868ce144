"""Inference throughput: sentitune's batch prediction against `transformers.pipeline("text-classification")`.

    flock /tmp/sentitune-cpu.lock python benchmarks/inference.py                    # 2,000 test reviews
    flock /tmp/sentitune-cpu.lock python benchmarks/inference.py --reviews 500 --skip-variants
    flock /tmp/sentitune-cpu.lock python benchmarks/inference.py --model TEACHER/model --student STUDENT/model

Both read the same model folder, saved the way a sentitune run saves it (the default model with a fresh
negative/positive head; max_length 256 in its tokenizer and config), or `--model` (a run's model/ folder,
which adds each arm's accuracy on the reviews). sentitune's arm is `predict_proba`
with the run's eval batch size, the path `sentitune evaluate` takes. The pipeline keeps its defaults
(fp32, one review per forward pass) except `truncation=True`, without which reviews over 512 tokens
raise; it then truncates at the tokenizer's 256 tokens, the same budget as sentitune. sentitune's arms:
the torch backend (default) and the int8 ONNX graph `sentitune export` writes (`--backend onnx-int8`), each
with its default batch size; variants follow. The torch arm runs at the precision `sentitune.core.machine.Runtime`
picks and is named by it (bf16 on a CPU with native bf16, fp32 on one without); on a CPU without native bf16
the variants that only exist in bf16 (the bf16 copy's full last layer, bf16 autocast) are skipped, as is the
bf16 matmul peak (emulated bf16 would take hours). Each arm runs in a fresh process (no other arm's threads or
memory around), all arms in turn, `--repeats` times (A B A B). Wall time includes tokenisation. Prints the table,
the pipeline's useful GFLOP/s against the fp32 and bf16 matmul peaks (what 5x would demand), and the ratios last.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import numpy as np
import torch

from sentitune.core.labels import LabelScheme
from sentitune.core.machine import Runtime
from sentitune.data import clean_text, tokenize_function
from sentitune.inference.predict import SentimentModel, logits_for_ids
from sentitune.models.loading import default_model, load_classifier, load_tokenizer, quiet_transformers

MAX_LENGTH = 256
BINARY = LabelScheme(("negative", "positive"))
RUNTIME = Runtime.resolve()  # what SentimentModel.from_pretrained picks on this machine
BF16 = common.native_bf16()


def model_folder(out: Path) -> Path:
    """The default model with a negative/positive head, saved like a finished sentitune run's model/."""
    torch.manual_seed(0)
    model, tokenizer = load_classifier(default_model(), BINARY), load_tokenizer(default_model())
    model.config.sentitune = {"max_length": MAX_LENGTH, "truncation": "head+tail"}
    tokenizer.model_max_length = MAX_LENGTH
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def timed(fn, texts: list[str]) -> tuple[float, np.ndarray]:
    """(seconds, predicted class id per text) for fn(texts), after a short warm-up on the first texts."""
    fn(texts[:16])
    start = time.perf_counter()
    predicted = fn(texts)
    return time.perf_counter() - start, predicted


def pipeline_arm(folder: Path):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(folder), device="cpu")
    label2id = pipe.model.config.label2id  # the folder's own class names (negative/positive for IMDB)
    return lambda texts: np.array([label2id[p["label"]] for p in pipe(texts, truncation=True)])


def sentitune_arm(folder: Path, batch_size: int | None = None, precision: str = "auto", attn: str | None = None,
                  backend: str = "torch", full_last_layer: bool = False):
    model = SentimentModel.from_pretrained(folder, backend=backend, runtime=Runtime.resolve(precision))
    if attn:
        model.model.set_attn_implementation(attn)
    if full_last_layer:  # the bf16 copy without runtime.first_token_only (model_at uses it only at bf16)
        model._fast = copy.deepcopy(model.model).to(torch.bfloat16).eval()
    return lambda texts: model.predict_proba(texts, batch_size=batch_size).argmax(1)


def autocast_arm(folder: Path, batch_size: int = 64):
    """sentitune's path before bf16 weight copies: bf16 autocast over the fp32 weights."""
    model = SentimentModel.from_pretrained(folder)
    encode = tokenize_function(model.tokenizer, MAX_LENGTH, model.truncation)
    runtime = Runtime.resolve("bf16")

    def run(texts: list[str]) -> np.ndarray:
        ids = encode({"text": [clean_text(t) for t in texts]})["input_ids"]
        return logits_for_ids(model.model, ids, model.tokenizer.pad_token_id or 0, batch_size, runtime).argmax(1)

    return run


MAIN = {  # the torch arm is named by the precision the runtime picks here (fp32 on a CPU without native bf16)
    f"sentitune, torch (default: {RUNTIME.precision}, batch {16 if RUNTIME.on_cpu else 64})": (sentitune_arm, {}),
    "sentitune, onnx-int8 (batch 1)": (sentitune_arm, dict(backend="onnx-int8")),
}
NEEDS_BF16 = {  # variants that only exist in bf16: skipped on a CPU without native bf16 (emulated bf16 takes hours)
    "sentitune, torch, every token through the last layer",
    "sentitune, bf16 autocast over fp32 weights (first version)",
}
VARIANTS = {
    "sentitune, torch, every token through the last layer": (sentitune_arm, dict(full_last_layer=True)),
    "sentitune, torch batch 8": (sentitune_arm, dict(batch_size=8)),
    "sentitune, onnx fp32 (batch 1)": (sentitune_arm, dict(backend="onnx")),
    "sentitune, torch, SDPA attention": (sentitune_arm, dict(attn="sdpa")),
    "sentitune, torch fp32": (sentitune_arm, dict(precision="fp32")),
    "sentitune, bf16 autocast over fp32 weights (first version)": (autocast_arm, {}),
}


STUDENT = {  # --student: a distilled model's arms in the same rotation, against the pipeline on --model
    "student, sentitune torch": (sentitune_arm, {}),
    "student, sentitune onnx-int8 (batch 1)": (sentitune_arm, dict(backend="onnx-int8")),
}
ARMS = {"pipeline() defaults": (pipeline_arm, {})} | MAIN | VARIANTS | STUDENT


def one_arm(name: str, folder: Path, reviews: int) -> dict:
    """Time one arm on the benchmark's reviews (run in its own process: no other arm's threads or memory around)."""
    quiet_transformers()
    splits, _ = common.imdb_splits(train_per_class=8, test_per_class=reviews // 2)
    make, kwargs = ARMS[name]
    seconds, predicted = timed(make(folder, **kwargs), list(splits["test"]["text"]))
    labels = np.asarray(splits["test"]["label"])
    return {"seconds": seconds, "n": len(labels), "accuracy": float((predicted == labels).mean())}


def useful_gflop(folder: Path, reviews: int) -> float:
    """Forward matmul GFLOPs of the benchmark's reviews at the tokenizer's 256-token cut, without padding (the
    pipeline's work: batch 1; common.train_flops divided by 3 for forward only)."""
    from transformers import AutoConfig, AutoTokenizer

    config, tokenizer = AutoConfig.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    splits, _ = common.imdb_splits(train_per_class=8, test_per_class=reviews // 2)
    encoded = tokenizer(list(splits["test"]["text"]), truncation=True, max_length=MAX_LENGTH)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    return sum(common.train_flops(config, 1, n) / 3 for n in lengths) / 1e9


def work_lines(folder: Path, reviews: int, pipeline_seconds: float) -> list[str]:
    """How far 5x the pipeline is from this machine's matmul peaks, both measured now (the bf16 peak only on a
    CPU with native bf16; without, 5x is set against the fp32 peak, the precision sentitune runs there)."""
    gflop = useful_gflop(folder, reviews)
    fp32, bf16 = common.matmul_gflops(torch.float32), common.bf16_matmul_gflops()
    rate = gflop / pipeline_seconds
    lines = [f"useful work: {gflop:.0f} GFLOP for {reviews} reviews; pipeline() {rate:.0f} GFLOP/s = "
             f"{rate / fp32:.0%} of the fp32 matmul peak ({fp32:.0f} GFLOP/s)"]
    if bf16 is None:
        return lines + [f"5x pipeline() = {5 * rate:.0f} GFLOP/s of useful work = {5 * rate / fp32:.0%} of the fp32 "
                        f"matmul peak; bf16 matmul peak {common.NO_BF16}"]
    return lines + [f"5x pipeline() = {5 * rate:.0f} GFLOP/s of useful work = {5 * rate / bf16:.0%} of the bf16 "
                    f"matmul peak ({bf16:.0f} GFLOP/s)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=2000, help="balanced IMDB test reviews")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all arms (A B A B), averaged")
    parser.add_argument("--skip-variants", action="store_true", help="only the pipeline and the two main arms")
    parser.add_argument("--model",
                        help="a fine-tuned model folder (e.g. runs/cpu-quick/model): adds each arm's accuracy")
    parser.add_argument("--student", help="a distilled student's model folder (`sentitune distill`): its torch and "
                                          "onnx-int8 arms join the rotation, set against the pipeline on --model")
    parser.add_argument("--arm", choices=list(ARMS), help=argparse.SUPPRESS)  # internal: run one arm, print JSON
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(one_arm(args.arm, args.folder, args.reviews)))
        return
    quiet_transformers()
    print(common.machine())
    source = Path(args.model) if args.model else model_folder(Path(tempfile.mkdtemp(prefix="sentitune-infer-")))
    folder = common.exported_copy(source)
    names = [n for n in ARMS if n not in STUDENT] if not args.skip_variants else ["pipeline() defaults", *MAIN]
    student = common.exported_copy(Path(args.student)) if args.student else None
    names += list(STUDENT) if student else []
    if not BF16:
        for name in [n for n in names if n in NEEDS_BF16]:
            print(f"skipped {name}: {common.NO_BF16}")
        names = [n for n in names if n not in NEEDS_BF16]
    results: dict[str, list[dict]] = {name: [] for name in names}
    for round_ in range(1, args.repeats + 1):
        for name in names:
            where = student if name in STUDENT else folder
            cmd = [sys.executable, __file__, "--arm", name, "--folder", str(where), "--reviews", str(args.reviews)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            rate = results[name][-1]["n"] / results[name][-1]["seconds"]
            print(f"round {round_} {name}: {rate:.1f} reviews/s", flush=True)
    rows = []
    for name, runs in results.items():
        n, seconds = runs[0]["n"], mean(r["seconds"] for r in runs)
        rows.append({"arm": name, "runs": ", ".join(f"{n / r['seconds']:.1f}" for r in runs), "seconds": seconds,
                     "reviews_per_s": n / seconds, "accuracy": runs[0]["accuracy"] if args.model else ""})
    for row in rows:
        row["ratio_to_pipeline"] = row["reviews_per_s"] / rows[0]["reviews_per_s"]
    print(common.markdown_table(rows, ["arm", "runs", "seconds", "reviews_per_s", "ratio_to_pipeline", "accuracy"]))
    print("\n".join(work_lines(folder, n, rows[0]["seconds"])))
    for row in rows[1:1 + len(MAIN)] + [r for r in rows if r["arm"] in STUDENT]:
        ratio = row["ratio_to_pipeline"]
        verdict = "met" if ratio >= 5 else "not met"
        print(f"ratio {row['arm']} / pipeline: {ratio:.2f}x on {n} reviews (target >= 5x: {verdict})")


if __name__ == "__main__":
    main()
