"""Side-by-side comparison of fine-tuned runs and baselines on the same test examples, for 2..N classes.

`compare(entries, out_dir)` takes run folders, baseline folders (`sentitune baseline`), folders holding several of
those, or result entries already in memory, and writes comparison.json, comparison.md and comparison.png through
`run.write_comparison`. It reads folders through `run` only (no baseline code is imported here).

Every entry is paired by `idx` with the best baseline: the highest accuracy for two classes, the highest macro-F1
for more (where a majority-class baseline can have the best accuracy and no skill; the table says which under
`ranked_by`). Each pair gets McNemar's exact test on who is right, and a paired bootstrap of the macro-F1
difference. Entries whose classes differ, or that were scored on different examples, are refused.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..core.errors import SentituneError
from ..core.labels import LabelScheme

FINE_TUNED = "fine-tuned"
ENSEMBLE = "ensemble"  # a fine-tuned run averaged with a baseline: neither the model alone nor a baseline
METRIC_KEYS = ("n", "accuracy", "accuracy_ci95", "f1_macro", "f1_macro_ci95", "recall_macro", "recall_macro_ci95",
               "f1_weighted")
BINARY_KEYS = ("f1", "precision", "recall", "roc_auc")
ORDINAL_KEYS = ("mae", "qwk")


# ---------------------------------------------------------------- reading entries


def load_entries(paths: list[str | Path]) -> list[dict]:
    """Result entries from run folders, baseline folders, or folders that hold several of either."""
    from ..run.folder import is_baseline_folder, is_run_folder, read_baseline

    entries = []
    for path in map(Path, paths):
        if is_run_folder(path):
            entries.append(run_entry(path))
        elif is_baseline_folder(path):
            entries.append(read_baseline(path))
        elif path.is_dir() and (children := entry_folders(path)):
            entries.extend(load_entries(children))
        else:
            raise SentituneError(f"{path}: neither a run folder nor a baseline folder; pass folders written by "
                                 "`sentitune train` or `sentitune baseline`.")
    return entries


def entry_folders(path: Path) -> list[Path]:
    """The run and baseline folders directly inside `path`, sorted by name."""
    from ..run.folder import is_baseline_folder, is_run_folder

    return sorted(p for p in path.iterdir() if is_run_folder(p) or is_baseline_folder(p))


def run_entry(run_dir: str | Path) -> dict:
    """A fine-tuned run folder as a result entry: its test metrics, label scheme, examples and test predictions."""
    from ..run.folder import RunFolder, class_columns

    run = RunFolder(run_dir).require()
    metrics = run.metrics()
    if "test" not in metrics:
        raise SentituneError(f"{run.metrics_path}: no 'test' metrics; the run did not finish its test evaluation.")
    predictions = run.predictions()
    if "split" not in predictions:
        raise SentituneError(f"{run.predictions_path}: no 'split' column; re-run `sentitune train`.")
    test = predictions[predictions["split"] == "test"]
    rate, rate_source = inference_rate(run, metrics)
    return {
        "name": run.name,
        "kind": FINE_TUNED,
        "family": FINE_TUNED,
        "labels": run.labels().to_dict(),
        "metrics": metrics["test"],
        "examples": metrics.get("examples", {}).get("test", {}),
        "examples_per_s": rate,
        "model_size_mb": weights_mb(run.model_dir),
        "extra": {"run_dir": str(run.path), "train": metrics.get("train", {}), "examples_per_s_source": rate_source},
        "predictions": test[["idx", "label", "pred", *class_columns(test)]].reset_index(drop=True),
    }


def inference_rate(run, metrics: dict) -> tuple[float | None, str | None]:
    """Examples/s at inference and where it came from: metrics.json's `inference`, else the Trainer's
    last evaluation throughput in log.jsonl (validation, same model and batch settings), else unknown."""
    if (rate := metrics.get("inference", {}).get("examples_per_s")) is not None:
        return rate, "metrics.json inference"
    rates = [r["eval_samples_per_second"] for r in run.log() if r.get("eval_samples_per_second") is not None]
    return (rates[-1], "log.jsonl eval_samples_per_second (validation)") if rates else (None, None)


def weights_mb(model_dir: Path) -> float | None:
    """Size of a saved model's weight files in MB (None when the folder has none)."""
    files = [f for pattern in ("*.safetensors", "*.bin") for f in Path(model_dir).glob(pattern)]
    return round(sum(f.stat().st_size for f in files) / 1e6, 2) if files else None


# ---------------------------------------------------------------- label schemes


def scheme_of(entry: dict) -> LabelScheme:
    """An entry's classes: its `labels`, else the class names its metrics record, else binary (first-format)."""
    if entry.get("labels"):
        return LabelScheme.from_dict(entry["labels"])
    names = (entry.get("metrics") or {}).get("labels")
    return LabelScheme.from_dict({"names": names} if names else None)


def common_scheme(entries: list[dict]) -> LabelScheme:
    """The one label scheme of all entries (ordinal when any says so); a one-line refusal when classes differ."""
    schemes = [scheme_of(e) for e in entries]
    if len({s.names for s in schemes}) > 1:
        described = "; ".join(f"{e['name']}: {list(s.names)}" for e, s in zip(entries, schemes))
        raise SentituneError(f"compare: entries have different classes ({described}); compare entries trained and "
                             "scored on the same label scheme.")
    return LabelScheme(schemes[0].names, any(s.ordinal for s in schemes))


def ranking_metric(scheme: LabelScheme) -> str:
    """What "best" means: accuracy for two classes, macro-F1 for more (a majority class cannot win it)."""
    return "accuracy" if scheme.binary else "f1_macro"


def with_metrics(entry: dict, scheme: LabelScheme) -> dict:
    """The entry with first-format predictions upgraded and any metric it lacks (first-format entries have no
    macro-F1) computed from its predictions; recorded values are kept."""
    from ..core.metrics import classification_metrics
    from ..run.folder import probabilities, upgrade_predictions

    predictions = upgrade_predictions(entry["predictions"])
    metrics = entry["metrics"]
    if "f1_macro" not in metrics:
        recomputed = classification_metrics(predictions["label"], probabilities(predictions), scheme.names,
                                             scheme.ordinal, pred=predictions["pred"])
        metrics = {**recomputed, **metrics}
    return {**entry, "metrics": metrics, "predictions": predictions}


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
    sample = f"{examples['per_class']} per class, seed {examples.get('seed')}" if examples.get("per_class") \
        else "whole split"
    return (f"{examples.get('split')}, {examples.get('size')} examples ({sample}), "
            f"fingerprint {examples.get('fingerprint')}")


def unique_names(entries: list[dict]) -> list[dict]:
    """Entries with repeated names suffixed #2, #3... so that rows and plot labels stay distinct."""
    seen: dict[str, int] = {}
    out = []
    for entry in entries:
        seen[entry["name"]] = seen.get(entry["name"], 0) + 1
        out.append(entry if seen[entry["name"]] == 1 else {**entry, "name": f"{entry['name']}#{seen[entry['name']]}"})
    return out


def decisions(entry: dict) -> pd.DataFrame:
    """The entry's label and predicted class per example, indexed by idx."""
    p = entry["predictions"]
    return pd.DataFrame({"label": p["label"].to_numpy(int), "pred": p["pred"].to_numpy(int)}, index=p["idx"].to_numpy())


def paired_decisions(entry: dict, reference: dict, same_examples: bool) -> pd.DataFrame:
    """label, pred_a (entry) and pred_b (reference) on the examples both scored with the same label, by idx."""
    a, b = decisions(entry), decisions(reference)
    common = a.index.intersection(b.index)
    if same_examples and (len(common) != len(a) or len(common) != len(b)):
        raise SentituneError(f"compare: '{entry['name']}' and '{reference['name']}' share a fingerprint but their "
                             f"predictions cover different idx ({len(a)} vs {len(b)}, {len(common)} common); "
                             "re-run one of them.")
    a, b = a.loc[common], b.loc[common]
    agree = a["label"].to_numpy() == b["label"].to_numpy()
    return pd.DataFrame({"label": a["label"], "pred_a": a["pred"], "pred_b": b["pred"].to_numpy()})[agree]


def paired_tests(entry: dict, reference: dict, same_examples: bool, k: int) -> tuple[dict, dict | None]:
    """McNemar on who is right and the paired bootstrap of macro-F1 (entry minus reference), on common examples."""
    from ..core.metrics import mcnemar, paired_bootstrap

    pairs = paired_decisions(entry, reference, same_examples)
    if pairs.empty:
        return {"n": 0, "p_value": None}, None
    y, a, b = (pairs[c].to_numpy(int) for c in ("label", "pred_a", "pred_b"))
    return mcnemar(a == y, b == y), paired_bootstrap(y, a, b, k, metric="f1_macro")


def best_baseline(entries: list[dict], ranked_by: str | None = None) -> dict | None:
    """The baseline (any entry neither fine-tuned nor an ensemble) with the highest `ranked_by` (default:
    `ranking_metric`)."""
    baselines = [e for e in entries if e["kind"] not in (FINE_TUNED, ENSEMBLE)]
    if not baselines:
        return None
    ranked_by = ranked_by or ranking_metric(common_scheme(entries))
    return max(baselines, key=lambda e: e["metrics"].get(ranked_by) or 0.0)


def row_metrics(metrics: dict, scheme: LabelScheme) -> dict:
    """The table's metric columns for this scheme (binary adds the positive class's, ordinal adds mae/qwk)."""
    keys = METRIC_KEYS + (BINARY_KEYS if scheme.binary else ()) + (ORDINAL_KEYS if scheme.ordinal else ())
    return {key: metrics.get(key) for key in keys}


def comparison_row(entry: dict, reference: dict | None, same_examples: bool, scheme: LabelScheme) -> dict:
    """One table row: metrics, speed, size, and the paired differences to the best baseline."""
    row = {"name": entry["name"], "kind": entry["kind"], **row_metrics(entry["metrics"], scheme),
           "examples_per_s": entry.get("examples_per_s"), "model_size_mb": entry.get("model_size_mb"),
           "examples": entry.get("examples"), "delta_accuracy_vs_best_baseline": None,
           "mcnemar_vs_best_baseline": None, "bootstrap_f1_macro_vs_best_baseline": None}
    if reference is not None and reference is not entry:
        test, bootstrap = paired_tests(entry, reference, same_examples, scheme.n)
        row["mcnemar_vs_best_baseline"], row["bootstrap_f1_macro_vs_best_baseline"] = test, bootstrap
        if test["n"]:
            row["delta_accuracy_vs_best_baseline"] = test["accuracy_a"] - test["accuracy_b"]
    return row


def comparison(entries: list[dict], allow_different_examples: bool = False) -> dict:
    """The comparison as a JSON-safe dict: labels, ranked_by, best baseline, examples, rows (best first), headline."""
    if not entries:
        raise SentituneError("compare: nothing to compare; pass run folders and/or baseline folders.")
    entries = unique_names(entries)
    scheme = common_scheme(entries)
    entries = [with_metrics(e, scheme) for e in entries]
    same = same_examples(entries)
    if not same and not allow_different_examples:
        raise different_examples_error(entries)
    ranked_by = ranking_metric(scheme)
    reference = best_baseline(entries, ranked_by)
    rows = sorted((comparison_row(e, reference, same, scheme) for e in entries), key=lambda r: -(r[ranked_by] or 0.0))
    return {"labels": scheme.to_dict(), "ranked_by": ranked_by,
            "best_baseline": reference["name"] if reference else None, "same_examples": same,
            "examples": entries[0].get("examples") if same else None, "rows": rows,
            "headline": headline(rows, reference, ranked_by), **decision(rows, reference, ranked_by)}


WINS, TIE, LOSES = "fine-tuned wins", "tie: pick by speed/size", "baseline wins"


def decision(rows: list[dict], reference: dict | None, ranked_by: str = "accuracy") -> dict:
    """{decision, advice}: the best fine-tuned entry against the best baseline, as a choice a user makes. It wins or
    loses only where the paired test says so at 5% (McNemar on accuracy for two classes, the bootstrap of macro-F1
    above); otherwise it is a tie, and the advice names the faster and smaller of the two."""
    tuned = next((r for r in rows if r["kind"] == FINE_TUNED), None)
    if tuned is None or reference is None or tuned["delta_accuracy_vs_best_baseline"] is None:
        return {"decision": None, "advice": None}
    ref = next(r for r in rows if r["name"] == reference["name"])
    test = tuned["mcnemar_vs_best_baseline"] if ranked_by == "accuracy" else bootstrap_of(tuned)
    delta = tuned["delta_accuracy_vs_best_baseline"] if ranked_by == "accuracy" else test.get("delta")
    p = test.get("p_value")
    choice = TIE if p is None or p >= 0.05 or not delta else WINS if delta > 0 else LOSES
    if choice == WINS:
        return {"decision": choice, "advice": f"deploy {tuned['name']}: it is the more accurate, beyond noise."}
    how = "more accurate, beyond noise" if choice == LOSES else "as accurate within noise"
    edge = [f"{ratio:.0f}x {word}" for ratio, word in (
        (ratio_of(ref["examples_per_s"], tuned["examples_per_s"]), "faster"),
        (ratio_of(tuned["model_size_mb"], ref["model_size_mb"]), "smaller")) if ratio and ratio >= 1.5]
    if choice == TIE and not edge:
        return {"decision": choice, "advice": f"{tuned['name']} and {ref['name']} are as accurate within noise; "
                                              "pick either by what you deploy on."}
    return {"decision": choice, "advice": f"{ref['name']} is the better choice on this machine: {how}"
                                          + (f", {' and '.join(edge)}" if edge else "") + "."}


def ratio_of(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def headline(rows: list[dict], reference: dict | None, ranked_by: str = "accuracy") -> str:
    """One sentence: how the best fine-tuned entry does against the best baseline."""
    tuned = [r for r in rows if r["kind"] == FINE_TUNED]
    if reference is None:
        return "No baseline to set the runs against."
    if not tuned:
        return "No fine-tuned run to set against the baselines."
    best = tuned[0]
    if best["delta_accuracy_vs_best_baseline"] is None:
        return f"{best['name']} and {reference['name']} share no test examples; no paired test."
    return binary_headline(best, reference) if ranked_by == "accuracy" else macro_headline(best, reference)


def verdict(delta: float) -> str:
    return "beats" if delta > 0 else "trails" if delta < 0 else "ties with"


def significance(p: float | None) -> str:
    return "significant at 5%" if p is not None and p < 0.05 else "not significant at 5%"


def binary_headline(best: dict, reference: dict) -> str:
    """The two-class sentence, worded as it always was (accuracy and McNemar)."""
    test, delta = best["mcnemar_vs_best_baseline"], best["delta_accuracy_vs_best_baseline"]
    return (f"{best['name']} {verdict(delta)} the best baseline {reference['name']} by {100 * abs(delta):.2f} accuracy "
            f"points (McNemar exact p: {fmt_p(test['p_value'])}, {significance(test['p_value'])}, n = {test['n']}).")


def macro_headline(best: dict, reference: dict) -> str:
    """The N-class sentence: the macro-F1 difference with its bootstrap p, then accuracy with McNemar's."""
    test, bootstrap = best["mcnemar_vs_best_baseline"], best["bootstrap_f1_macro_vs_best_baseline"]
    delta_f1, delta_acc = bootstrap["delta"], best["delta_accuracy_vs_best_baseline"]
    return (f"{best['name']} {verdict(delta_f1)} the best baseline {reference['name']} (ranked by macro-F1) by "
            f"{100 * abs(delta_f1):.2f} macro-F1 points (paired bootstrap p: {fmt_bootstrap_p(bootstrap)}, "
            f"{significance(bootstrap['p_value'])}) and {100 * delta_acc:+.2f} accuracy points "
            f"(McNemar exact p: {fmt_p(test['p_value'])}), n = {test['n']}.")


# ---------------------------------------------------------------- writing


def compare(entries: list, out_dir: str | Path, allow_different_examples: bool = False) -> dict:
    """Compare entries (paths or result dicts) and write comparison.json/.md/.png into `out_dir`."""
    from ..run.folder import write_comparison
    from . import plots

    loaded = [e for item in entries for e in ([item] if isinstance(item, dict) else load_entries([item]))]
    table = comparison(loaded, allow_different_examples)
    write_comparison(Path(out_dir), table, markdown(table), lambda path: plots.plot_comparison(table, path))
    return table


def fmt(value, spec: str = ".4f", missing: str = "n/a") -> str:
    """A number formatted with `spec`, or `missing` when absent."""
    return missing if value is None else format(value, spec)


def fmt_p(p: float | None) -> str:
    """A p-value for the table: two significant digits, and "<0.0001" below that (it may underflow to 0)."""
    return "—" if p is None else "<0.0001" if p < 1e-4 else f"{p:.2g}"


def fmt_bootstrap_p(bootstrap: dict | None) -> str:
    """A bootstrap p-value; at its floor (one resample in `resamples`) it is an upper bound, shown as such."""
    p, resamples = (bootstrap or {}).get("p_value"), (bootstrap or {}).get("resamples")
    return f"≤{1 / resamples:g}" if p is not None and resamples and p <= 1 / resamples else fmt_p(p)


def fmt_ci(interval) -> str:
    return "n/a" if not interval else f"[{interval[0]:.4f}, {interval[1]:.4f}]"


def bootstrap_of(row: dict) -> dict:
    return row["bootstrap_f1_macro_vs_best_baseline"] or {}


def columns(table: dict) -> list[tuple[str, str]]:
    """(header, row key) of comparison.md for the table's label scheme: the positive class's F1/precision/recall
    and ROC-AUC for two classes, macro recall and weighted F1 for more, MAE and QWK for ordinal scales."""
    scheme = LabelScheme.from_dict(table.get("labels"))
    out = [("entry", "name"), ("kind", "kind"), ("n", "n"), ("accuracy", "accuracy"), ("95% CI", "accuracy_ci95")]
    if scheme.binary:
        out += [("F1", "f1"), ("precision", "precision"), ("recall", "recall"), ("ROC-AUC", "roc_auc"),
                ("macro-F1", "f1_macro")]
    else:
        out += [("macro-F1", "f1_macro"), ("95% CI", "f1_macro_ci95"), ("macro recall", "recall_macro"),
                ("weighted F1", "f1_weighted")]
    if scheme.ordinal:
        out += [("MAE", "mae"), ("QWK", "qwk")]
    return out + [("examples/s", "examples_per_s"), ("size (MB)", "model_size_mb"),
                  ("Δ acc vs best baseline", "delta_accuracy_vs_best_baseline"),
                  ("McNemar p", "mcnemar_vs_best_baseline"),
                  ("Δ macro-F1", "delta_f1_macro"), ("bootstrap p", "bootstrap_p")]


def cell(row: dict, key: str, table: dict) -> str:
    """One cell of comparison.md: scores to 4 places, intervals in brackets, deltas in points, p-values short."""
    value = row.get(key)
    if key in ("name", "kind", "n"):
        return str(value)
    if key.endswith("_ci95"):
        return fmt_ci(value)
    if key == "delta_accuracy_vs_best_baseline":
        return fmt_delta(row, table, value)
    if key == "delta_f1_macro":
        return fmt_delta(row, table, bootstrap_of(row).get("delta"))
    if key == "mcnemar_vs_best_baseline":
        return fmt_p((value or {}).get("p_value"))
    if key == "bootstrap_p":
        return fmt_bootstrap_p(bootstrap_of(row))
    return fmt(value, {"mae": ".3f", "examples_per_s": ".1f", "model_size_mb": ".1f"}.get(key, ".4f"))


def fmt_delta(row: dict, table: dict, delta: float | None) -> str:
    if row["name"] == table["best_baseline"]:
        return "(reference)"
    return fmt(None if delta is None else 100 * delta, "+.2f") + " pts"


def markdown(table: dict) -> str:
    """comparison.md: the examples used, the headline, and the table with the columns the label scheme calls for."""
    examples = describe_examples(table["examples"]) if table["same_examples"] else (
        "DIFFERENT examples per entry (see each row's `examples` in comparison.json); "
        "paired tests use the examples in common")
    ranked = "" if table.get("ranked_by", "accuracy") == "accuracy" else " (by macro-F1)"
    cells = columns(table)
    align = ["---" if key in ("name", "kind") or key.endswith("_ci95") else "---:" for _, key in cells]
    lines = ["# Comparison", "", f"Test examples: {examples}.", "",
             f"Best baseline{ranked}: {table['best_baseline'] or 'none'}. {table['headline']}", "",
             "| " + " | ".join(header for header, _ in cells) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(r, key, table) for _, key in cells) + " |" for r in table["rows"]]
    lines += ["", "95% CI: Wilson interval on accuracy, percentile bootstrap on macro-F1. McNemar p: exact two-sided "
              "binomial test on the examples where exactly one of the entry and the best baseline is right, paired by "
              "`idx`. Δ macro-F1 and bootstrap p: paired bootstrap (1000 resamples of the common examples) of the "
              "macro-F1 difference.", ""]
    return "\n".join(lines)
