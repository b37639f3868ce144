"""Presentation: a self-contained HTML slide deck of one run (`RUN/presentation.html`) for a 15-minute walkthrough.

Nine slides: title; task and data; baselines; training; results against the baselines; per-class metrics; errors;
speed; lessons and what to try next. Each has speaker notes (key `s` shows them). Every number comes from the run,
through `facts.run_facts` and `RunFolder` reads; a piece the run lacks is left out and the slide's notes say so.
The run's plots and comparison chart are embedded as data URIs (figures a run lacks are drawn into a scratch folder,
never into the run), CSS and JavaScript are inline, and printing gives one slide per page. The template escapes
every value: texts, class names and run names come from the data and must never become markup.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from ..core.io import atomic_write_text
from ..evaluation.plots import plot_comparison, plot_confusion_matrix, training_plots
from ..run.folder import RunFolder
from .facts import (
    FINE_TUNED,
    SHARE_TOLERANCE,
    confident_errors,
    evaluation_plot,
    explained_errors,
    metric_label,
    run_facts,
)
from .formats import FILTERS, data_uri, environment, highlighted

TEMPLATE = "presentation.html.j2"
ERRORS_SHOWN, EXPLAINED_SHOWN, LESSONS_SHOWN = 4, 3, 5
EXCERPT_CHARS, EXPLAINED_CHARS = 240, 300
CURVES = ("loss", "f1")  # the training plots shown: loss, and the selection metric with accuracy

# what each baseline family is, by the start of its name, then by its kind
BASELINE_WHAT = (
    ("majority", "always predicts the most frequent training class: the bar any model must clear"),
    ("tfidf", "TF-IDF of words and word pairs, then logistic regression: the classical text classifier"),
    ("vader", "the VADER sentiment lexicon: its compound score, split into classes by the authors' thresholds"),
    ("base-zero-shot", "the encoder before fine-tuning: each text goes to the class whose description its "
                       "embedding is closest to"),
    ("base-probe", "the frozen encoder before fine-tuning, with logistic regression on its embeddings"),
    ("star", "a pretrained star-rating review classifier, its stars mapped onto the classes"),
)
KIND_WHAT = {"trivial": "a trivial rule", "classical": "a classical classifier on word features",
             "lexicon": "a sentiment lexicon", "zero-shot": "a pretrained model used without training",
             "linear-probe": "a linear classifier on frozen embeddings", FINE_TUNED: "another fine-tuned model"}


@dataclass
class Slide:
    key: str
    title: str
    minutes: float
    content: dict
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # pieces the run lacks, named in the notes


# ---------------------------------------------------------------- reading the run


def figure(title: str, path: Path) -> dict:
    return {"title": title, "src": data_uri(path)}


def run_date(run: RunFolder) -> str:
    """When training ended, as the date metrics.json was last written."""
    return datetime.fromtimestamp(run.metrics_path.stat().st_mtime).date().isoformat()


def token_rows(stats: dict) -> list[dict]:
    """[{split, mean, p50, p90, p99, max}] from data_stats.json's token sample."""
    tokens = stats.get("tokens") or {}
    return [{"split": split, **{k: row.get(k) for k in ("mean", "p50", "p90", "p99", "max")}}
            for split, row in tokens.items() if isinstance(row, dict) and row.get("p50") is not None]


def prediction_token_rows(run: RunFolder) -> list[dict]:
    """The same, from the predictions table's token counts (the evaluated splits only)."""
    if not run.has_predictions():
        return []
    frame = run.predictions()
    if "n_tokens" not in frame:
        return []
    groups = frame.groupby("split") if "split" in frame else [("test", frame)]
    return [{"split": split, "mean": float(g["n_tokens"].mean()),
             **{f"p{q}": float(np.percentile(g["n_tokens"], q)) for q in (50, 90, 99)}, "max": int(g["n_tokens"].max())}
            for split, g in groups]


def text_lengths(run: RunFolder, facts: dict) -> dict | None:
    """{source, rows} of text lengths in tokens, or {source, buckets} from the length slice, or None."""
    rows = token_rows(run.data_stats())
    if rows:
        return {"source": "a sample of each split (data_stats.json)", "rows": rows}
    rows = prediction_token_rows(run)
    if rows:
        return {"source": "the evaluated splits (predictions)", "rows": rows}
    buckets = (facts["evaluation"].get("slices") or {}).get("length") or []
    if buckets:
        total = sum(b["n"] for b in buckets) or 1
        return {"source": f"the {facts['evaluation'].get('split', 'test')} split's length slice", "rows": [],
                "buckets": [{"group": b["group"], "share": b["n"] / total} for b in buckets]}
    return None


# ---------------------------------------------------------------- texts


def shortened(text: str, chars: int = EXCERPT_CHARS) -> str:
    """The start and end of a long text joined by an ellipsis."""
    text = " ".join(str(text).split())
    if len(text) <= chars:
        return text
    head = chars * 2 // 3
    return f"{text[:head].rstrip()} … {text[-(chars - head):].lstrip()}"


def rate(value) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


# ---------------------------------------------------------------- slides


def title_slide(facts: dict) -> Slide:
    labels, dataset = facts["labels"], facts["dataset"]
    task = f"sentiment classification into {labels.n} classes" + (", an ordered scale" if labels.ordinal else "")
    rows = [("task", task), ("dataset", f"{dataset.name} ({facts['source']})"), ("model", facts["model_id"]),
            ("run", facts["name"]), ("date", run_date(facts["run"])), ("machine", facts["hardware"])]
    notes = [f"This is the run {facts['name']}: {facts['model_id']} fine-tuned on {dataset.name} to tell "
             f"{labels.n} classes apart ({', '.join(labels.names)}).",
             "The plan: the data, the baselines to beat, training, results, where it fails, speed, and lessons.",
             "The date is when the run's metrics were written, i.e. when training ended."]
    content = {"heading": f"{dataset.name}: {labels.n}-class sentiment",
               "subheading": f"fine-tuning {facts['model_id']}", "rows": rows}
    return Slide("title", facts["name"], 1, content, notes)


def shares_table(facts: dict) -> list[dict]:
    shares = facts["class_shares"]
    train, test = shares.get("train", {}), shares.get("test", {})
    return [{"name": name, "train": train.get(name), "test": test.get(name),
             "shift": train.get(name) is not None and test.get(name) is not None
             and abs(train[name] - test[name]) > SHARE_TOLERANCE}
            for name in facts["labels"].names]


def data_slide(facts: dict) -> Slide:
    data, labels, evaluation = facts["data"], facts["labels"], facts["evaluation"]
    splits = data.get("rows") or {}
    if not splits and evaluation.get("n"):
        splits = {evaluation.get("split", "test"): evaluation["n"]}
    lengths, cut = text_lengths(facts["run"], facts), facts["truncation"]
    content = {"classes": list(labels.names), "ordinal": labels.ordinal, "splits": splits,
               "shares": shares_table(facts) if facts["class_shares"] else [],
               "share_splits": list(facts["class_shares"]), "shares_differ": facts["shares_differ"],
               "lengths": lengths, "max_length": facts["max_length"], "truncated": cut["share"] if cut else None}
    notes = [f"{labels.n} classes: {', '.join(labels.names)}" + ("; their order matters." if labels.ordinal else ".")]
    if splits:
        notes.append("Split sizes: " + ", ".join(f"{k} {v:,}" for k, v in splits.items()) + ".")
    if facts["shares_differ"]:
        notes.append("Train and test class shares differ: accuracy depends on the test mix, so the macro metrics "
                     "matter more." + (f" {facts['dataset'].caveat}" if facts["dataset"].caveat else ""))
    for key, said in (("train_duplicates", "duplicate training texts removed"),
                      ("train_test_overlap", "training texts that also occur in test")):
        if data.get(key) is not None:
            notes.append(f"{data[key]} {said}.")
    if facts["max_length"].get("value"):
        notes.append(f"Texts are cut to {facts['max_length']['value']} tokens ({facts['max_length'].get('source')})"
                     + (f"; {cut['share']:.1%} of the test texts are longer." if cut else "."))
    missing = [] if splits else ["split sizes (metrics.json has no data facts)"]
    missing += [] if facts["class_shares"] else ["class shares (metrics.json has no per-class counts)"]
    missing += [] if lengths else ["text lengths (no data_stats.json, token counts or length slice)"]
    return Slide("data", "The task and the data", 2, content, notes, missing)


def what_it_is(entry: dict) -> str:
    name = str(entry["name"])
    return next((what for prefix, what in BASELINE_WHAT if name.startswith(prefix)), None) or KIND_WHAT.get(
        entry.get("kind"), "as named in the comparison table")


def baselines_slide(facts: dict, entries: list[dict]) -> Slide:
    others = [{"name": e["name"], "kind": e.get("kind") or "", "what": what_it_is(e), "comparable": e["comparable"],
               "n": e["metrics"].get("n")} for e in entries if not e["is_model"]]
    table = facts["comparison_table"]
    notes, missing = [], []
    if others:
        notes.append("Every system is scored on the same test examples as the fine-tuned model unless marked; the "
                     "paired tests compare each with the best baseline"
                     + (f", {table['best_baseline']}" if table.get("best_baseline") else "")
                     + (f", ranked by {metric_label(table['ranked_by'], facts['labels'])}." if table.get("ranked_by")
                        else "."))
        notes.append("Why these: the majority class is the floor, TF-IDF and the lexicon are what one gets without "
                     "deep learning, and the base encoder before fine-tuning shows what fine-tuning adds.")
    else:
        missing.append("baselines (no comparison table: run `sentitune baseline` and `sentitune compare`)")
    return Slide("baselines", "The baselines to beat", 1.5, {"rows": others}, notes, missing)


def curve_figures(facts: dict, scratch: Path) -> list[dict]:
    """The run's loss and validation curves, drawn from log.jsonl into `scratch` when the run has no plots."""
    found = {key: path for key in CURVES if (path := evaluation_plot(facts, key))}
    if len(found) < len(CURVES) and facts["log"]:
        drawn = training_plots(facts["log"], scratch / "curves")
        found = {key: found.get(key) or drawn.get(key) for key in CURVES if found.get(key) or drawn.get(key)}
    titles = {"loss": "Training and validation loss", "f1": "Validation score and accuracy"}
    return [figure(titles[key], path) for key, path in found.items()]


def training_slide(facts: dict, scratch: Path) -> Slide:
    train, config = facts["train"], facts["config"]
    accumulation = config.get("gradient_accumulation") or 1
    kept = f" ({FILTERS['kept'](train)})" if train.get("best_step") else ""
    rows = [("steps", f"{train['steps']:,}{kept}" if train.get("steps") else None),
            ("training examples", f"{train['train_samples']:,}" if train.get("train_samples") else None),
            ("wall time", FILTERS["duration"](train["wall_time_s"]) if train.get("wall_time_s") else None),
            ("throughput", f"{rate(train['train_examples_per_s'])} examples/s"
             if train.get("train_examples_per_s") else None),
            ("batch", f"{config['batch_size']}" + (f" × {accumulation} accumulated" if accumulation > 1 else "")
             if config.get("batch_size") else None),
            ("learning rate", f"{config['learning_rate']:g}" if config.get("learning_rate") else None),
            ("precision", train.get("precision")), ("machine", facts["hardware"])]
    rows = [(k, v) for k, v in rows if v]
    figures = curve_figures(facts, scratch)
    notes = []
    peak = facts["selection_peak"]
    if peak:
        notes.append(f"Validation {peak['metric']} was best at step {peak['step']} ({peak['value']:.3f}); "
                     f"training ran {peak['last_step']} steps.")
    if facts["budget"]:
        notes.append(f"Time plan: {facts['budget']}")
    if train.get("resumed_from"):
        notes.append(f"Training was interrupted and resumed from {train['resumed_from']}.")
    if train.get("train_loss") is not None:
        notes.append(f"Mean training loss over the run: {train['train_loss']:.3f}.")
    missing = [] if figures else ["training curves (no plots and no log.jsonl)"]
    missing += [] if train else ["training facts (metrics.json has no `train` record)"]
    return Slide("training", "Training", 2, {"rows": rows, "figures": figures}, notes, missing)


def result_keys(facts: dict, entries: list[dict]) -> list[str]:
    """The metric columns of the results slide: the primary metric, accuracy, and macro F1 (F1 for two classes)."""
    keys = dict.fromkeys([facts["primary"], "accuracy", "f1" if facts["labels"].binary else "f1_macro"])
    return [k for k in keys if any(e["metrics"].get(k) is not None for e in entries)]


def comparison_figure(facts: dict, scratch: Path) -> dict | None:
    chart = facts["comparison_chart"]
    if chart is None and facts["comparison_table"].get("rows"):
        chart = plot_comparison(facts["comparison_table"], scratch / "comparison.png")
    return figure("Model vs baselines", chart) if chart else None


def results_slide(facts: dict, entries: list[dict], scratch: Path) -> Slide:
    keys = result_keys(facts, entries)
    table = facts["comparison_table"]
    content = {"columns": [{"key": k, "label": metric_label(k, facts["labels"])} for k in keys],
               "rows": entries, "headline": table.get("headline"), "figure": comparison_figure(facts, scratch),
               "bootstrap": any(e["bootstrap"] for e in entries), "own": facts["headline"]}
    notes, missing = [], []
    lesson = lesson_of(facts, "baseline")
    if lesson:
        notes.append(lesson.finding)
    if entries:
        notes.append("Intervals are 95%: Wilson for accuracy, percentile bootstrap for the macro metrics. McNemar's "
                     "exact test pairs each system's right and wrong answers with the best baseline's.")
        skipped = [e["name"] for e in entries if not e["comparable"]]
        if skipped:
            notes.append(f"Scored on other test examples, so not directly comparable: {', '.join(skipped)}.")
    else:
        missing.append("the comparison with baselines (no comparison table); the run's own test metrics are shown")
    title = "Results against the baselines" if entries else "Results"
    return Slide("results", title, 2.5, content, notes, missing)


def confusion_figure(facts: dict, scratch: Path) -> dict | None:
    path = evaluation_plot(facts, "confusion_matrix")
    if path is None and facts["m"].get("confusion_matrix"):
        path = plot_confusion_matrix(facts["m"]["confusion_matrix"], facts["labels"].names,
                                     scratch / "confusion_matrix.png")
    return figure("Confusion matrix (rows true, columns predicted)", path) if path else None


def classes_slide(facts: dict, scratch: Path) -> Slide:
    m, weak = facts["m"], facts["weakest_class"]
    ordinal = ({"mae": m["mae"], "within_one": m.get("within_one"), "qwk": m.get("qwk")}
               if facts["labels"].ordinal and m.get("mae") is not None else None)
    content = {"rows": facts["per_class"], "weakest": weak["label"] if weak else None, "ordinal": ordinal,
               "figure": confusion_figure(facts, scratch), "split": facts["evaluation"].get("split", "test")}
    notes = []
    lesson = lesson_of(facts, "class")
    if lesson:
        notes.append(lesson.finding)
    confused = facts["most_confused"]
    if confused:
        notes.append(f"The commonest confusion: true {confused['true']} predicted {confused['pred']}, "
                     f"{confused['count']} times ({confused['share']:.0%} of the true {confused['true']}).")
    lesson = lesson_of(facts, "ordinal")
    if lesson:
        notes.append(lesson.finding)
    missing = [] if facts["per_class"] else ["per-class metrics (no confusion matrix recorded)"]
    missing += [] if content["figure"] else ["the confusion matrix"]
    return Slide("classes", "Per class", 2, content, notes, missing)


def errors_slide(facts: dict) -> Slide:
    evaluation = facts["evaluation"]
    explained = [{**e, "shown": highlighted(e, EXPLAINED_CHARS)}
                 for e in explained_errors(evaluation)[:EXPLAINED_SHOWN]]
    errors = [{**r, "excerpt": shortened(r["text"])} for r in confident_errors(evaluation)[:ERRORS_SHOWN]]
    counts = (evaluation.get("errors") or {}).get("n_errors") or {}
    notes, missing = [], []
    if counts and None not in counts.values():
        notes.append("Errors by true class: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + ".")
    if explained:
        notes.append("Word shading is Integrated Gradients attribution: green words pushed towards the predicted "
                     "class, red words against it. Look for negation, sarcasm and mixed verdicts.")
    elif errors:
        notes.append("The model was most sure of these wrong answers; ask whether the label or the model is wrong.")
        missing.append("word highlights (evaluation.json has no explanations)")
    if not errors and not explained:
        missing.append("error examples (no evaluation.json errors: run `sentitune evaluate` on a run with "
                       "predictions)")
    content = {"explained": explained, "errors": errors}
    return Slide("errors", "Where it goes wrong", 2, content, notes, missing)


def inference_text(inference: dict) -> str | None:
    """'132.5 examples/s (batch 64, fp32, test split)' from metrics.json's inference record."""
    if not inference.get("examples_per_s"):
        return None
    how = [f"batch {inference['batch_size']}" if inference.get("batch_size") else None, inference.get("precision"),
           f"{inference['split']} split" if inference.get("split") else None]
    how = [h for h in how if h]
    return f"{rate(inference['examples_per_s'])} examples/s" + (f" ({', '.join(how)})" if how else "")


def speed_slide(facts: dict, entries: list[dict]) -> Slide:
    train, inference = facts["train"], facts["metrics"].get("inference") or {}
    quality = facts["run"].onnx_quality()
    rows = [("training", f"{rate(train['train_examples_per_s'])} examples/s" if train.get("train_examples_per_s")
             else None),
            ("inference", inference_text(inference)), ("machine", facts["hardware"])]
    systems = [{"name": e["name"], "is_model": e["is_model"], "examples_per_s": e["row"].get("examples_per_s"),
                "size": e["row"].get("model_size_mb")} for e in entries if e["row"].get("examples_per_s")]
    backends = [{"name": name, **row} for name, row in (quality.get("backends") or {}).items()]
    content = {"rows": [(k, v) for k, v in rows if v], "systems": systems, "backends": backends, "quality": quality}
    notes, missing = [], []
    if backends:
        notes.append(f"Backends measured on {quality.get('texts')} test texts ({quality.get('cpu', 'this CPU')}): "
                     "accuracy, agreement with the torch model, and texts per second.")
    else:
        missing.append("exported backends (no model/onnx/quality.json: run `sentitune export`)")
    if systems:
        notes.append("Baseline speeds are from the comparison table; the classical baselines are orders of magnitude "
                     "faster, which is the price of the fine-tuned model's accuracy.")
    missing += [] if inference else ["inference throughput (metrics.json has no `inference` record)"]
    return Slide("speed", "Speed", 1, content, notes, missing)


def lesson_of(facts: dict, key: str):
    """The run's lesson `key` (`lessons.lessons`), or None when the facts support none."""
    return next((lesson for lesson in facts["lessons"] if lesson.key == key), None)


def lessons_slide(facts: dict) -> Slide:
    found = facts["lessons"]
    notes = ["Each lesson is computed from the numbers on the earlier slides."] if found else []
    notes += [" ".join(["Also:", lesson.finding, *([lesson.next] if lesson.next else [])])
              for lesson in found[LESSONS_SHOWN:]]
    missing = [] if found else ["lessons (the run records too little to derive any)"]
    return Slide("lessons", "Lessons learned and what to try next", 1, {"lessons": found[:LESSONS_SHOWN]}, notes,
                 missing)


def slides(facts: dict, scratch: Path) -> list[Slide]:
    entries = facts["comparison"]
    deck = [title_slide(facts), data_slide(facts), baselines_slide(facts, entries), training_slide(facts, scratch),
            results_slide(facts, entries, scratch), classes_slide(facts, scratch), errors_slide(facts),
            speed_slide(facts, entries), lessons_slide(facts)]
    if facts.get("recorded_only"):
        for slide in deck[5:7]:
            slide.notes.append("This run has no evaluation.json, so these numbers are the test metrics recorded at the "
                               "end of training (`sentitune evaluate` adds calibration, slices and errors).")
    return deck


# ---------------------------------------------------------------- rendering


def render_presentation(facts: dict, scratch: Path) -> str:
    env = environment(html=True)
    env.filters.update({"rate": rate, "f2": lambda x: "n/a" if x is None else f"{x:.2f}"})
    deck = slides(facts, scratch)
    return env.get_template(TEMPLATE).render(slides=deck, name=facts["name"], dataset=facts["dataset"],
                                             minutes=sum(s.minutes for s in deck))


def write_presentation(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's slide deck (default `RUN/presentation.html`) and return its path. A run not evaluated yet is
    shown from its recorded test metrics, as for the report."""
    run = RunFolder(Path(run_dir)).require()
    facts = run_facts(run)
    with tempfile.TemporaryDirectory(prefix="sentitune-present-") as scratch:
        text = render_presentation(facts, Path(scratch))
    return atomic_write_text(Path(out) if out else run.presentation_html, text)
