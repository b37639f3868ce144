"""Report stage: one self-contained HTML file (images embedded) and a Markdown twin, rendered from `facts.run_facts`.

Every number shown comes from the run's metrics and evaluation, through the same facts the model card renders;
the "lessons learned" are sentences computed from those facts. The most confident errors that `sentitune evaluate`
explained show their words coloured by attribution (the colours of `inference.explain`). The HTML environment escapes
every value (texts and class names come from the data and must never become markup); the Markdown escapes pipes
inside table cells.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

from ..core.colours import background
from ..core.io import atomic_write_text
from ..evaluation.plots import plot_class_shares, plot_comparison
from .facts import environment, metric_label, ranked, run_facts

CLASS_SHARES, COMPARISON_CHART = "class_shares.png", "comparison.png"  # figures drawn at report time


# ---------------------------------------------------------------- lessons learned


def points(a: float, b: float) -> str:
    """A difference of two rates in percentage points, signed."""
    return f"{100 * (a - b):+.1f} points"


def intervals_overlap(a: dict, b: dict) -> bool:
    """Whether two slice rows' 95% accuracy intervals overlap (then a gap between them is not conclusive)."""
    return a["accuracy_ci95"][0] <= b["accuracy_ci95"][1] and b["accuracy_ci95"][0] <= a["accuracy_ci95"][1]


def gap_sentence(subject: str, a: dict, b: dict, unit: str) -> str:
    """'<subject>: accuracy A (n) vs B (n), +x points; conclusive or not.' for two slice rows."""
    verdict = ("the 95% intervals overlap, so the gap is within noise" if intervals_overlap(a, b)
               else "the 95% intervals do not overlap")
    return (f"{subject}: accuracy {a['accuracy']:.3f} on {a['n']} {unit} {a['group']} vs {b['accuracy']:.3f} on "
            f"{b['n']} {b['group']} ({points(a['accuracy'], b['accuracy'])}); {verdict}.")


def paired_tests_text(model: dict) -> str:
    """' (McNemar p = x; paired bootstrap p = y on macro F1)' from the run's comparison row ('' without tests)."""
    parts = [f"{name} p = {test['p_value']:.2g}{suffix}" for name, test, suffix in (
        ("McNemar", model.get("mcnemar"), ""), ("paired bootstrap", model.get("bootstrap"), " on macro F1"))
        if (test or {}).get("p_value") is not None]
    return f" ({'; '.join(parts)})" if parts else ""


def baseline_lesson(rows: list[dict], primary: str, labels, best_name: str | None) -> str | None:
    """How far the run is from the best baseline scored on the same examples, on the primary metric."""
    same = [r for r in rows[1:] if r["comparable"] and r["metrics"].get(primary) is not None]
    if not same:
        return ("No baseline was scored on the same test examples, so the comparison is only indicative."
                if len(rows) > 1 else None)
    model = rows[0]
    best = next((r for r in same if r["name"] == best_name), None) or ranked(same, primary)[0]
    value, base = model["metrics"][primary], best["metrics"][primary]
    direction = "above" if value > base else "below"
    sentence = (f"The fine-tuned model's test {metric_label(primary, labels)} {value:.3f} is "
                f"{abs(100 * (value - base)):.1f} points {direction} the best baseline on the same "
                f"{model['metrics'].get('n', '')} examples, {best['name']} ({base:.3f}){paired_tests_text(model)}.")
    skipped = [r["name"] for r in rows[1:] if not r["comparable"]]
    if skipped:
        sentence += f" Not compared, because they were scored on other examples: {', '.join(skipped)}."
    return sentence


def calibration_lesson(evaluation: dict, unit: str) -> str:
    """Whether temperature scaling was needed, from the ECE before and after."""
    ece = evaluation["metrics"]["ece"]
    t = evaluation.get("temperature")
    if not t:
        return (f"Expected calibration error is {ece:.3f}; no validation predictions were available to fit a "
                "temperature.")
    after = t["metrics_after"]["ece"]
    direction = "over-confident (T > 1 softens it)" if t["value"] > 1 else "under-confident (T < 1 sharpens it)"
    needed = "worth applying" if after < ece - 0.005 else "not needed: it barely changes the calibration"
    return (f"Calibration: ECE {ece:.3f} before and {after:.3f} after temperature scaling (T = {t['value']:.2f}, "
            f"fitted on {t['n_fit']} validation {unit}); the raw model is {direction}, and scaling is {needed}. "
            f"Log loss goes from {t['metrics_before']['log_loss']:.3f} to {t['metrics_after']['log_loss']:.3f}; "
            "accuracy is unchanged by construction.")


def pooled(rows: list[dict], group: str) -> dict:
    """Several slice rows as one (accuracy weighted by size, the widest interval bounds)."""
    n = sum(r["n"] for r in rows)
    return {"group": group, "n": n, "accuracy": sum(r["accuracy"] * r["n"] for r in rows) / n,
            "accuracy_ci95": [min(r["accuracy_ci95"][0] for r in rows), max(r["accuracy_ci95"][1] for r in rows)]}


def rating_lesson(rows: list[dict]) -> str | None:
    """Are the borderline ratings (4 and 7) harder than the extreme ones (1 and 10)? (IMDB's rating scale.)"""
    by = {r["group"]: r for r in rows}
    border, extreme = [by[g] for g in ("4", "7") if g in by], [by[g] for g in ("1", "10") if g in by]
    if not border or not extreme:
        return None
    b, e = pooled(border, "4- and 7-star"), pooled(extreme, "1- and 10-star")
    verdict = "Yes" if b["accuracy"] < e["accuracy"] else "No"
    return (f"Are 4s and 7s the hardest? {verdict}: accuracy {b['accuracy']:.3f} on {b['n']} 4- and 7-star reviews vs "
            f"{e['accuracy']:.3f} on {e['n']} 1- and 10-star ones ({points(b['accuracy'], e['accuracy'])}).")


def slice_lessons(facts: dict) -> list[str | None]:
    """The weakest slice, and the truncation, rating and negation gaps."""
    evaluation, unit = facts["evaluation"], facts["unit"]
    tables, overall = evaluation["slices"], evaluation["metrics"]["accuracy"]
    lessons = []
    if facts["weakest_slices"]:
        w = facts["weakest_slices"][0]
        lessons.append(f"The weakest slice is {w['slice']} = {w['group']}: accuracy {w['accuracy']:.3f} on {w['n']} "
                       f"{unit}, {points(w['accuracy'], overall)} from the overall {overall:.3f}.")
    if len(tables.get("truncation", [])) == 2:
        kept, cut = tables["truncation"]
        share = cut["n"] / (cut["n"] + kept["n"])
        subject = f"Truncation to {evaluation['max_length']} tokens ({100 * share:.0f}% of test {unit} are cut)"
        lessons.append(gap_sentence(subject, cut, kept, unit))
    lessons.append(rating_lesson(tables.get("rating", [])))
    if len(tables.get("negation", [])) == 2:
        without, with_ = tables["negation"]
        lessons.append(gap_sentence("Negation words", with_, without, unit))
    return lessons


def weakest_class_lesson(facts: dict) -> str | None:
    """The class with the lowest recall and what it is most often mistaken for (three or more classes)."""
    weak, confused, m = facts["weakest_class"], facts["most_confused"], facts["m"]
    if not weak:
        return None
    sentence = (f"The weakest class is {weak['label']}: recall {weak['recall']:.3f} (F1 {weak['f1']:.3f}) on "
                f"{weak['support']} test {facts['unit']}, against a macro recall of {m['recall_macro']:.3f}.")
    if confused and confused["true"] == weak["label"]:
        sentence += (f" It is most often mistaken for {confused['pred']} ({confused['count']} times, "
                     f"{confused['share']:.0%}).")
    elif confused:
        sentence += (f" The most frequent confusion is {confused['true']} called {confused['pred']} "
                     f"({confused['count']} times, {confused['share']:.0%} of the true {confused['true']}).")
    return sentence


def shares_lesson(facts: dict) -> str | None:
    """The largest shift in class shares between train and test, when they differ."""
    if not facts["shares_differ"]:
        return None
    train, test = facts["class_shares"]["train"], facts["class_shares"]["test"]
    name = max(train, key=lambda n: abs(train[n] - test.get(n, 0)))
    return (f"Class shares differ between train and test (largest shift: {name}, {train[name]:.1%} of train vs "
            f"{test.get(name, 0):.1%} of test), so accuracy depends on the test mix; macro recall and macro F1 weigh "
            "every class alike.")


def ordinal_lesson(facts: dict) -> str | None:
    m = facts["m"]
    if not facts["labels"].ordinal or m.get("mae") is None:
        return None
    return (f"On the ordered scale the model is off by {m['mae']:.2f} classes on average, {m['within_one']:.1%} of its "
            f"predictions are within one class of the truth, and the quadratic weighted kappa is {m['qwk']:.3f}.")


def error_lesson(evaluation: dict, labels, unit: str) -> str | None:
    """How the errors split: false positives and negatives for two classes, errors per true class above."""
    counts = evaluation["errors"].get("n_errors") or {}
    if not counts or None in counts.values():
        return None
    if labels.binary:
        negative, positive = labels.names
        return (f"Errors split into {counts[negative]} false positives ({negative} {unit} called {positive}) and "
                f"{counts[positive]} false negatives.")
    support = {r["label"]: r["support"] for r in evaluation["metrics"].get("per_class", [])}
    parts = [f"{name} {n} of {support.get(name, '?')}" for name, n in counts.items()]
    return f"Errors by true class: {', '.join(parts)}."


def selection_column(train: dict, log: list[dict]) -> str | None:
    """The logged validation metric that picked the checkpoint (eval_f1 / eval_f1_macro in older logs)."""
    metric = train.get("selection_metric")
    candidates = ([f"eval_{metric}"] if metric else []) + ["eval_f1", "eval_f1_macro"]
    return next((c for c in candidates if any(r.get(c) is not None for r in log)), None)


def training_lesson(train: dict, log: list[dict], labels) -> str | None:
    """Where the validation selection metric peaked relative to the end of training."""
    column = selection_column(train, log)
    if column is None:
        return None
    evals = [r for r in log if r.get(column) is not None]
    best = max(evals, key=lambda r: r[column])
    name = f"Validation {metric_label(column.removeprefix('eval_'), labels)}"
    last_step = train.get("steps") or max(r.get("step", 0) for r in log)
    if best["step"] >= last_step:
        return (f"{name} was still rising at the last evaluation (step {best['step']}, {best[column]:.3f}): "
                "more steps would probably help.")
    return (f"{name} peaked at step {best['step']} of {last_step} ({best[column]:.3f}); the steps after it did not "
            "improve it.")


def study_lesson(study: dict | None) -> str | None:
    """What the hyperparameter search found."""
    if not study or not study["best"]:
        return None
    best = study["best"]
    params = best.get("params", best)
    shown = ", ".join(f"{k} = {v}" for k, v in params.items() if not isinstance(v, (dict, list)))
    value = best.get("value")
    return (f"The hyperparameter search's best trial used {shown}"
            + (f" (objective {value:.4f})." if isinstance(value, (int, float)) else "."))


def lessons_learned(facts: dict) -> list[str]:
    """One sentence per fact of the run: baseline gap, classes, slices, calibration, errors, training, search."""
    labels, evaluation, unit = facts["labels"], facts["evaluation"], facts["unit"]
    lessons = [baseline_lesson(facts["comparison"], facts["primary"], labels, facts["best_baseline"]),
               weakest_class_lesson(facts), shares_lesson(facts), ordinal_lesson(facts), *slice_lessons(facts),
               calibration_lesson(evaluation, unit), error_lesson(evaluation, labels, unit),
               training_lesson(facts["train"], facts["log"], labels), study_lesson(facts["study"])]
    return [s for s in lessons if s]


# ---------------------------------------------------------------- figures


FIGURES = {
    "loss": "Training and validation loss", "f1": "Validation score and accuracy", "learning_rate": "Learning rate",
    "confusion_matrix": "Confusion matrix (rows true, shaded by the share of each true class)",
    "per_class": "Precision, recall and F1 per class", "roc_pr": "ROC and precision-recall curves",
    "reliability": "Reliability diagram (confidence in the predicted class)",
}


def figure_title(key: str) -> str:
    return FIGURES.get(key) or key.replace("_", " ").capitalize()


def evaluation_figures(facts: dict) -> list[dict]:
    """[{title, path}] of the evaluation's plots that exist, in reading order."""
    made, root = facts["evaluation"].get("plots") or {}, facts["run_dir"]
    order = [k for k in FIGURES if k in made] + [k for k in made if k not in FIGURES]
    return [{"title": figure_title(k), "path": root / made[k]} for k in order if (root / made[k]).is_file()]


def report_figures(facts: dict) -> list[dict]:
    """Figures drawn from the facts themselves: class shares when train and test differ, the comparison chart."""
    plots_dir, out = facts["run"].plots_dir, []
    if facts["shares_differ"]:
        out.append({"title": "Class shares, train vs test", "path": plot_class_shares(facts["class_shares"],
                                                                                       plots_dir / CLASS_SHARES)})
    chart = facts["comparison_chart"]
    if chart is None and facts["comparison"]:
        chart = plot_comparison(facts["comparison_table"], plots_dir / COMPARISON_CHART)
    if chart is not None:
        out.append({"title": "Model vs baselines", "path": chart})
    return out


def figures(facts: dict) -> list[dict]:
    """The evaluation's plots, then the report's own, then the study's."""
    study = [{"title": f"Hyperparameter search: {p.stem.replace('_', ' ')}", "path": p}
             for p in (facts["study"] or {}).get("plots", [])]
    return evaluation_figures(facts) + report_figures(facts) + study


# ---------------------------------------------------------------- explained errors


def highlighted(text: str, words: list[dict]) -> list[dict]:
    """`text` in pieces: each explained word as {text, colour, score}, the characters between words as {text}.
    The template escapes every piece; spans that overlap or fall outside `text` (a hand-edited file) are left plain."""
    pieces, last = [], 0
    for word in sorted(words, key=lambda w: w["start"]):
        start, end, score = int(word["start"]), int(word["end"]), float(word["score"])
        if last <= start < end <= len(text):
            pieces += [{"text": text[last:start]},
                       {"text": text[start:end], "colour": "rgb({},{},{})".format(*background(score)), "score": score}]
            last = end
    return pieces + [{"text": text[last:]}]


def top_words(words: list[dict], k: int = 5) -> list[str]:
    """The `k` words of largest |score|, as 'word +0.87'."""
    return [f"{w['word']} {w['score']:+.2f}" for w in sorted(words, key=lambda w: -abs(w["score"]))[:k]]


def explained_errors(evaluation: dict) -> list[dict]:
    """The errors `sentitune evaluate` explained, most confident first, with their pieces and top words."""
    rows = [row for rows in (evaluation.get("errors") or {}).get("confident", {}).values() for row in rows
            if row.get("words")]
    return [{**row, "pieces": highlighted(row["text"], row["words"]), "top_words": top_words(row["words"])}
            for row in sorted(rows, key=lambda r: -r["confidence"])]


# ---------------------------------------------------------------- rendering


def data_uri(path: Path) -> str:
    """A PNG as a base64 data URI, so the HTML needs no files beside it."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render(facts: dict, template: str, image_src) -> str:
    """Render one report template; `image_src(path)` decides how images are referenced (data URI or relative link).
    Templates named *.html.j2 are rendered with every value HTML-escaped."""
    shown = facts["figures"] if "figures" in facts else figures(facts)
    context = {**facts, "lessons": lessons_learned(facts), "explained": explained_errors(facts["evaluation"]),
               "figures": [{**f, "src": image_src(f["path"])} for f in shown]}
    context["config_yaml"] = yaml.safe_dump(facts["config"], sort_keys=False)
    return environment(html=template.endswith(".html.j2")).get_template(template).render(**context)


def relative_link(out_dir: Path):
    return lambda path: Path(os.path.relpath(Path(path).resolve(), out_dir.resolve())).as_posix()


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, comparison=None,
                 study_dir: str | Path | None = None) -> Path:
    """Write the self-contained HTML report and its Markdown twin to `out_dir` (default: the run folder); returns
    the HTML path.

    `comparison`: a comparison.json path or folder, or a loaded table (default: the run's own when it has one).
    `study_dir`: a hyperparameter study folder with best.yaml and plots/ (default: RUN/study when present).
    The run is evaluated first when it has no evaluation yet."""
    facts = run_facts(run_dir, comparison, study_dir)
    facts["figures"] = figures(facts)
    run = facts["run"]
    html_path, md_path = run.report_html, run.report_md
    if out_dir is not None:
        html_path, md_path = Path(out_dir) / html_path.name, Path(out_dir) / md_path.name
    atomic_write_text(md_path, render(facts, "report.md.j2", relative_link(md_path.parent)))
    return atomic_write_text(html_path, render(facts, "report.html.j2", data_uri))
