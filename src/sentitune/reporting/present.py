"""Presentation: a self-contained HTML slide deck of one run (`RUN/presentation.html`) for a 15-minute walkthrough.

Nine slides: title; task and data; baselines; training; results against the baselines; per-class metrics; errors;
speed; lessons and what to try next. Each has speaker notes (key `s` shows them). Every number comes from the run,
through `facts.run_facts` and `RunFolder` reads; a piece the run lacks is left out and the slide's notes say so.
The run's plots and comparison chart are embedded as data URIs (figures a run lacks are drawn into a scratch folder,
never into the run), CSS and JavaScript are inline, and printing gives one slide per page. The template escapes
every value: texts, class names and run names come from the data and must never become markup.
"""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from ..core.errors import SentituneError
from ..core.io import atomic_write_text
from ..evaluation.plots import plot_comparison, plot_confusion_matrix, training_plots
from ..run.folder import RunFolder
from .facts import (
    FILTERS,
    FINE_TUNED,
    SHARE_TOLERANCE,
    comparison_entry,
    environment,
    metric_label,
    p_value,
    ranked,
    run_facts,
)

TEMPLATE = "presentation.html.j2"
ERRORS_SHOWN, EXPLAINED_SHOWN, LESSONS_SHOWN = 4, 3, 5
EXCERPT_CHARS, EXPLAINED_CHARS = 240, 300
SIGNIFICANCE = 0.05
CALIBRATION_GAIN = 0.005  # an ECE drop below this is not worth shipping a temperature for
TRUNCATION_WORTH = 0.05  # a share of cut test texts worth a lesson
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


def recorded_evaluation(run: RunFolder) -> dict:
    """An evaluation built from metrics.json's test metrics, for runs kept without predictions or evaluation.json."""
    recorded = run.metrics()
    test = recorded.get("test")
    if not test:
        raise SentituneError(f"{run.path}: no test metrics in metrics.json and no predictions to evaluate; "
                             "train the run first (sentitune train).")
    return {"split": "test", "n": test.get("n"), "labels": run.labels().to_dict(), "metrics": test, "errors": {},
            "slices": {}, "plots": {}, "examples": (recorded.get("examples") or {}).get("test") or {}}


def deck_facts(run: RunFolder) -> dict:
    """The report's facts; a run with neither evaluation.json nor predictions gets them from its recorded metrics."""
    if run.evaluation() or run.has_predictions():
        return run_facts(run)
    facts = run_facts(run, evaluation=recorded_evaluation(run))
    return {**facts, "recorded_only": True}


def image_uri(path: Path) -> str:
    """A PNG as a base64 data URI, so the deck needs no files beside it."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def figure(title: str, path: Path) -> dict:
    return {"title": title, "src": image_uri(path)}


def evaluation_plot(facts: dict, key: str) -> Path | None:
    """One of the evaluation's plots, if it was made and is still there."""
    made = (facts["evaluation"].get("plots") or {}).get(key)
    path = facts["run_dir"] / made if made else None
    return path if path is not None and path.is_file() else None


def run_date(run: RunFolder) -> str:
    """When training ended, as the date metrics.json was last written."""
    return datetime.fromtimestamp(run.metrics_path.stat().st_mtime).date().isoformat()


def table_entries(facts: dict) -> list[dict]:
    """The comparison table's rows with the values exactly as the table has them: the run's own first, then the
    others best first; each flagged `is_model` and `comparable` (scored on the same test examples as the run)."""
    rows = facts["comparison_table"].get("rows") or []
    names = {facts["name"], facts["run"].name}
    own = next((r for r in rows if r.get("name") in names and r.get("kind", FINE_TUNED) == FINE_TUNED), None)
    entries = [{**comparison_entry(r, r is own), "row": r} for r in rows]
    model = [e for e in entries if e["is_model"]]
    ordered = model + ranked([e for e in entries if not e["is_model"]], facts["primary"])
    fingerprint = model[0]["examples"].get("fingerprint") if model else None
    return [{**e, "comparable": e["is_model"] or (fingerprint is not None
                                                   and e["examples"].get("fingerprint") == fingerprint)}
            for e in ordered]


def significance_test(model: dict, primary: str) -> tuple[str, dict] | None:
    """The paired test behind the primary metric: the bootstrap on macro F1 for a macro metric, else McNemar."""
    tests = [("paired bootstrap on macro F1", model.get("bootstrap")), ("McNemar on accuracy", model.get("mcnemar"))]
    if primary == "accuracy":
        tests.reverse()
    return next(((name, t) for name, t in tests if (t or {}).get("p_value") is not None), None)


def best_comparable(entries: list[dict], primary: str, best_name: str | None) -> dict | None:
    same = [e for e in entries[1:] if e["comparable"] and e["metrics"].get(primary) is not None]
    if not same:
        return None
    return next((e for e in same if e["name"] == best_name), None) or ranked(same, primary)[0]


def lowest_recall(facts: dict) -> dict | None:
    rows = facts["m"].get("per_class") or []
    return min(rows, key=lambda r: r["recall"]) if rows else None


def selection_column(facts: dict) -> str | None:
    """The logged validation metric that picked the checkpoint."""
    metric = facts["train"].get("selection_metric")
    candidates = ([f"eval_{metric}"] if metric else []) + ["eval_f1", "eval_f1_macro", "eval_accuracy"]
    return next((c for c in candidates if any(r.get(c) is not None for r in facts["log"])), None)


def selection_peak(facts: dict) -> dict | None:
    """{metric, step, value, last_step} of the validation selection metric's best evaluation."""
    column = selection_column(facts)
    if column is None:
        return None
    evals = [r for r in facts["log"] if r.get(column) is not None and "step" in r]
    best = max(evals, key=lambda r: r[column])
    last = facts["train"].get("steps") or max(r.get("step", 0) for r in facts["log"])
    return {"metric": metric_label(column.removeprefix("eval_"), facts["labels"]), "step": best["step"],
            "value": best[column], "last_step": last, "last_eval": max(r["step"] for r in evals)}


def truncation(facts: dict) -> dict | None:
    """{share, cut, kept} of the evaluated texts longer than max_length, from the truncation slice."""
    rows = (facts["evaluation"].get("slices") or {}).get("truncation") or []
    if len(rows) != 2:
        return None
    kept, cut = rows
    return {"share": cut["n"] / max(cut["n"] + kept["n"], 1), "cut": cut, "kept": kept}


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


def explanations(evaluation: dict) -> list[dict]:
    """The confident errors that `sentitune evaluate` explained (`words`: [{word, start, end, score}] on the error
    rows), most confident first."""
    return [e for e in confident_errors(evaluation) if isinstance(e.get("words"), list)
            and any(isinstance(w, dict) and isinstance(w.get("score"), (int, float)) for w in e["words"])]


# ---------------------------------------------------------------- texts


def shortened(text: str, chars: int = EXCERPT_CHARS) -> str:
    """The start and end of a long text joined by an ellipsis."""
    text = " ".join(str(text).split())
    if len(text) <= chars:
        return text
    head = chars * 2 // 3
    return f"{text[:head].rstrip()} … {text[-(chars - head):].lstrip()}"


def scored_words(item: dict) -> list[dict]:
    """The item's words with a usable character span and numeric score, in text order."""
    text = str(item["text"])
    words = [w for w in item["words"] if isinstance(w, dict) and isinstance(w.get("score"), (int, float))
             and isinstance(w.get("start"), int) and isinstance(w.get("end"), int)
             and 0 <= w["start"] < w["end"] <= len(text)]
    return sorted(words, key=lambda w: w["start"])


def segment(text: str, score: float | None, scale: float) -> dict:
    weight = 0.0 if score is None else min(abs(score) / scale, 1.0)
    sign = None if score is None or weight < 0.05 else ("for" if score > 0 else "against")
    return {"text": text, "sign": sign, "weight": weight}


def highlighted(item: dict, chars: int = EXPLAINED_CHARS) -> dict:
    """{segments, top, cut_before, cut_after}: a window of the text around its strongest word, each word a segment
    shaded by its score (`for` or `against` the predicted class), and the three strongest words."""
    text, words = str(item["text"]), scored_words(item)
    if not words:  # no usable spans: the words alone, in the given order
        listed = [w for w in item["words"] if isinstance(w, dict) and isinstance(w.get("score"), (int, float))]
        scale = max(abs(w["score"]) for w in listed) or 1.0
        segments = [segment(f"{w.get('word', '')} ", w["score"], scale) for w in listed[:chars // 6]]
        return {"segments": segments, "top": strongest(listed), "cut_before": False,
                "cut_after": len(listed) > chars // 6}
    scale = max(abs(w["score"]) for w in words) or 1.0
    peak = max(words, key=lambda w: abs(w["score"]))
    lo = max(0, min(peak["start"] - chars // 3, len(text) - chars))
    hi = min(len(text), lo + chars)
    shown = [w for w in words if w["start"] >= lo and w["end"] <= hi]
    lo, hi = (shown[0]["start"], shown[-1]["end"]) if shown else (lo, hi)
    segments, at = [], lo
    for w in shown:
        if w["start"] > at:
            segments.append(segment(text[at:w["start"]], None, scale))
        segments.append(segment(text[w["start"]:w["end"]], w["score"], scale))
        at = w["end"]
    return {"segments": segments, "top": strongest(words), "cut_before": lo > 0, "cut_after": hi < len(text)}


def strongest(words: list[dict], n: int = 3) -> list[dict]:
    top = sorted(words, key=lambda w: -abs(w["score"]))[:n]
    return [{"word": str(w.get("word", "")), "score": float(w["score"])} for w in top]


def points(a: float, b: float) -> str:
    return f"{100 * (a - b):+.1f} points"


def rate(value) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


# ---------------------------------------------------------------- lessons


def margin_lesson(facts: dict, entries: list[dict]) -> dict | None:
    """The run against the best baseline on the same examples, on the primary metric, and whether it is significant."""
    primary = facts["primary"]
    model = entries[0] if entries and entries[0]["is_model"] else None
    best = best_comparable(entries, primary, facts["best_baseline"]) if model else None
    if best is None or model["metrics"].get(primary) is None:
        return None
    value, base = model["metrics"][primary], best["metrics"][primary]
    label = metric_label(primary, facts["labels"])
    test = significance_test(model, primary)
    verdict = "no paired test was recorded"
    significant = None
    if test:
        significant = test[1]["p_value"] < SIGNIFICANCE
        verdict = (f"{'significant' if significant else 'not significant'} at {SIGNIFICANCE:.0%}: "
                   f"{test[0]}, p = {p_value(test[1])}")
    finding = (f"Test {label} {value:.3f} vs {base:.3f} for the best baseline, {best['name']}: "
               f"{points(value, base)}, {verdict}.")
    if value <= base:
        step = (f"{best['name']} is at least as good: check the learning rate and steps, or try a larger model, "
                "before shipping the fine-tuned one.")
    elif significant is False:
        step = "The gap is within noise: score more test examples or train a stronger model to make it conclusive."
    else:
        step = "The fine-tuned model wins; the next gains are in its weakest class and its calibration."
    return {"finding": finding, "next": step}


def class_lesson(facts: dict) -> dict | None:
    """The class with the lowest recall, what it is mistaken for, and how to help it: class weights when it is rare
    in training, a look at its confusions when it is not."""
    weak, confused, m = lowest_recall(facts), facts["most_confused"], facts["m"]
    if weak is None:
        return None
    name = weak["label"]
    finding = f"Weakest class: {name}, recall {weak['recall']:.3f} on {weak['support']:,} test examples"
    finding += f" (macro recall {m['recall_macro']:.3f})" if m.get("recall_macro") is not None else ""
    mistaken = confused["pred"] if confused and confused["true"] == name else None
    if mistaken:
        finding += f"; most often called {mistaken} ({confused['share']:.0%} of them)"
    share = facts["class_shares"].get("train", {}).get(name)
    if share is not None and share >= 1 / facts["labels"].n:
        step = (f"{name} is not rare in training ({share:.1%} of it), so class weights will not help: read its "
                f"errors{' against ' + mistaken if mistaken else ''} for ambiguous labels or a train/test shift.")
    elif facts["config"].get("class_weights"):
        step = f"Class weights are already on: more {name} training examples would help most."
    else:
        step = f"Train with class weights (class_weights: true) or with more {name} examples."
    return {"finding": finding + ".", "next": step}


def calibration_lesson(facts: dict) -> dict | None:
    """ECE before and after temperature scaling, and whether the temperature is worth shipping."""
    ece, t = facts["m"].get("ece"), facts["evaluation"].get("temperature")
    if ece is None:
        return None
    if not t:
        return {"finding": f"Expected calibration error {ece:.3f}; no validation predictions to fit a temperature.",
                "next": "Keep validation predictions so a temperature can be fitted."}
    after = t["metrics_after"]["ece"]
    finding = f"Calibration: ECE {ece:.3f} before and {after:.3f} after temperature scaling (T = {t['value']:.2f})."
    step = ("Ship the fitted temperature with the model: its confidences become trustworthy."
            if after < ece - CALIBRATION_GAIN else "Calibration is already good: no temperature needed.")
    return {"finding": finding, "next": step}


def training_lesson(facts: dict) -> dict | None:
    peak = selection_peak(facts)
    if peak is None:
        return None
    if peak["step"] >= peak["last_eval"]:
        return {"finding": f"Validation {peak['metric']} was still rising at the last evaluation "
                           f"(step {peak['step']}, {peak['value']:.3f}).",
                "next": "Train longer: more steps would probably help."}
    return {"finding": f"Validation {peak['metric']} peaked at step {peak['step']} of {peak['last_step']} "
                       f"({peak['value']:.3f}).",
            "next": f"Fewer steps (about {peak['step']}) or early stopping would give the same model sooner."}


def truncation_lesson(facts: dict) -> dict | None:
    cut = truncation(facts)
    if cut is None or cut["share"] < TRUNCATION_WORTH:
        return None
    limit = facts["max_length"].get("value")
    a, b = cut["cut"]["accuracy"], cut["kept"]["accuracy"]
    head_tail = facts["config"].get("truncation") == "head+tail"
    step = ("Truncation costs nothing here: a shorter max_length would train faster." if a >= b else
            "The cut texts are the weaker ones: try a longer max_length"
            + ("." if head_tail else " or head+tail truncation (keeping the end, where reviews conclude)."))
    return {"finding": f"{cut['share']:.0%} of test texts are longer than {limit} tokens; accuracy on them {a:.3f} "
                       f"vs {b:.3f} on the rest ({points(a, b)}).", "next": step}


def shares_lesson(facts: dict) -> dict | None:
    if not facts["shares_differ"]:
        return None
    train, test = facts["class_shares"]["train"], facts["class_shares"]["test"]
    name = max(train, key=lambda n: abs(train[n] - test.get(n, 0)))
    return {"finding": f"Train and test class mixes differ (largest shift: {name}, {train[name]:.1%} of train vs "
                       f"{test.get(name, 0):.1%} of test).",
            "next": "Judge by macro metrics, which weigh every class alike; accuracy depends on the test mix."}


def ordinal_lesson(facts: dict) -> dict | None:
    m = facts["m"]
    if not facts["labels"].ordinal or m.get("mae") is None or m.get("within_one") is None:
        return None
    return {"finding": f"On the ordered scale the model is off by {m['mae']:.2f} classes on average; "
                       f"{m['within_one']:.1%} of its predictions are within one class.",
            "next": "Most errors are near misses between neighbouring classes: judge it by MAE and QWK too."}


def lessons(facts: dict, entries: list[dict]) -> list[dict]:
    found = [margin_lesson(facts, entries), class_lesson(facts), calibration_lesson(facts), training_lesson(facts),
             truncation_lesson(facts), shares_lesson(facts), ordinal_lesson(facts)]
    return [lesson for lesson in found if lesson]


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
    lengths, cut = text_lengths(facts["run"], facts), truncation(facts)
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
    peak = selection_peak(facts)
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
    lesson = margin_lesson(facts, entries)
    if lesson:
        notes.append(lesson["finding"])
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
    m, weak = facts["m"], lowest_recall(facts)
    ordinal = ({"mae": m["mae"], "within_one": m.get("within_one"), "qwk": m.get("qwk")}
               if facts["labels"].ordinal and m.get("mae") is not None else None)
    content = {"rows": facts["per_class"], "weakest": weak["label"] if weak else None, "ordinal": ordinal,
               "figure": confusion_figure(facts, scratch), "split": facts["evaluation"].get("split", "test")}
    notes = []
    lesson = class_lesson(facts)
    if lesson:
        notes.append(lesson["finding"])
    confused = facts["most_confused"]
    if confused:
        notes.append(f"The commonest confusion: true {confused['true']} predicted {confused['pred']}, "
                     f"{confused['count']} times ({confused['share']:.0%} of the true {confused['true']}).")
    if ordinal:
        notes.append(ordinal_lesson(facts)["finding"])
    missing = [] if facts["per_class"] else ["per-class metrics (no confusion matrix recorded)"]
    missing += [] if content["figure"] else ["the confusion matrix"]
    return Slide("classes", "Per class", 2, content, notes, missing)


def confident_errors(evaluation: dict) -> list[dict]:
    """The most confident errors over every true class, most confident first."""
    confident = (evaluation.get("errors") or {}).get("confident") or {}
    rows = [r for rows in confident.values() for r in rows if r.get("text") is not None]
    return sorted(rows, key=lambda r: -float(r.get("confidence") or 0))


def errors_slide(facts: dict) -> Slide:
    evaluation = facts["evaluation"]
    explained = [{**e, "shown": highlighted(e)} for e in explanations(evaluation)[:EXPLAINED_SHOWN]]
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


def lessons_slide(facts: dict, entries: list[dict]) -> Slide:
    found = lessons(facts, entries)
    notes = ["Each lesson is computed from the numbers on the earlier slides."] if found else []
    notes += [f"Also: {lesson['finding']} {lesson['next']}" for lesson in found[LESSONS_SHOWN:]]
    missing = [] if found else ["lessons (the run records too little to derive any)"]
    return Slide("lessons", "Lessons learned and what to try next", 1, {"lessons": found[:LESSONS_SHOWN]}, notes,
                 missing)


def slides(facts: dict, scratch: Path) -> list[Slide]:
    entries = table_entries(facts)
    deck = [title_slide(facts), data_slide(facts), baselines_slide(facts, entries), training_slide(facts, scratch),
            results_slide(facts, entries, scratch), classes_slide(facts, scratch), errors_slide(facts),
            speed_slide(facts, entries), lessons_slide(facts, entries)]
    if facts.get("recorded_only"):
        for slide in deck[5:7]:
            slide.notes.append("This run folder keeps no predictions or evaluation.json, so these numbers are the "
                               "test metrics recorded at the end of training.")
    return deck


# ---------------------------------------------------------------- rendering


def render_presentation(facts: dict, scratch: Path) -> str:
    env = environment(html=True)
    env.filters.update({"rate": rate, "f2": lambda x: "n/a" if x is None else f"{x:.2f}"})
    deck = slides(facts, scratch)
    return env.get_template(TEMPLATE).render(slides=deck, name=facts["name"], dataset=facts["dataset"],
                                             minutes=sum(s.minutes for s in deck))


def write_presentation(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's slide deck (default `RUN/presentation.html`) and return its path. The run is evaluated
    first when it has predictions but no evaluation yet, as for the report."""
    run = RunFolder(Path(run_dir)).require()
    facts = deck_facts(run)
    with tempfile.TemporaryDirectory(prefix="sentitune-present-") as scratch:
        text = render_presentation(facts, Path(scratch))
    return atomic_write_text(Path(out) if out else run.presentation_html, text)
