"""Two accuracy levers on IMDB, on a CUDA machine (or, slowly, the CPU): more epochs, and domain-adaptive MLM first.

Runs in order, each step in its own process and each guarded (a failure is recorded and the rest go on):

  (a) `sentitune train --preset cpu-full` (the whole train set less 1,000 validation reviews, 256 tokens, batch 16,
      lr 1e-4, dropout off, 1 epoch, checkpoints picked on validation F1): the baseline;
  (b2), (b) the same for 2 and 3 epochs keeping the last checkpoint (`--checkpoint last`: no early stopping;
      validation still scored every 300 steps);
  (e) (a) and TF-IDF + LR, their mean probabilities, distilled into a student of (a)'s size started from (a)
      (`sentitune distill --student-layers 6 --teacher-ensemble tfidf`) over the train set and 20,000 unlabelled
      reviews, at lr 5e-5, keeping the last checkpoint;
  (eb2) the same (1 epoch) with (b2) as the run in the teacher and the student's start;
  adapt: `sentitune adapt` on train + unsupervised (75,000 reviews less 1,000 held out; never test) at 256 tokens,
      1 epoch by default (--adapt-epochs 2 for two; --adapt-max-steps N stops after N steps, as on a CPU);
  (c) (a)'s recipe from the adapted model folder;
  (d) (b)'s recipe from the adapted model folder.

Every run is scored on the full 25,000-review test set (at --eval-batch-size 256: inference batching only).
Prints the machine and a Markdown table: test accuracy with its 95% interval, the difference from (a), McNemar's
exact p against (a) on the same test reviews (`sentitune.core.metrics.mcnemar`; the counts are (a) right only / this run
right only), wall time. Everything goes under OUT: runs/<step>/ (run folders with metrics.json and
predictions.parquet), adapted/ (the adapted model and its adapt.json), logs/<step>.log, levers.json and levers.md.
Re-running with the same OUT reuses finished steps and resumes an interrupted one; --steps runs a subset.
Measured on an H200 (bf16, a random model of the default's shape): adapt ~125,000 tokens/s (~4 min an epoch),
training ~255 reviews/s (~1.5 min an epoch); the steps other than (e) about 20 minutes. On a 2-core AMX Xeon (bf16,
session 8, docs/results.md): (a) 18.8 min, (b2) 30.2 min, (e) 30.5 min with its teacher logits cached, adapt 2,104
tokens/s (1,000 steps 48 min; an epoch ~2.9 h), (c) 18.6 min.

    SENTITUNE_DATA=/data/imdb SENTITUNE_MODEL=/models/all-MiniLM-L6-v2 python benchmarks/imdb_levers.py OUT
    IMDB_LEVERS_SMOKE=1 python benchmarks/imdb_levers.py /tmp/levers-smoke   # tiny model, a few dozen rows, any device

$SENTITUNE_DATA: the IMDB parquet folder (train/test/unsupervised); $SENTITUNE_MODEL: the model to start from
(default: sentitune's offline all-MiniLM-L6-v2).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SMOKE = os.environ.get("IMDB_LEVERS_SMOKE") == "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # GPU machines here reach no hub: fail fast instead of hanging
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
NEVER = str(10**9)  # an evaluation interval no run reaches: the one evaluation is at the last step
STEPS = ("a", "b2", "b", "e", "eb2", "adapt", "c", "d")
TRAIN_STEPS = {  # step: (title, from the adapted model?, flags over the cpu-full preset)
    "a": ("cpu-full, 1 epoch (baseline)", False, {}),
    "b2": ("cpu-full, 2 epochs, last checkpoint", False, {"--epochs": "2", "--checkpoint": "last"}),
    "b": ("cpu-full, 3 epochs, last checkpoint", False, {"--epochs": "3", "--checkpoint": "last"}),
    "c": ("adapted, then cpu-full 1 epoch", True, {}),
    "d": ("adapted, then cpu-full 3 epochs, last checkpoint", True, {"--epochs": "3", "--checkpoint": "last"}),
}
DISTILL_STEPS = {"e": "a", "eb2": "b2"}  # step: the run whose ensemble with TF-IDF teaches a student of its size
TITLES = {name: title for name, (title, _, _) in TRAIN_STEPS.items()} | {
    name: f"({teacher}) + TF-IDF ensemble distilled into ({teacher})'s size (train + 20k unlabelled)"
    for name, teacher in DISTILL_STEPS.items()}
TRANSFER_EXAMPLES = "20000"
# From (a)'s weights at (a)'s peak rate (1e-4) validation fell from (a)'s 0.906 to 0.848 by step 600 and early
# stopping would have kept step 300 (docs/results.md, session 8): half the rate, and the last checkpoint. (e) was
# measured with one evaluation at the end; later steps keep the last checkpoint and score validation on the way.
ENSEMBLE_TRAIN = {"e": {"--learning-rate": "5e-5", "--early-stopping-patience": "0", "--eval-steps": NEVER},
                  "eb2": {"--learning-rate": "5e-5", "--epochs": "1", "--checkpoint": "last"}}
# inference batching only (the same training), on a GPU: 25,000 test reviews in seconds rather than a minute at 16
GPU_TRAIN = {"--eval-batch-size": "256"}
# smoke: the same commands on a few dozen rows at 64 tokens, evaluated every 4 steps
SMOKE_TRAIN = {"--validation-size": "0.25", "--validation-per-class": "4", "--max-length": "64", "--eval-steps": "4"}
SMOKE_ADAPT = {"--max-length": "64", "--eval-texts": "8", "--epochs": "1", "--save-steps": "4"}


def sentitune(log: Path, flags: list[str]) -> float:
    """Run `sentitune FLAGS` in a fresh process, output to `log`; its wall time, or an error naming its last line."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run([sys.executable, "-m", "sentitune", *flags], stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        raise RuntimeError(f"exit {done.returncode}: {lines[-1][:200] if lines else 'no output'} (see {log})")
    return time.perf_counter() - started


def rendered(flags: dict) -> list[str]:
    return [part for flag, value in flags.items() for part in ((flag,) if value is None else (flag, value))]


def step(out: Path, name: str, done_file: Path, flags: dict) -> dict:
    """One guarded step: reused when `done_file` exists (its wall time from the last run), else run (resuming an
    interrupted one); {"wall_s": ...} or {"error": ...}."""
    record = out / "logs" / f"{name}.json"
    if done_file.is_file() and record.is_file() and "error" not in json.loads(record.read_text()):
        return json.loads(record.read_text())
    started = time.perf_counter()
    try:
        result = {"wall_s": sentitune(out / "logs" / f"{name}.log", rendered({**flags, "--resume": None}))}
    except Exception as exc:  # one failed step never stops the others
        result = {"error": f"{type(exc).__name__}: {exc}"}
        if done_file.is_file():  # what failed came after the results (the model card, say): keep them
            result = {"wall_s": time.perf_counter() - started, "note": result["error"]}
    print(f"{name}: {result}", flush=True)
    record.write_text(json.dumps(result))
    return result


def test_correct(run: Path):
    """Per test review (by its row number in the test split): was this run's prediction right?"""
    from sentitune.run.folder import RunFolder

    preds = RunFolder(run).predictions().query("split == 'test'").set_index("idx")
    return preds["pred"] == preds["label"]


def run_row(step_name: str, title: str, run: Path, result: dict, baseline: Path) -> dict:
    """A table row for a training step: test accuracy, its interval, and the paired test against (a)."""
    from sentitune.core.metrics import mcnemar

    row = {"step": step_name, "what": title, "wall_s": result.get("wall_s"), "error": result.get("error"),
           "note": result.get("note")}
    if "error" in result:
        return row
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    row |= {"n": test["n"], "accuracy": test["accuracy"], "ci95": test["accuracy_ci95"],
            "train_s": metrics["train"]["wall_time_s"], "steps": metrics["train"]["steps"]}
    if run != baseline and (baseline / "metrics.json").is_file():
        a, b = test_correct(baseline).align(test_correct(run), join="inner")
        paired = mcnemar(a.to_numpy(), b.to_numpy())
        row |= {"delta": paired["accuracy_b"] - paired["accuracy_a"], "mcnemar_p": paired["p_value"],
                "a_only": paired["a_only"], "b_only": paired["b_only"], "paired_n": paired["n"]}
    return row


def adapt_row(folder: Path, result: dict) -> dict:
    row = {"step": "adapt", "what": "MLM on train + unsupervised (whole words)", "wall_s": result.get("wall_s"),
           "error": result.get("error")}
    if "error" not in result:
        facts = json.loads((folder / "adapt.json").read_text())
        row |= {k: facts.get(k) for k in ("eval_loss", "eval_perplexity", "tokens_per_s", "steps", "train_loss")}
    return row


def cell(value, spec: str = ".4f") -> str:
    return "" if value is None else format(value, spec)


def markdown(rows: list[dict]) -> str:
    lines = ["| step | what | test accuracy [95% CI] | vs (a) | McNemar p vs (a) (a only / this only) | wall s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("error"):
            result = f"failed: {r['error']}"
        elif r["step"] == "adapt":
            result = (f"held-out MLM loss {cell(r['eval_loss'])}, perplexity {cell(r['eval_perplexity'], '.2f')}, "
                      f"{cell(r['tokens_per_s'], ',.0f')} tokens/s, {r['steps']} steps")
        else:
            result = f"{r['accuracy']:.4f} [{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}] (n = {r['n']:,})"
            result += f"; then {r['note']}" if r.get("note") else ""
        delta = f"{r['delta'] * 100:+.2f} pts" if r.get("delta") is not None else ""
        p = f"{r['mcnemar_p']:.3g} ({r['a_only']} / {r['b_only']})" if r.get("mcnemar_p") is not None else ""
        lines.append(f"| {r['step']} | {r['what']} | {result} | {delta} | {p} | {cell(r['wall_s'], '.0f')} |")
    return "\n".join(lines)


def smoke_inputs(out: Path, data: Path, model: str) -> tuple[str, str]:
    """A few dozen IMDB rows per split and a tiny random BERT (a bare encoder, as the default model is) with the
    model's tokenizer: the same commands in minutes on any machine."""
    import pandas as pd
    from transformers import AutoTokenizer, BertConfig, BertModel

    from sentitune.models.loading import local_copy

    folder, tiny = out / "smoke-data", out / "smoke-model"
    if (tiny / "config.json").is_file():  # a re-run reuses them, as it reuses the runs made with them
        return str(folder), str(tiny)
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_label in (("train", 32), ("test", 16), ("unsupervised", 48)):
        frame = pd.read_parquet(data / f"{split}.parquet")
        frame.groupby("label").sample(n=per_label, random_state=0).to_parquet(folder / f"{split}.parquet")
    tokenizer = AutoTokenizer.from_pretrained(local_copy(model))
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tiny)
    tokenizer.save_pretrained(tiny)
    return str(folder), str(tiny)


def machine() -> str:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import machine as cpu_line

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{gpu}; {cpu_line()}"


def chosen(steps: str) -> list[str]:
    """The steps to run, in their order; (c) and (d) bring the adapt step with them."""
    names = {name.strip() for name in steps.split(",") if name.strip()}
    if not names or names - set(STEPS):
        sys.exit(f"benchmarks/imdb_levers.py: --steps {steps}: choose from {','.join(STEPS)}.")
    return [name for name in STEPS if name in names or (name == "adapt" and names & {"c", "d"})]


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_steps(out: Path, names: list[str], model: str, data: str, args) -> dict:
    """Each chosen step, guarded; {step: its result}."""
    runs, adapted, results = out / "runs", out / "adapted", {}
    for name in names:
        if name == "adapt":
            flags = {"adapt": None, "--model": model, "--data": data, "--output-dir": str(out), "--name": "adapted",
                     "--max-length": "256", "--epochs": args.adapt_epochs, "--batch-size": args.adapt_batch_size,
                     "--learning-rate": args.adapt_learning_rate, "--max-steps": args.adapt_max_steps,
                     **(SMOKE_ADAPT if SMOKE else {})}
            results[name] = step(out, name, adapted / "adapt.json", flags)
            continue
        if name in DISTILL_STEPS:
            teacher = runs / DISTILL_STEPS[name]
            layers = str(json.loads((teacher / "model" / "config.json").read_text())["num_hidden_layers"]
                         if (teacher / "model" / "config.json").is_file() else 6)  # the teacher's size
            flags = {"distill": None, str(teacher): None, "--student-layers": layers, "--teacher-ensemble": "tfidf",
                     "--transfer-data": str(Path(data) / "unsupervised.parquet"), "--output-dir": str(runs),
                     "--transfer-examples": "32" if SMOKE else TRANSFER_EXAMPLES, "--name": name,
                     **ENSEMBLE_TRAIN[name], **(SMOKE_TRAIN if SMOKE else {})}
            results[name] = step(out, name, runs / name / "metrics.json", flags)
            continue
        _, from_adapted, extra = TRAIN_STEPS[name]
        if from_adapted and "error" in results["adapt"]:
            results[name] = {"error": "skipped: adapt failed"}
            continue
        batching = SMOKE_TRAIN if SMOKE else GPU_TRAIN if cuda() else {}
        flags = {"train": None, "--preset": "cpu-full", "--model": str(adapted) if from_adapted else model,
                 "--data": data, "--output-dir": str(runs), "--name": name, **batching, **extra}
        results[name] = step(out, name, runs / name / "metrics.json", flags)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="Folder for every run, log and the table.")
    parser.add_argument("--steps", default=",".join(STEPS), help="Steps to run, comma-separated (default: all); "
                                                                 "McNemar needs (a) in the same OUT.")
    parser.add_argument("--adapt-epochs", default="1", help="Passes of `sentitune adapt` over its texts.")
    parser.add_argument("--adapt-batch-size", default="64", help="Pieces of 256 tokens per adapt step.")
    parser.add_argument("--adapt-learning-rate", default="1e-4", help="Peak learning rate of adapt.")
    parser.add_argument("--adapt-max-steps", default="-1", help="Stop adapt after N steps (-1: --adapt-epochs).")
    args = parser.parse_args()
    names = chosen(args.steps)

    import torch

    if not torch.cuda.is_available() and not SMOKE:
        print("no CUDA device: running on the CPU (each training step ~15-25 min, adapt hours; --steps picks a subset)",
              flush=True)
    data = Path(os.environ.get("SENTITUNE_DATA", "/work/shared/data/imdb"))
    if not (data / "unsupervised.parquet").is_file():
        sys.exit(f"benchmarks/imdb_levers.py: {data} is not the IMDB parquet folder; set $SENTITUNE_DATA.")
    model = os.environ.get("SENTITUNE_MODEL", "sentence-transformers/all-MiniLM-L6-v2")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    where = machine()
    print(where, flush=True)
    data_arg, model = smoke_inputs(out, data, model) if SMOKE else (str(data), model)
    results = run_steps(out, names, model, data_arg, args)
    rows = [adapt_row(out / "adapted", result) if name == "adapt" else
            run_row(name, TITLES[name], out / "runs" / name, result, out / "runs" / "a")
            for name, result in results.items()]
    table = markdown(rows)
    (out / "levers.json").write_text(json.dumps({"machine": where, "smoke": SMOKE, "rows": rows}, indent=2))
    (out / "levers.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
