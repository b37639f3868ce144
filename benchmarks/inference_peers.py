"""Inference peers: sentitune's backends against the CPU runtimes a user could pick instead, on the same model.

    sh benchmarks/peers_env.sh                       # once: one virtualenv per peer under /tmp/peers
    flock /tmp/sentitune-cpu.lock python benchmarks/inference_peers.py RUN/model [--reviews 2000] [--repeats 2]

The same fine-tuned model folder (a sentitune run's model/), the same balanced IMDB test reviews; each arm in a
fresh process, all arms in turn, `--repeats` rounds (A B A B). Arms:
- `pipeline()` defaults (the reference, 1.0x: one review per forward pass, `truncation=True`, fp32);
- Optimum ONNX Runtime (`ORTModelForSequenceClassification`), fp32 and Optimum's dynamic int8 for AVX512-VNNI;
- OpenVINO through optimum-intel (`OVModelForSequenceClassification`): f32, its CPU default (bf16 on a CPU with
  native bf16) and int8 (NNCF post-training quantisation on 300 train reviews, never test);
- CTranslate2: it converts BERT encoders (`BertModel`: layers and pooler) but has no classification head, so its
  arms run the encoder and apply the model's own linear head in NumPy on the pooled output (float32 and int8);
- sentitune's own backends (torch, onnx, onnx-int8, openvino when installed), through `SentimentModel`.
Every arm but the pipeline gets the same input: the review cleaned and cut to 256 tokens head+tail by sentitune's
tokenizer function (the children report a digest of their token ids, and the parent checks they agree). Peer arms
sort by length and pad per batch (their batch size below: ONNX Runtime is fastest one review at a time on CPU,
the others in batches); sentitune's arms use their own defaults. Wall time includes tokenisation.

Why virtualenvs: optimum-onnx 0.1 pins transformers < 4.58 and optimum-intel 2.2 pins < 5.6, older than the
transformers sentitune runs; `benchmarks/peers_env.sh` builds one virtualenv per peer with the system packages
visible (the same torch, tokenizers and sentitune) and the peer's own transformers on top. An arm whose
interpreter is missing is reported as not run. Prints the machine, a table (reviews/s, ratio to the pipeline and
to the fastest peer, accuracy, peak RSS of the arm's process, size of the model files it loads) and the verdict:
sentitune's fastest backend against the fastest peer within 0.2 accuracy points.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402

PEERS = Path(os.environ.get("SENTITUNE_PEERS", "/tmp/peers"))  # where peers_env.sh puts the virtualenvs
MAX_LENGTH = 256
CALIBRATION = 300  # train reviews for the static int8 quantisers (never test)


# ---- the shared input (every process) ----

def reviews(work: Path) -> tuple[list[str], list[int]]:
    import pandas as pd

    frame = pd.read_parquet(work / "reviews.parquet")
    return list(frame["text"]), list(frame["label"])


def tokenized(folder: Path):
    """(texts -> sentitune's head+tail token ids, cleaned, 256 tokens: the input of every arm but the pipeline;
    the pad id)."""
    from transformers import AutoTokenizer

    from sentitune.data import clean_text, tokenize_function

    tokenizer = AutoTokenizer.from_pretrained(folder)
    encode = tokenize_function(tokenizer, MAX_LENGTH, "head+tail")
    return (lambda texts: encode({"text": [clean_text(t) for t in texts]})["input_ids"]), tokenizer.pad_token_id or 0


def batches(ids: list[list[int]], size: int, pad_id: int):
    """(row positions, padded ids, attention mask) per batch, rows sorted by length so a batch pads little."""
    import numpy as np

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), size):
        rows = order[start:start + size]
        width = max(len(ids[i]) for i in rows)
        batch = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, i in enumerate(rows):
            batch[j, :len(ids[i])], mask[j, :len(ids[i])] = ids[i], 1
        yield rows, batch, mask


def scored(logits_of, folder: Path, size: int):
    """A texts -> predicted class ids function: encode, batch `size` rows, `logits_of(ids, mask)` per batch,
    reassemble."""
    import numpy as np

    encode, pad_id = tokenized(folder)

    def run(texts: list[str]):
        ids = encode(texts)
        run.digest = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]
        predicted = np.zeros(len(ids), dtype=np.int64)
        for rows, batch, mask in batches(ids, size, pad_id):
            predicted[rows] = np.asarray(logits_of(batch, mask)).argmax(-1)
        return predicted

    return run


def optimum_logits(model):
    """`logits_of` for an Optimum model (ONNX Runtime or OpenVINO): BERT's inputs, token types all 0."""
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask, token_type_ids=ids * 0).logits


# ---- the arms (each builds a texts -> class ids function in its own process) ----

def pipeline_arm(folder: Path, work: Path):
    import numpy as np
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(folder), device="cpu")
    label2id = pipe.model.config.label2id
    return lambda texts: np.array([label2id[p["label"]] for p in pipe(texts, truncation=True)]), [folder]


def sentitune_arm(folder: Path, work: Path, backend: str, which: str = "model", max_length: int | None = None):
    """sentitune's backend on the model (or, which="student", the --student model), at its own length or fewer
    tokens (head+tail all the same)."""
    from sentitune.inference.predict import SentimentModel

    model = SentimentModel.from_pretrained(work / "sentitune" / which, backend=backend)
    return (lambda texts: model.score(texts, max_length=max_length).probs.argmax(1)), \
        common.backend_files(work / "sentitune" / which, backend)


def ort_arm(folder: Path, work: Path, variant: str):
    from optimum.onnxruntime import ORTModelForSequenceClassification

    where = work / f"ort-{variant}"
    model = ORTModelForSequenceClassification.from_pretrained(where, file_name=next(where.glob("*.onnx")).name)
    return scored(optimum_logits(model), folder, 1), list(where.glob("*.onnx"))


def ov_arm(folder: Path, work: Path, variant: str):
    from optimum.intel import OVModelForSequenceClassification

    where = work / ("ov-int8" if variant == "int8" else "ov-fp32")
    hint = {"f32": {"INFERENCE_PRECISION_HINT": "f32"}, "default": {}, "int8": {}}[variant]
    model = OVModelForSequenceClassification.from_pretrained(where, ov_config={**hint, "PERFORMANCE_HINT": "LATENCY"})
    return scored(optimum_logits(model), folder, 16), list(where.glob("*.bin"))


def ct2_arm(folder: Path, work: Path, compute_type: str):
    import ctranslate2
    import numpy as np
    from safetensors.numpy import load_file

    where = work / f"ct2-{compute_type}"
    model = ctranslate2.Encoder(str(where), device="cpu", compute_type=compute_type, intra_threads=os.cpu_count())
    head = load_file(folder / "model.safetensors")
    weight, bias = head["classifier.weight"].astype(np.float32), head["classifier.bias"].astype(np.float32)

    def logits_of(ids, mask):
        lengths = mask.sum(1)
        rows = [list(map(int, row[:n])) for row, n in zip(ids, lengths)]
        pooled = np.asarray(model.forward_batch(rows).pooler_output)
        return pooled @ weight.T + bias

    return scored(logits_of, folder, 16), [where / "model.bin"]


ARMS = {  # name: (virtualenv, or None for this interpreter; builder; kwargs)
    "pipeline() defaults": (None, pipeline_arm, {}),
    "Optimum ONNX Runtime fp32 (batch 1)": ("ort", ort_arm, {"variant": "fp32"}),
    "Optimum ONNX Runtime int8 avx512_vnni (batch 1)": ("ort", ort_arm, {"variant": "int8"}),
    "OpenVINO f32 (batch 16)": ("ov", ov_arm, {"variant": "f32"}),
    "OpenVINO CPU default (batch 16)": ("ov", ov_arm, {"variant": "default"}),
    "OpenVINO int8 NNCF (batch 16)": ("ov", ov_arm, {"variant": "int8"}),
    "CTranslate2 float32 (batch 16)": ("ct2", ct2_arm, {"compute_type": "float32"}),
    "CTranslate2 int8 (batch 16)": ("ct2", ct2_arm, {"compute_type": "int8"}),
    "sentitune torch": (None, sentitune_arm, {"backend": "torch"}),
    "sentitune onnx": (None, sentitune_arm, {"backend": "onnx"}),
    "sentitune onnx-int8": (None, sentitune_arm, {"backend": "onnx-int8"}),
    "sentitune openvino": (None, sentitune_arm, {"backend": "openvino"}),
    "sentitune openvino, 128 tokens": (None, sentitune_arm, {"backend": "openvino", "max_length": 128}),
}
STUDENT = {  # --student: a distilled model's arms, set against the same pipeline() on the teacher
    f"student, sentitune {backend}{', 128 tokens' if length else ''}": (
        None, sentitune_arm, {"backend": backend, "which": "student", "max_length": length})
    for backend in ("torch", "onnx-int8", "openvino") for length in (None, 128)}
ARMS |= STUDENT


def one_arm(name: str, folder: Path, work: Path) -> dict:
    """Time one arm (in its own process): a warm-up on 16 reviews, then all of them."""
    _, build, kwargs = ARMS[name]
    texts, labels = reviews(work)
    run, files = build(folder, work, **kwargs)
    run(texts[:16])
    start = time.perf_counter()
    predicted = run(texts)
    seconds = time.perf_counter() - start
    right = sum(int(p) == y for p, y in zip(predicted, labels))
    return {"seconds": seconds, "n": len(labels), "accuracy": right / len(labels), "digest": getattr(run, "digest", ""),
            "peak_rss_mb": common.peak_rss_mb(), "size_mb": common.files_mb(files)}


# ---- preparation (untimed): the exported and quantised models each arm loads ----

def prepare_ort(folder: Path, work: Path) -> None:
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    model = ORTModelForSequenceClassification.from_pretrained(folder, export=True)
    model.save_pretrained(work / "ort-fp32")
    quantizer = ORTQuantizer.from_pretrained(work / "ort-fp32")
    quantizer.quantize(save_dir=work / "ort-int8", quantization_config=AutoQuantizationConfig.avx512_vnni(
        is_static=False, per_channel=False))


def prepare_ov(folder: Path, work: Path) -> None:
    import nncf
    import openvino as ov
    import pandas as pd
    from optimum.intel import OVModelForSequenceClassification
    from transformers import AutoTokenizer

    model = OVModelForSequenceClassification.from_pretrained(folder, export=True, compile=False)
    model.save_pretrained(work / "ov-fp32")
    AutoTokenizer.from_pretrained(folder).save_pretrained(work / "ov-fp32")
    train = pd.read_parquet(work / "calibration.parquet")
    encode, pad_id = tokenized(folder)
    items = [{"input_ids": ids, "attention_mask": ids * 0 + 1, "token_type_ids": ids * 0}
             for _, ids, _ in batches(encode(list(train["text"])), 1, pad_id)]
    quantized = nncf.quantize(model.model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(items))
    (work / "ov-int8").mkdir(exist_ok=True)
    ov.save_model(quantized, work / "ov-int8" / "openvino_model.xml")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (work / "ov-fp32" / name).is_file():
            (work / "ov-int8" / name).write_bytes((work / "ov-fp32" / name).read_bytes())


def prepare_ct2(folder: Path, work: Path) -> None:
    from ctranslate2.converters import TransformersConverter

    for compute_type in ("float32", "int8"):
        TransformersConverter(str(folder)).convert(str(work / f"ct2-{compute_type}"), quantization=compute_type,
                                                   force=True)


def prepare_sentitune(folder: Path, work: Path, student: Path | None = None) -> None:
    for source, which in ((folder, "model"), (student, "student")):
        if source is not None:
            common.exported_copy(source, work / "sentitune" / which, openvino=True)


PREPARE = {"ort": prepare_ort, "ov": prepare_ov, "ct2": prepare_ct2}


# ---- the parent ----

def interpreter(env: str | None) -> Path | None:
    python = Path(sys.executable) if env is None else PEERS / env / "bin" / "python"
    return python if python.is_file() else None


def child(env: str | None, *flags: str) -> str:
    cmd = [str(interpreter(env)), str(HERE), *flags]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(lines[-1][:300] if lines else f"exit {done.returncode}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def write_reviews(work: Path, n: int) -> None:
    splits, _ = common.imdb_splits(train_per_class=CALIBRATION // 2, test_per_class=n // 2)
    splits["test"].to_pandas()[["text", "label"]].to_parquet(work / "reviews.parquet")
    splits["train"].to_pandas()[["text", "label"]].to_parquet(work / "calibration.parquet")


def table(results: dict[str, list[dict]]) -> tuple[list[dict], str]:
    rows = []
    for name, runs in results.items():
        seconds = mean(r["seconds"] for r in runs)
        rows.append({"arm": name, "runs": ", ".join(f"{r['n'] / r['seconds']:.1f}" for r in runs),
                     "reviews_per_s": runs[0]["n"] / seconds, "accuracy": runs[0]["accuracy"],
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "size_mb": runs[0]["size_mb"]})
    reference = rows[0]["reviews_per_s"]
    peers = [r for r in rows[1:] if not r["arm"].startswith(("sentitune", "student"))]
    fastest_peer = max((r["reviews_per_s"] for r in peers), default=None)
    for row in rows:
        row["x_pipeline"] = row["reviews_per_s"] / reference
        row["x_fastest_peer"] = row["reviews_per_s"] / fastest_peer if fastest_peer else ""
    columns = ["arm", "runs", "reviews_per_s", "x_pipeline", "x_fastest_peer", "accuracy", "peak_rss_mb", "size_mb"]
    return rows, common.markdown_table(rows, columns)


def verdict(rows: list[dict]) -> str:
    """sentitune's fastest backend against the fastest peer whose accuracy is within 0.2 points of it."""
    equal_work = [r for r in rows if r["arm"].startswith("sentitune") and "128 tokens" not in r["arm"]]
    ours = max(equal_work, key=lambda r: r["reviews_per_s"])
    peers = [r for r in rows[1:] if not r["arm"].startswith(("sentitune", "student"))]
    if not peers:
        return "no peer ran: nothing to compare"
    fair = [r for r in peers if r["accuracy"] >= ours["accuracy"] - 0.002] or peers
    best = max(fair, key=lambda r: r["reviews_per_s"])
    ratio = ours["reviews_per_s"] / best["reviews_per_s"]
    return (f"sentitune's fastest ({ours['arm']}, {ours['reviews_per_s']:.1f}/s, accuracy {ours['accuracy']:.4f}) / "
            f"fastest peer within 0.2 points ({best['arm']}, {best['reviews_per_s']:.1f}/s, accuracy "
            f"{best['accuracy']:.4f}): {ratio:.2f}x (target >= 1: {'met' if ratio >= 1 else 'not met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a fine-tuned model folder (a sentitune run's model/)")
    parser.add_argument("--reviews", type=int, default=2000, help="balanced IMDB test reviews")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all arms (A B A B)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sentitune-peers"), help="exported models, inputs")
    parser.add_argument("--arms", help="comma-separated substrings: run only the arms whose names contain one")
    parser.add_argument("--out", type=Path, help="write the rows and the table here as JSON")
    parser.add_argument("--student", type=Path, help="a distilled student's model folder (`sentitune distill`): its "
                                                      "sentitune arms join, against the pipeline on FOLDER")
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm, print JSON
    parser.add_argument("--prepare", help=argparse.SUPPRESS)  # internal: prepare one environment's models
    args = parser.parse_args()
    folder = args.folder.resolve()
    if args.arm:
        print(json.dumps(one_arm(args.arm, folder, args.work)))
        return
    if args.prepare == "sentitune":
        prepare_sentitune(folder, args.work, args.student.resolve() if args.student else None)
        return
    if args.prepare:
        PREPARE[args.prepare](folder, args.work)
        return
    print(common.machine(), flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    write_reviews(args.work, args.reviews)
    wanted = [s.strip() for s in args.arms.split(",")] if args.arms else None
    names = [n for n in ARMS if n == "pipeline() defaults" or not wanted or any(w in n for w in wanted)]
    names = [n for n in names if args.student or n not in STUDENT]
    skipped: dict[str, str] = {}
    for env in dict.fromkeys(ARMS[n][0] for n in names):
        if interpreter(env) is None:
            skipped |= {n: f"no interpreter at {PEERS / env}/bin/python" for n in names if ARMS[n][0] == env}
            continue
        student = ["--student", str(args.student.resolve())] if args.student and env is None else []
        try:
            child(env, str(folder), "--work", str(args.work), "--prepare", env or "sentitune", *student)
        except RuntimeError as exc:
            skipped |= {n: f"preparation failed: {exc}" for n in names if ARMS[n][0] == env}
    if importlib.util.find_spec("openvino") is None:
        skipped.setdefault("sentitune openvino", "the package openvino is not installed (pip install openvino)")
    names = [n for n in names if n not in skipped]
    results: dict[str, list[dict]] = {n: [] for n in names}
    for round_ in range(1, args.repeats + 1):
        for name in names:
            try:
                result = json.loads(child(ARMS[name][0], str(folder), "--work", str(args.work), "--arm", name))
            except RuntimeError as exc:
                skipped[name] = f"failed: {exc}"
                continue
            results[name].append(result)
            print(f"round {round_} {name}: {result['n'] / result['seconds']:.1f} reviews/s, accuracy "
                  f"{result['accuracy']:.4f}", flush=True)
    results = {n: runs for n, runs in results.items() if runs and n not in skipped}
    digests = {n: runs[0]["digest"] for n, runs in results.items() if runs[0]["digest"]}
    if len(set(digests.values())) > 1:
        print(f"WARNING: the arms' token ids differ: {digests}")
    rows, text = table(results)
    print(text)
    for name, why in skipped.items():
        print(f"not run: {name}: {why}")
    print(verdict(rows))
    for row in (r for r in rows if r["arm"].startswith("student")):
        print(f"{row['arm']} / pipeline() on the teacher: {row['x_pipeline']:.2f}x (target >= 5x: "
              f"{'met' if row['x_pipeline'] >= 5 else 'not met'}), accuracy {row['accuracy']:.4f} against the "
              f"pipeline's {rows[0]['accuracy']:.4f} on these reviews")
    if args.out:
        args.out.write_text(json.dumps({"machine": common.machine(), "reviews": args.reviews, "rows": rows,
                                        "skipped": skipped, "digests": digests, "verdict": verdict(rows)}, indent=2))


if __name__ == "__main__":
    main()
