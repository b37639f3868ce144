"""Side-by-side comparison of fine-tuned runs and baselines on the same test examples.

`compare(entries, out_dir)` takes run folders (metrics.json + predictions.parquet), baseline folders
(written by `sentitune.baselines.save_baseline`), folders holding several of those, or result entries
already in memory, and writes comparison.md, comparison.json and comparison.png. Every entry is paired
with the best baseline (highest test accuracy) by `idx`, and the difference is tested with McNemar.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .baselines import PREDICTIONS_FILE, RESULT_FILE, load_baseline
from .io import atomic_dir
from .errors import SentituneError

FINE_TUNED = "fine-tuned"
RUN_METRICS = "metrics.json"
PLOTTED = (("accuracy", "accuracy"), ("f1", "F1"), ("roc_auc", "ROC-AUC"))


# ---------------------------------------------------------------- reading entries


def load_entries(paths: list[str | Path]) -> list[dict]:
    """Result entries from run folders, baseline folders, or folders that hold several of either."""
    entries = []
    for path in map(Path, paths):
        if (path / RUN_METRICS).is_file():
            entries.append(run_entry(path))
        elif (path / RESULT_FILE).is_file():
            entries.append(load_baseline(path))
        elif path.is_dir() and (children := entry_folders(path)):
            entries.extend(load_entries(children))
        else:
            raise SentituneError(f"{path}: neither a run folder ({RUN_METRICS}) nor a baseline folder ({RESULT_FILE}); pass folders written by `sentitune train` or `sentitune baseline`.")
    return entries


def entry_folders(path: Path) -> list[Path]:
    """The run and baseline folders directly inside `path`, sorted by name."""
    return sorted(p for p in path.iterdir() if (p / RUN_METRICS).is_file() or (p / RESULT_FILE).is_file())


def run_entry(run_dir: str | Path) -> dict:
    """A fine-tuned run folder as a result entry: its test metrics, examples and test predictions."""
    run_dir = Path(run_dir)
    try:
        metrics = json.loads((run_dir / RUN_METRICS).read_text())
        predictions = pd.read_parquet(run_dir / PREDICTIONS_FILE, columns=["split", "idx", "label", "prob", "pred"])
    except (OSError, ValueError, KeyError) as exc:
        raise SentituneError(f"{run_dir}: unreadable run folder ({type(exc).__name__}: {str(exc).splitlines()[0][:100]}); re-run `sentitune train`.") from None
    if "test" not in metrics:
        raise SentituneError(f"{run_dir / RUN_METRICS}: no 'test' metrics; the run did not finish its test evaluation.")
    test = predictions[predictions["split"] == "test"].drop(columns="split").reset_index(drop=True)
    rate, rate_source = inference_rate(run_dir, metrics)
    return {
        "name": run_dir.name,
        "kind": FINE_TUNED,
        "family": FINE_TUNED,
        "metrics": metrics["test"],
        "examples": metrics.get("examples", {}).get("test", {}),
        "examples_per_s": rate,
        "model_size_mb": weights_mb(run_dir / "model"),
        "extra": {"run_dir": str(run_dir), "train": metrics.get("train", {}), "examples_per_s_source": rate_source},
        "predictions": test,
    }


def inference_rate(run_dir: Path, metrics: dict) -> tuple[float | None, str | None]:
    """Examples/s at inference and where it came from: metrics.json's `inference`, else the Trainer's
    last evaluation throughput in log.jsonl (validation, same model and batch settings), else unknown."""
    if (rate := metrics.get("inference", {}).get("examples_per_s")) is not None:
        return rate, "metrics.json inference"
    log = run_dir / "log.jsonl"
    rates = [json.loads(line).get("eval_samples_per_second") for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    rates = [r for r in rates if r is not None]
    return (rates[-1], "log.jsonl eval_samples_per_second (validation)") if rates else (None, None)


def weights_mb(model_dir: Path) -> float | None:
    """Size of a saved model's weight files in MB (None when the folder has none)."""
    files = [f for pattern in ("*.safetensors", "*.bin") for f in model_dir.glob(pattern)]
    return round(sum(f.stat().st_size for f in files) / 1e6, 2) if files else None


# ---------------------------------------------------------------- the comparison


def same_examples(entries: list[dict]) -> bool:
    """True when every entry records the same test-examples fingerprint."""
    fingerprints = {(e.get("examples") or {}).get("fingerprint") for e in entries}
    return len(fingerprints) == 1 and None not in fingerprints


def different_examples_error(entries: list[dict]) -> SentituneError:
    """The one-line refusal to compare entries evaluated on different examples."""
    described = "; ".join(f"{e['name']}: {describe_examples(e.get('examples'))}" for e in entries)
    return SentituneError(f"compare: entries were evaluated on different test examples ({described}); "
                          "evaluate them with the same data settings, or pass --allow-different-examples.")


def describe_examples(examples: dict | None) -> str:
    """`test, 2000 examples (1000 per class, seed 42), fingerprint ab12...` in one line."""
    if not examples:
        return "unknown examples"
    sample = f"{examples['per_class']} per class, seed {examples.get('seed')}" if examples.get("per_class") else "whole split"
    return f"{examples.get('split')}, {examples.get('size')} examples ({sample}), fingerprint {examples.get('fingerprint')}"


def unique_names(entries: list[dict]) -> list[dict]:
    """Entries with repeated names suffixed #2, #3... so that rows and plot labels stay distinct."""
    seen: dict[str, int] = {}
    out = []
    for entry in entries:
        seen[entry["name"]] = seen.get(entry["name"], 0) + 1
        out.append(entry if seen[entry["name"]] == 1 else {**entry, "name": f"{entry['name']}#{seen[entry['name']]}"})
    return out


def correctness(entry: dict) -> pd.Series:
    """Whether the entry got each example right, indexed by idx."""
    p = entry["predictions"]
    return pd.Series((p["pred"].to_numpy() == p["label"].to_numpy()), index=p["idx"].to_numpy())


def paired_test(entry: dict, reference: dict, same_examples: bool) -> dict:
    """McNemar of `entry` (a) against `reference` (b) on the examples both scored, aligned by idx."""
    from .evaluate import mcnemar

    a, b = correctness(entry), correctness(reference)
    common = a.index.intersection(b.index)
    if same_examples and (len(common) != len(a) or len(common) != len(b)):
        raise SentituneError(f"compare: '{entry['name']}' and '{reference['name']}' share a fingerprint but their predictions cover "
                             f"different idx ({len(a)} vs {len(b)}, {len(common)} common); re-run one of them.")
    if len(common) == 0:
        return {"n": 0, "p_value": None}
    return mcnemar(a.loc[common].to_numpy(), b.loc[common].to_numpy())


def best_baseline(entries: list[dict]) -> dict | None:
    """The baseline (any entry that is not fine-tuned) with the highest test accuracy."""
    baselines = [e for e in entries if e["kind"] != FINE_TUNED]
    return max(baselines, key=lambda e: e["metrics"]["accuracy"]) if baselines else None


def comparison_row(entry: dict, reference: dict | None, same_examples: bool) -> dict:
    """One table row: headline metrics, speed, size, and the paired difference to the best baseline."""
    m = entry["metrics"]
    row = {"name": entry["name"], "kind": entry["kind"], "n": m["n"], "accuracy": m["accuracy"], "accuracy_ci95": m["accuracy_ci95"],
           "f1": m["f1"], "precision": m["precision"], "recall": m["recall"], "roc_auc": m["roc_auc"],
           "examples_per_s": entry.get("examples_per_s"), "model_size_mb": entry.get("model_size_mb"),
           "examples": entry.get("examples"), "delta_accuracy_vs_best_baseline": None, "mcnemar_vs_best_baseline": None}
    if reference is not None and reference is not entry:
        test = paired_test(entry, reference, same_examples)
        row["mcnemar_vs_best_baseline"] = test
        if test["n"]:
            row["delta_accuracy_vs_best_baseline"] = test["accuracy_a"] - test["accuracy_b"]
    return row


def comparison(entries: list[dict], allow_different_examples: bool = False) -> dict:
    """The comparison as a JSON-safe dict: rows sorted by accuracy, best baseline, examples, headline."""
    if not entries:
        raise SentituneError("compare: nothing to compare; pass run folders and/or baseline folders.")
    entries = unique_names(entries)
    same = same_examples(entries)
    if not same and not allow_different_examples:
        raise different_examples_error(entries)
    reference = best_baseline(entries)
    rows = sorted((comparison_row(e, reference, same) for e in entries), key=lambda r: -r["accuracy"])
    return {"best_baseline": reference["name"] if reference else None, "same_examples": same,
            "examples": entries[0].get("examples") if same else None, "rows": rows, "headline": headline(rows, reference)}


def headline(rows: list[dict], reference: dict | None) -> str:
    """One sentence: how the best fine-tuned entry does against the best baseline."""
    tuned = [r for r in rows if r["kind"] == FINE_TUNED]
    if not tuned or reference is None:
        return "No fine-tuned run to set against the baselines." if reference else "No baseline to set the runs against."
    best, p = tuned[0], (tuned[0]["mcnemar_vs_best_baseline"] or {}).get("p_value")
    delta = best["delta_accuracy_vs_best_baseline"]
    if delta is None:
        return f"{best['name']} and {reference['name']} share no test examples; no paired test."
    verdict = "beats" if delta > 0 else "trails" if delta < 0 else "ties with"
    significance = "significant at 5%" if p is not None and p < 0.05 else "not significant at 5%"
    return (f"{best['name']} {verdict} the best baseline {reference['name']} by {100 * abs(delta):.2f} accuracy points "
            f"(McNemar exact p: {fmt_p(p)}, {significance}, n = {best['mcnemar_vs_best_baseline']['n']}).")


# ---------------------------------------------------------------- writing


def compare(entries: list, out_dir: str | Path, allow_different_examples: bool = False) -> dict:
    """Compare entries (paths or result dicts) and write comparison.md/.json/.png into `out_dir`."""
    loaded = [e for item in entries for e in ([item] if isinstance(item, dict) else load_entries([item]))]
    table = comparison(loaded, allow_different_examples)
    with atomic_dir(out_dir) as tmp:
        (tmp / "comparison.json").write_text(json.dumps(table, indent=2) + "\n")
        (tmp / "comparison.md").write_text(markdown(table))
        plot(table, tmp / "comparison.png")
    return table


def fmt(value, spec: str = ".4f", missing: str = "n/a") -> str:
    """A number formatted with `spec`, or `missing` when absent."""
    return missing if value is None else format(value, spec)


def fmt_p(p: float | None) -> str:
    """A p-value for the table: two significant digits, and "<0.0001" below that (it may underflow to 0)."""
    return "—" if p is None else "<0.0001" if p < 1e-4 else f"{p:.2g}"


def markdown(table: dict) -> str:
    """comparison.md: the examples used, the headline, and the table."""
    examples = describe_examples(table["examples"]) if table["same_examples"] else "DIFFERENT examples per entry (see each row's `examples` in comparison.json); paired tests use the examples in common"
    lines = [
        "# Comparison", "",
        f"Test examples: {examples}.", "",
        f"Best baseline: {table['best_baseline'] or 'none'}. {table['headline']}", "",
        "| entry | kind | n | accuracy | 95% CI | F1 | precision | recall | ROC-AUC | examples/s | size (MB) | Δ acc vs best baseline | McNemar p |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in table["rows"]:
        lo, hi = r["accuracy_ci95"]
        p = (r["mcnemar_vs_best_baseline"] or {}).get("p_value")
        delta = r["delta_accuracy_vs_best_baseline"]
        lines.append(
            f"| {r['name']} | {r['kind']} | {r['n']} | {r['accuracy']:.4f} | [{lo:.4f}, {hi:.4f}] | {r['f1']:.4f} | {r['precision']:.4f} "
            f"| {r['recall']:.4f} | {fmt(r['roc_auc'])} | {fmt(r['examples_per_s'], '.1f')} | {fmt(r['model_size_mb'], '.1f')} "
            f"| {'(reference)' if r['name'] == table['best_baseline'] else fmt(None if delta is None else 100 * delta, '+.2f') + ' pts'} "
            f"| {fmt_p(p)} |"
        )
    lines += ["", "95% CI: Wilson interval on accuracy. McNemar p: exact two-sided binomial test on the examples where exactly "
              "one of the entry and the best baseline is right, paired by `idx`.", ""]
    return "\n".join(lines)


def plot(table: dict, path: Path) -> None:
    """comparison.png: accuracy (with its 95% CI), F1 and ROC-AUC per entry, best first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table["rows"]
    x, width = np.arange(len(rows)), 0.8 / len(PLOTTED)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.5))
    for i, (key, label) in enumerate(PLOTTED):
        values = np.array([r[key] if r[key] is not None else np.nan for r in rows])
        errors = None
        if key == "accuracy":
            errors = np.array([[r["accuracy"] - r["accuracy_ci95"][0] for r in rows], [r["accuracy_ci95"][1] - r["accuracy"] for r in rows]]).clip(min=0)
        ax.bar(x + (i - 1) * width, values, width, yerr=errors, capsize=3, label=label)
    low = min(min(r[k] for r in rows if r[k] is not None) for k, _ in PLOTTED)
    ax.set_ylim(max(0.0, np.floor(low * 20) / 20 - 0.05), 1.0)
    ax.set_xticks(x, [r["name"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("test score")
    ax.set_title(f"Test set: {describe_examples(table['examples']).split(', fingerprint')[0]}" if table["same_examples"] else "Test sets differ per entry")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
