"""Presentation: a self-contained HTML slide deck of one run (`RUN/presentation.html`) for a 15-minute walkthrough.

Ten slides: title; task and data; baselines; training; results against the baselines; per-class metrics; errors;
speed; lessons and what to try next; how to reuse the model. Each has speaker notes (key `s` shows them) that make
the talk itself, about 15 minutes read aloud at 150 words a minute (`video.py` speaks them): each slide's notes go
from its essentials to its details, so a shorter talk keeps each slide's first sentences. Every number comes from the
run, through `facts.run_facts` and `RunFolder` reads; a piece the run lacks is left out and the slide's notes say so.
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
    selection_column,
)
from .formats import FILTERS, data_uri, environment, highlighted, p_value
from .lessons import CALIBRATION_GAIN, SIGNIFICANCE, significance_test

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

# the speaker notes
SLICE_LESSONS = ("rating", "negation", "slice", "truncation")  # said on the errors slide, with their evidence
SAID_BEFORE = ("baseline", "training", *SLICE_LESSONS, "errors")  # lessons the earlier slides' notes say
LESSON_SAID = {"calibration": "Expected calibration error is the gap between the model's confidence and its accuracy, "
                              "averaged over 15 confidence bins; temperature scaling divides the logits by one number "
                              "fitted on validation."}
CLASSES_SAID, CONFUSION_SAID = 5, 3  # the notes read each class's scores, and each confusion row, up to these
LEAN = 0.05  # a class whose recall exceeds its precision by this much is one the model calls too readily
OPENING_WORDS, PUNCTUATION = 8, ".,;:!?\"'()[]"  # an error example's first words are read out; a word's edges
CURVE_ENDS = 5  # training loss is noisy step to step: its start and end are each the mean of this many logged values


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


def listed(items) -> str:
    """'a', 'a and b' or 'a, b and c' (empty items left out)."""
    items = [str(item) for item in items if item]
    return f"{', '.join(items[:-1])} and {items[-1]}" if len(items) > 1 else "".join(items)


def interval_words(ci) -> str:
    """', 95% interval 0.860 to 0.889' as one says it (blank without an interval)."""
    return f", 95% interval {ci[0]:.3f} to {ci[1]:.3f}" if ci else ""


def mean_of(values: list[float]) -> float:
    return sum(values) / len(values)


# ---------------------------------------------------------------- slides


def title_slide(facts: dict) -> Slide:
    labels, dataset = facts["labels"], facts["dataset"]
    task = f"sentiment classification into {labels.n} classes" + (", an ordered scale" if labels.ordinal else "")
    rows = [("task", task), ("dataset", f"{dataset.name} ({facts['source']})"), ("model", facts["model_id"]),
            ("run", facts["name"]), ("date", run_date(facts["run"])), ("machine", facts["hardware"])]
    notes = [f"This is the run {facts['name']}: {facts['model_id']} fine-tuned on {dataset.name} to tell "
             f"{labels.n} classes apart ({', '.join(labels.names)}).",
             f"The texts are {dataset.domain}; the model reads each one and gives it one of the {labels.n} labels"
             + (", which form an ordered scale." if labels.ordinal else "."),
             "The plan: the task and the data, the baselines to beat, training and its curves, the results with their "
             "intervals and significance tests, the classes and the errors with their explanations, speed, the lessons "
             "learned, and how to reuse the model.",
             model_sentence(facts["model_details"]),
             "Every number in this talk is read from the run folder's own files: its metrics, its evaluation, its "
             "comparison table and its training log.",
             "The date is when the run's metrics were written, i.e. when training ended."]
    notes = [note for note in notes if note]
    content = {"heading": f"{dataset.name}: {labels.n}-class sentiment",
               "subheading": f"fine-tuning {facts['model_id']}", "rows": rows}
    return Slide("title", facts["name"], 1, content, notes)


def model_sentence(details: dict) -> str | None:
    """'The saved model is a BertForSequenceClassification: 6 layers, hidden size 384, 12 attention heads.'"""
    what = details.get("architecture") or details.get("model_type")
    parts = [f"{details['layers']} layers" if details.get("layers") else None,
             f"hidden size {details['hidden_size']}" if details.get("hidden_size") else None,
             f"{details['heads']} attention heads" if details.get("heads") else None,
             f"{details['parameters']:,} parameters" if details.get("parameters") else None]
    parts = [part for part in parts if part]
    return f"The saved model is a {what}: {', '.join(parts)}." if what and parts else None


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
    notes = data_notes(facts, splits, lengths)
    missing = [] if splits else ["split sizes (metrics.json has no data facts)"]
    missing += [] if facts["class_shares"] else ["class shares (metrics.json has no per-class counts)"]
    missing += [] if lengths else ["text lengths (no data_stats.json, token counts or length slice)"]
    return Slide("data", "The task and the data", 2, content, notes, missing)


TRUNCATION_SAID = {"head+tail": "A cut text keeps a quarter of its tokens from its start and the rest from its end, "
                                "where a text often sums up.",
                   "head": "A cut text keeps its first tokens.", "tail": "A cut text keeps its last tokens."}


def data_notes(facts: dict, splits: dict, lengths: dict | None) -> list[str]:
    """The data slide's notes: the classes and splits first, then shares, cleaning, lengths and truncation."""
    data, labels, unit = facts["data"], facts["labels"], facts["unit"]
    notes = [f"{labels.n} classes: {', '.join(labels.names)}" + ("; their order matters." if labels.ordinal else ".")]
    raw = {k: v for k, v in (data.get("raw_rows") or {}).items() if isinstance(v, int)}
    if raw:
        notes.append(f"{facts['dataset'].name} has " + listed(f"{v:,} {k}" for k, v in raw.items()) + f" {unit}.")
    if splits:
        notes.append("Split sizes: " + ", ".join(f"{k} {v:,}" for k, v in splits.items()) + ".")
    scored = facts["scored"]
    if scored.get("per_class") and scored.get("n"):
        notes.append(f"The test set is a sample of {scored['n']:,}" + (f" of the {scored['of']:,}" if scored.get("of")
                                                                        else "")
                     + f" test {unit}, {scored['per_class']:,} per class, drawn with seed {scored['seed']}, so every "
                     "run and baseline can score the same ones.")
    group = data.get("validation_grouped_by")
    if group:
        shared = data.get(f"{group}s_in_train_and_validation")
        notes.append(f"Validation {unit} were held out by {group}, so no {group} seen in training flatters the "
                     "validation score" + (f": {shared} {group}s are in both." if shared is not None else "."))
    if facts["shares_differ"]:
        notes.append("Train and test class shares differ: accuracy depends on the test mix, so the macro metrics "
                     "matter more." + (f" {facts['dataset'].caveat}" if facts["dataset"].caveat else ""))
    elif facts["class_shares"].get("train"):
        notes.append("Training class shares: " + ", ".join(f"{k} {v:.1%}" for k, v in
                                                           facts["class_shares"]["train"].items())
                     + ("; the test mix matches, so accuracy is a fair summary." if "test" in facts["class_shares"]
                        else "."))
    for key, said in (("train_duplicates", "duplicate training texts removed"),
                      ("train_test_overlap", "training texts that also occur in test")):
        if data.get(key) is not None:
            notes.append(f"{data[key]} {said}.")
    if data.get("train_test_overlap"):
        dropped = (facts["config"].get("data") or {}).get("drop_test_overlap")
        notes.append("A model can answer those from memory; " + ("they were dropped from training."
                                                                  if dropped else "this run kept them "
                                                                  "(drop_test_overlap is off), so keep that in mind."))
    notes += length_notes(facts, lengths)
    if facts["dataset"].caveat and not facts["shares_differ"]:
        notes.append(facts["dataset"].caveat)
    return notes


def length_notes(facts: dict, lengths: dict | None) -> list[str]:
    """Text lengths in tokens, the token limit, and what truncation keeps."""
    notes, cut = [], facts["truncation"]
    rows = (lengths or {}).get("rows") or []
    row = rows[0] if rows else None
    if row:
        parts = [f"{name} {row[key]:,.0f}" for key, name in (("p50", "median"), ("mean", "mean"),
                                                             ("p90", "90th percentile"), ("max", "longest"))
                 if row.get(key) is not None]
        notes.append(f"Text length of the {row['split']} split, in tokens: {', '.join(parts)}.")
    if facts["max_length"].get("value"):
        notes.append(f"Texts are cut to {facts['max_length']['value']} tokens ({facts['max_length'].get('source')})"
                     + (f"; {cut['share']:.1%} of the test texts are longer." if cut else "."))
        said = TRUNCATION_SAID.get(facts["config"].get("truncation"))
        if said and (cut is None or cut["share"] > 0):
            notes.append(said)
    return notes


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
        n = facts["scored"].get("n")
        notes.append("The fine-tuned model has to beat the best of them by more than the noise of "
                     + (f"{n:,} test {facts['unit']}" if n else "the test set") + " to be worth its extra cost.")
        notes += [f"{row['name']}: {row['what']}" + ("" if row["comparable"] else "; scored on other test examples")
                  + "." for row in others]
    else:
        missing.append("baselines (no comparison table: run `sentitune baseline` and `sentitune compare`)")
    return Slide("baselines", "The baselines to beat", 1, {"rows": others}, notes, missing)


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
    notes = [note for note in (training_setup(train, config), schedule_sentence(config)) if note]
    if train.get("wall_time_s") and train.get("train_examples_per_s"):
        notes.append(f"It took {FILTERS['duration'](train['wall_time_s'])}, {rate(train['train_examples_per_s'])} "
                     "examples per second on this machine.")
    notes += curve_notes(facts, bool(figures))
    if train.get("best_step") is not None:
        notes.append(f"The saved model has the {FILTERS['kept'](train)}.")
    if train.get("resumed_from"):
        notes.append(f"Training was interrupted and resumed from {train['resumed_from']}.")
    if train.get("train_loss") is not None:
        notes.append(f"Mean training loss over the run: {train['train_loss']:.3f}.")
    missing = [] if figures else ["training curves (no plots and no log.jsonl)"]
    missing += [] if train else ["training facts (metrics.json has no `train` record)"]
    return Slide("training", "Training", 1.5, {"rows": rows, "figures": figures}, notes, missing)


def training_setup(train: dict, config: dict) -> str | None:
    """'Training ran 313 steps over 5,000 examples (1 epoch), in batches of 16, at a peak learning rate of 0.0001, in
    bf16.'"""
    if not train.get("steps"):
        return None
    epochs, accumulation = config.get("epochs"), config.get("gradient_accumulation") or 1
    parts = [f"Training ran {train['steps']:,} steps",
             f" over {train['train_samples']:,} examples" if train.get("train_samples") else "",
             f" ({epochs:g} epoch{'' if epochs == 1 else 's'})" if epochs and (config.get("max_steps") or -1) <= 0
             else "",
             f", in batches of {config['batch_size']}" + (f" accumulated {accumulation} times" if accumulation > 1
                                                          else "") if config.get("batch_size") else "",
             f", at a peak learning rate of {config['learning_rate']:g}" if config.get("learning_rate") else "",
             f", in {train['precision']}" if train.get("precision") else ""]
    return "".join(parts) + "."


def schedule_sentence(config: dict) -> str | None:
    """How the learning rate moves over training, and the weight decay."""
    warmup, scheduler, decay = config.get("warmup_ratio"), config.get("scheduler"), config.get("weight_decay")
    if not scheduler:
        return None
    said = (f"The learning rate warms up over the first {warmup:.0%} of the steps, then " if warmup
            else "The learning rate ")
    said += "decays linearly to zero" if scheduler == "linear" else f"follows a {scheduler} schedule"
    return said + (f"; weight decay is {decay:g}." if decay else ".")


def curve_notes(facts: dict, drawn: bool) -> list[str]:
    """What the loss and validation curves show, from log.jsonl: the training loss at its start and end (each a mean
    of CURVE_ENDS logged values), the validation loss, and the selection metric's start, peak and end."""
    log, peak, notes = facts["log"], facts["selection_peak"], []
    losses = [r["loss"] for r in log if isinstance(r.get("loss"), (int, float)) and "step" in r]
    if len(losses) >= 2 * CURVE_ENDS:
        notes.append(("The left chart is the loss. " if drawn else "")
                     + f"Training loss falls from {mean_of(losses[:CURVE_ENDS]):.3f} over the first {CURVE_ENDS} "
                     f"logged steps to {mean_of(losses[-CURVE_ENDS:]):.3f} over the last {CURVE_ENDS}.")
    evals = [r for r in log if isinstance(r.get("eval_loss"), (int, float)) and "step" in r]
    if len(evals) >= 2:
        low = min(evals, key=lambda r: r["eval_loss"])
        notes.append(f"Validation loss, measured {len(evals)} times, goes from {evals[0]['eval_loss']:.3f} at step "
                     f"{evals[0]['step']:,} to {evals[-1]['eval_loss']:.3f} at the end; its lowest is "
                     f"{low['eval_loss']:.3f}, at step {low['step']:,}.")
    column = selection_column(facts["train"], log)
    scores = [r for r in log if r.get(column) is not None and "step" in r] if column else []
    if peak and len(scores) >= 2:
        notes.append(("The right chart is the validation score: " if drawn else "On validation, ")
                     + f"{peak['metric']} starts at {scores[0][column]:.3f} at step {scores[0]['step']:,}, peaks at "
                     f"{peak['value']:.3f} at step {peak['step']:,} and ends at {scores[-1][column]:.3f}.")
    elif peak:
        notes.append(f"Validation {peak['metric']} was best at step {peak['step']} ({peak['value']:.3f}); "
                     f"training ran {peak['last_step']} steps.")
    return notes


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
    notes, missing = result_notes(facts, entries, keys), []
    if not entries:
        missing.append("the comparison with baselines (no comparison table); the run's own test metrics are shown")
    title = "Results against the baselines" if entries else "Results"
    return Slide("results", title, 2, content, notes, missing)


def p_said(test: dict | None) -> str:
    """'p = 0.3' or 'p < 0.0001' (blank without a test)."""
    p = p_value(test)
    return "" if not p else f"p < {p[1:]}" if p.startswith("<") else f"p = {p}"


def significance_verdict(facts: dict) -> str | None:
    """What the paired test behind the primary metric says about the fine-tuned model and the best baseline."""
    gap, primary = facts["baseline"], facts["primary"]
    model, best = (gap or {}).get("model"), (gap or {}).get("best")
    test = significance_test(model, primary) if model and best else None
    value, base = (model["metrics"].get(primary), best["metrics"].get(primary)) if test else (None, None)
    if value is None or base is None:
        return None
    if test[1]["p_value"] >= SIGNIFICANCE:
        return (f"So the honest summary: on these test {facts['unit']} the fine-tuned model and {best['name']} are "
                "tied; the difference is within what chance alone produces.")
    return (f"So the difference is real: the fine-tuned model is {'better' if value > base else 'worse'} than "
            f"{best['name']} beyond chance.")


def result_notes(facts: dict, entries: list[dict], keys: list[str]) -> list[str]:
    """The results slide's notes: the run's primary metric with its interval, the verdict against the best baseline,
    every other system with its interval and paired test, what McNemar's test counted, then how to read the rest."""
    primary, labels, unit = facts["primary"], facts["labels"], facts["unit"]
    label, own = metric_label(primary, labels), entries[0]["metrics"] if entries else facts["m"]
    notes, ci = [], f"{primary}_ci95"
    if own.get(primary) is not None:
        notes.append((f"On {own['n']:,} test {unit}, the" if own.get("n") else "The")
                     + f" fine-tuned model's {label} is {own[primary]:.3f}{interval_words(own.get(ci))}.")
    lesson = lesson_of(facts, "baseline")
    if lesson:
        notes.append(lesson.finding)
    for entry in entries[1:]:  # the interval of the best baseline only: the others' are on the slide
        value, test = entry["metrics"].get(primary), p_said(entry["mcnemar"])
        if value is not None:
            said = interval_words(entry["metrics"].get(ci)) if entry["name"] == facts["best_baseline"] else ""
            notes.append(f"{entry['name']}: {label} {value:.3f}{said}" + (f"; McNemar {test}." if test else "."))
    test, best = (entries[0]["mcnemar"] if entries else None) or {}, (facts["baseline"] or {}).get("best")
    if test.get("a_only") is not None and test.get("b_only") is not None and facts["best_baseline"]:
        notes.append(f"McNemar's test looks only at the {test['a_only'] + test['b_only']:,} {unit} on which the two "
                     f"disagree: the fine-tuned model alone is right on {test['a_only']:,}, {facts['best_baseline']} "
                     f"alone on {test['b_only']:,}.")
    bootstrap = p_said(entries[0]["bootstrap"]) if entries else ""
    if bootstrap:
        notes.append(f"The paired bootstrap on macro F1 gives {bootstrap}.")
    verdict = significance_verdict(facts)
    if verdict:
        notes.append(verdict)
    ours, theirs = own.get(ci), (best or {}).get("metrics", {}).get(ci)
    if ours and theirs:
        overlap = ours[0] <= theirs[1] and theirs[0] <= ours[1]
        notes.append(f"The two 95% intervals {'overlap' if overlap else 'do not overlap'}"
                     + ("; that alone does not settle it, which is what the paired test is for." if overlap else "."))
    if entries:
        notes.append("Intervals are 95%: Wilson for accuracy, percentile bootstrap for the macro metrics. McNemar's "
                     "exact test pairs each system's right and wrong answers with the best baseline's.")
        skipped = [e["name"] for e in entries if not e["comparable"]]
        if skipped:
            notes.append(f"Scored on other test examples, so not directly comparable: {', '.join(skipped)}.")
    validation = (facts["metrics"].get("validation") or {}).get(primary)
    if validation is not None and own.get(primary) is not None:
        notes.append(f"On validation the {label} was {validation:.3f}, against {own[primary]:.3f} on test.")
    others = [k for k in keys if k != primary and own.get(k) is not None]
    if others:
        notes.append("The fine-tuned model's " + listed(f"{metric_label(k, labels)} is {own[k]:.3f}" for k in others)
                     + ".")
    return notes


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
    notes = class_notes(facts, content["figure"] is not None)
    missing = [] if facts["per_class"] else ["per-class metrics (no confusion matrix recorded)"]
    missing += [] if content["figure"] else ["the confusion matrix"]
    return Slide("classes", "Per class", 1.5, content, notes, missing)


def leaning(rows: list[dict], unit: str) -> str | None:
    """Which of two classes the model calls too readily (recall well above precision), in a sentence."""
    if len(rows) != 2:
        return None
    lean = max(rows, key=lambda r: r["recall"] - r["precision"])
    if lean["recall"] - lean["precision"] < LEAN:
        return None
    return (f"The model leans towards {lean['label']}: it finds {lean['recall']:.1%} of the {lean['label']} {unit}, "
            f"but only {lean['precision']:.1%} of its {lean['label']} calls are right.")


def class_notes(facts: dict, drawn: bool) -> list[str]:
    """The per-class slide's notes: the weakest class, each class's scores, the lean and the confusions."""
    rows, unit, m, labels = facts["per_class"], facts["unit"], facts["m"], facts["labels"]
    notes = [lesson.finding for lesson in [lesson_of(facts, "class")] if lesson]
    notes += [f"{r['label']}: precision {r['precision']:.3f}, recall {r['recall']:.3f}, F1 {r['f1']:.3f}, on "
              f"{r['support']:,} test {unit}." for r in rows[:CLASSES_SAID]]
    lean = leaning(rows, unit)
    if lean:
        notes.append(lean)
    if drawn:
        notes.append("In the confusion matrix, rows are the true class and columns the prediction; the diagonal holds "
                     "the right answers.")
    names = facts["confusion"]["names"]
    if len(names) <= CONFUSION_SAID:
        for name, row in zip(names, facts["confusion"]["rows"]):
            total = sum(cell["count"] for cell in row)
            if total:
                notes.append(f"Of the {total:,} true {name} {unit}, the model called "
                             + listed(f"{cell['count']:,} {pred}" for pred, cell in zip(names, row)) + ".")
    confused = facts["most_confused"]
    if confused:
        notes.append(f"The commonest confusion: true {confused['true']} predicted {confused['pred']}, "
                     f"{confused['count']} times ({confused['share']:.0%} of the true {confused['true']}).")
    notes += [lesson.finding for lesson in [lesson_of(facts, "ordinal")] if lesson]
    if labels.binary and m.get("roc_auc") is not None:
        notes.append(f"ROC-AUC, which judges how the probabilities rank the {unit} rather than one threshold, is "
                     f"{m['roc_auc']:.3f}.")
    return notes


def errors_slide(facts: dict) -> Slide:
    evaluation = facts["evaluation"]
    explained = [{**e, "shown": highlighted(e, EXPLAINED_CHARS)}
                 for e in explained_errors(evaluation)[:EXPLAINED_SHOWN]]
    errors = [{**r, "excerpt": shortened(r["text"])} for r in confident_errors(evaluation)[:ERRORS_SHOWN]]
    notes, missing = error_notes(facts, explained, errors), []
    if errors and not explained:
        missing.append("word highlights (evaluation.json has no explanations)")
    if not errors and not explained:
        missing.append("error examples (no evaluation.json errors: run `sentitune evaluate` on a run with "
                       "predictions)")
    content = {"explained": explained, "errors": errors}
    return Slide("errors", "Where it goes wrong", 2.5, content, notes, missing)


def example_sentence(number: int, error: dict) -> str:
    """'Example 1: true negative (rated 1), predicted positive with confidence 0.968; the words that weigh most:
    excellent (+0.65), ... It opens: "The acting is ..."'."""
    rating, confidence = error.get("rating"), error.get("confidence")
    said = (f"Example {number}: true {error['label']}"
            + (f" (rated {rating})" if isinstance(rating, (int, float)) and rating >= 0 else "")
            + f", predicted {error['pred']}"
            + (f" with confidence {confidence:.3f}" if isinstance(confidence, (int, float)) else ""))
    words = [f"{word} ({w['score']:+.2f})" for w in (error.get("shown") or {}).get("top", [])
             if (word := str(w["word"]).strip(PUNCTUATION))]
    said += ("; the words that weigh most: " + listed(words) if words else "") + "."
    opening = " ".join(str(error.get("text") or "").split()[:OPENING_WORDS])
    return said + (f' It opens: "{opening} …"' if opening else "")


def error_notes(facts: dict, explained: list[dict], errors: list[dict]) -> list[str]:
    """The errors slide's notes: how the errors split, how they were explained, each example shown, then the
    slices where the model is weakest, with their evidence."""
    evaluation = facts["evaluation"]
    counts = (evaluation.get("errors") or {}).get("n_errors") or {}
    lesson, notes = lesson_of(facts, "errors"), []
    if lesson:
        notes.append(lesson.finding)
    elif counts and None not in counts.values():
        notes.append("Errors by true class: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + ".")
    method = evaluation.get("explanations") or {}
    if explained:
        notes.append("Word shading is Integrated Gradients attribution: green words pushed towards the predicted "
                     "class, red words against it. Look for negation, sarcasm and mixed verdicts.")
        if method.get("explained") and method.get("method"):
            notes.append(f"{method['explained']} of the most confident errors were explained with "
                         f"{method['method'][:1].lower()}{method['method'][1:]}"
                         + (f", {method['steps']} integration steps." if method.get("steps") else "."))
        notes += [example_sentence(number, error) for number, error in enumerate(explained, 1)]
    elif errors:
        notes.append("The model was most sure of these wrong answers; ask whether the label or the model is wrong.")
        notes += [example_sentence(number, error) for number, error in enumerate(errors, 1)]
    notes += [lesson.finding for key in SLICE_LESSONS if (lesson := lesson_of(facts, key))]
    return notes


def inference_text(inference: dict) -> str | None:
    """'132.5 examples/s (batch 64, fp32, test split)' from metrics.json's inference record."""
    if not inference.get("examples_per_s"):
        return None
    how = [f"batch {inference['batch_size']}" if inference.get("batch_size") else None, inference.get("precision"),
           f"{inference['split']} split" if inference.get("split") else None]
    how = [h for h in how if h]
    return f"{rate(inference['examples_per_s'])} examples/s" + (f" ({', '.join(how)})" if how else "")


def speed_verdict(facts: dict) -> str | None:
    """Whether the fine-tuned model's cost in speed buys accuracy over the best baseline, on the primary metric."""
    gap, primary = facts["baseline"], facts["primary"]
    model, best = (gap or {}).get("model"), (gap or {}).get("best")
    if not model or not best:
        return None
    speeds = [e["row"].get("examples_per_s") for e in (model, best)]
    values = [e["metrics"].get(primary) for e in (model, best)]
    if None in speeds or None in values or speeds[0] >= speeds[1]:
        return None
    if values[0] > values[1]:
        return f"The fine-tuned model is slower than {best['name']} and more accurate: its speed is the price of that."
    return (f"The fine-tuned model is slower than {best['name']} and not more accurate on this test set, so on this "
            f"evidence {best['name']} is the better deal.")


def speed_notes(facts: dict, inference: dict, systems: list[dict], backends: list[dict]) -> list[str]:
    """The speed slide's notes: the run's own throughput, every system's speed and size, the trade-off, backends."""
    train, notes = facts["train"], []
    if train.get("train_examples_per_s"):
        notes.append(f"Training ran at {rate(train['train_examples_per_s'])} examples per second on this machine.")
    if inference_text(inference):
        notes.append(f"Prediction ran at {inference_text(inference)}.")
    if systems:
        systems = [s for s in systems if s["kind"] != "trivial"]
        notes.append("Baseline speeds are from the comparison table, in examples per second: "
                     + ", ".join(f"{s['name']} {rate(s['examples_per_s'])}" for s in systems) + ".")
        sizes = [s for s in systems if s["size"] is not None]
        if sizes:
            notes.append("Their sizes in megabytes: " + ", ".join(f"{s['name']} {rate(s['size'])}" for s in sizes)
                         + ".")
    verdict = speed_verdict(facts)
    if verdict:
        notes.append(verdict)
    if backends:
        quality = facts["run"].onnx_quality()
        notes.append(f"Backends measured on {quality.get('texts')} test texts ({quality.get('cpu', 'this CPU')}): "
                     "accuracy, agreement with the torch model, and texts per second.")
        notes += [f"{b['name']}: " + ", ".join(part for part in (
            f"accuracy {b['accuracy']:.3f}" if b.get("accuracy") is not None else "",
            f"{b['agreement_with_torch']:.1%} agreement with torch" if b.get("agreement_with_torch") is not None
            else "", f"{rate(b['examples_per_s'])} texts per second" if b.get("examples_per_s") else "") if part)
                  + "." for b in backends]
    return notes


def speed_slide(facts: dict, entries: list[dict]) -> Slide:
    train, inference = facts["train"], facts["metrics"].get("inference") or {}
    quality = facts["run"].onnx_quality()
    rows = [("training", f"{rate(train['train_examples_per_s'])} examples/s" if train.get("train_examples_per_s")
             else None),
            ("inference", inference_text(inference)), ("machine", facts["hardware"])]
    systems = [{"name": e["name"], "is_model": e["is_model"], "examples_per_s": e["row"].get("examples_per_s"),
                "size": e["row"].get("model_size_mb"), "kind": e.get("kind")}
               for e in entries if e["row"].get("examples_per_s")]
    backends = [{"name": name, **row} for name, row in (quality.get("backends") or {}).items()]
    content = {"rows": [(k, v) for k, v in rows if v], "systems": systems, "backends": backends, "quality": quality}
    notes, missing = speed_notes(facts, inference, systems, backends), []
    if not backends:
        missing.append("exported backends (no model/onnx/quality.json: run `sentitune export`)")
    missing += [] if inference else ["inference throughput (metrics.json has no `inference` record)"]
    return Slide("speed", "Speed", 1, content, notes, missing)


def lesson_of(facts: dict, key: str):
    """The run's lesson `key` (`lessons.lessons`), or None when the facts support none."""
    return next((lesson for lesson in facts["lessons"] if lesson.key == key), None)


def lessons_slide(facts: dict) -> Slide:
    found = facts["lessons"]
    notes = ["Each lesson is computed from the numbers on the earlier slides."] if found else []
    for lesson in found[:LESSONS_SHOWN]:  # a finding said on an earlier slide: only what to do next
        said = [] if lesson.key in SAID_BEFORE else [lesson.finding]
        notes += [" ".join([*said, *([f"Next: {lesson.next}"] if lesson.next else [])])] if said or lesson.next else []
        notes += [LESSON_SAID[lesson.key]] if lesson.key in LESSON_SAID else []
    for lesson in found[LESSONS_SHOWN:]:  # beyond the slide: each once, with its next step
        said = [] if lesson.key in SAID_BEFORE else [lesson.finding]
        notes += [" ".join(["Also:", *said, *([lesson.next] if lesson.next else [])])] if said or lesson.next else []
    missing = [] if found else ["lessons (the run records too little to derive any)"]
    return Slide("lessons", "Lessons learned and what to try next", 1, {"lessons": found[:LESSONS_SHOWN]}, notes,
                 missing)


def temperature_worth(facts: dict) -> bool:
    """Whether the fitted temperature improves calibration enough to ship (as the calibration lesson judges)."""
    t, ece = facts["evaluation"].get("temperature"), facts["m"].get("ece")
    return bool(t) and ece is not None and t["metrics_after"]["ece"] < ece - CALIBRATION_GAIN


def reuse_slide(facts: dict) -> Slide:
    """Where the model is and the commands that use it: predict, serve, export, and transformers alone."""
    run, labels, dataset = facts["run"], facts["labels"], facts["dataset"]
    folder, card = run.path.name, (run.model_dir / "README.md").is_file()
    limit, truncation = facts["max_length"].get("value"), facts["config"].get("truncation") or "head"
    t = facts["evaluation"].get("temperature")
    rows = [("model", f"{folder}/model" + (", with its model card (README.md)" if card else "")),
            ("labels", ", ".join(f"{i} {name}" for i, name in enumerate(labels.names))),
            ("input", dataset.domain + (f", up to {limit} tokens ({truncation} truncation)" if limit else "")),
            ("temperature", f"{t['value']:.2f}: divide the logits by it" if t and temperature_worth(facts) else None)]
    commands = [(f'sentitune predict {folder} "a text"', "classify texts, cleaned and truncated as in training"),
                (f"sentitune serve {folder}", "POST /predict, POST /explain and a page to try texts"),
                (f"sentitune export {folder} --backend onnx-int8", "ONNX and int8 ONNX for fast CPU inference"),
                (f'pipeline("text-classification", model="{folder}/model")', "transformers alone"),
                (f"sentitune train --config {folder}/config.yaml", "train it again with every setting of this run")]
    notes = ["To reuse the model: it is saved in the run folder's model folder as a standard Hugging Face model"
             + (", beside a model card that records its data, its metrics, its limits and how to load it." if card
                else "."),
             f"From Python, the transformers text-classification pipeline loads that folder and returns one of the "
             f"labels {listed(labels.names)} with its probability.",
             f"The sentitune predict command applies the same text cleaning and {truncation} truncation as training, "
             "which the plain pipeline does not, so its answers are the ones evaluated in this talk.",
             "sentitune serve puts the model behind an HTTP service, with predict and explain endpoints and a page to "
             "try texts in a browser; sentitune export writes ONNX and int8 ONNX copies for fast CPU inference.",
             f"Feed it texts like its training data, {dataset.domain}"
             + (f"; only the first {limit} tokens count, as in training." if limit and truncation == "head"
                else f"; a longer text is cut to {limit} tokens as in training." if limit else "."),
             "To retrain it, the run's config.yaml holds every setting: sentitune train with that config file."]
    if limit:
        notes.insert(5, f"For texts longer than {limit} tokens, sentitune predict with the windows option reads them "
                        "whole, averaging over half-overlapping windows.")
    if t:
        notes.insert(4, f"Divide its logits by the fitted temperature, {t['value']:.2f}, for trustworthy confidences."
                     if temperature_worth(facts) else "Its probabilities can be used as they are: temperature scaling "
                     "barely changed their calibration.")
    missing = [] if run.has_weights() else ["the model's weights (this copy of the run keeps no model/*.safetensors)"]
    content = {"rows": [(k, v) for k, v in rows if v], "commands": commands}
    return Slide("reuse", "Reusing the model", 1.5, content, notes, missing)


def slides(facts: dict, scratch: Path) -> list[Slide]:
    entries = facts["comparison"]
    deck = [title_slide(facts), data_slide(facts), baselines_slide(facts, entries), training_slide(facts, scratch),
            results_slide(facts, entries, scratch), classes_slide(facts, scratch), errors_slide(facts),
            speed_slide(facts, entries), lessons_slide(facts), reuse_slide(facts)]
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
