"""Lessons learned: what a run's facts teach, derived once (by `facts.run_facts`) for every renderer.

Each lesson is computed once from the facts (the numbers, the verdicts, the next step) and said in two registers:
`sentence`, the report's statement with its evidence and caveats, and `finding` with `next`, a slide's short
finding and the step it suggests. Most actionable first: the gap to the baselines, the weakest class, calibration,
training length, truncation, the class mix and the ordinal scale, then the slices, the errors and the search.
"""

from __future__ import annotations

from dataclasses import dataclass

from .formats import p_value, points

SIGNIFICANCE = 0.05
CALIBRATION_GAIN = 0.005  # an ECE drop below this is not worth shipping a temperature for
TRUNCATION_WORTH = 0.05  # a share of cut test texts worth a lesson


@dataclass(frozen=True)
class Lesson:
    key: str
    sentence: str  # the report's statement
    finding: str  # a slide's short finding
    next: str | None = None  # what to try next, on a slide


def plain(key: str, sentence: str, next_step: str | None = None) -> Lesson:
    """A lesson said alike in the report and on a slide."""
    return Lesson(key, sentence, sentence, next_step)


# ---------------------------------------------------------------- against the baselines


def paired_tests_text(model: dict) -> str:
    """' (McNemar p = x; paired bootstrap p = y on macro F1)' from the run's comparison row ('' without tests)."""
    parts = [f"{name} p = {test['p_value']:.2g}{suffix}" for name, test, suffix in (
        ("McNemar", model.get("mcnemar"), ""), ("paired bootstrap", model.get("bootstrap"), " on macro F1"))
        if (test or {}).get("p_value") is not None]
    return f" ({'; '.join(parts)})" if parts else ""


def significance_test(model: dict, primary: str) -> tuple[str, dict] | None:
    """The paired test behind the primary metric: the bootstrap on macro F1 for a macro metric, else McNemar."""
    tests = [("paired bootstrap on macro F1", model.get("bootstrap")), ("McNemar on accuracy", model.get("mcnemar"))]
    if primary == "accuracy":
        tests.reverse()
    return next(((name, t) for name, t in tests if (t or {}).get("p_value") is not None), None)


def baseline_lesson(facts: dict) -> Lesson | None:
    """The run against the best baseline scored on the same examples, on the primary metric, and whether the gap is
    significant; or that no baseline was scored on the same examples."""
    gap, primary = facts["baseline"], facts["primary"]
    if gap is None or len(facts["comparison"]) < 2:
        return None
    model, best = gap["model"], gap["best"]
    if best is None:
        return plain("baseline", "No baseline was scored on the same test examples, so the comparison is only "
                     "indicative.", "Score the baselines on the run's test examples (sentitune baseline, then "
                     "sentitune compare).")
    value, base = model["metrics"].get(primary), best["metrics"][primary]
    if value is None:
        return None
    sentence = (f"The fine-tuned model's test {gap['label']} {value:.3f} is {abs(100 * (value - base)):.1f} points "
                f"{'above' if value > base else 'below'} the best baseline on the same "
                f"{model['metrics'].get('n', '')} examples, {best['name']} ({base:.3f}){paired_tests_text(model)}.")
    if gap["skipped"]:
        sentence += f" Not compared, because they were scored on other examples: {', '.join(gap['skipped'])}."
    test = significance_test(model, primary)
    significant = test[1]["p_value"] < SIGNIFICANCE if test else None
    verdict = (f"{'significant' if significant else 'not significant'} at {SIGNIFICANCE:.0%}: {test[0]}, "
               f"p = {p_value(test[1])}" if test else "no paired test was recorded")
    finding = (f"Test {gap['label']} {value:.3f} vs {base:.3f} for the best baseline, {best['name']}: "
               f"{points(value, base)}, {verdict}.")
    if value <= base:
        step = (f"{best['name']} is at least as good: check the learning rate and steps, or try a larger model, "
                "before shipping the fine-tuned one.")
    elif significant is False:
        step = "The gap is within noise: score more test examples or train a stronger model to make it conclusive."
    else:
        step = "The fine-tuned model wins; the next gains are in its weakest class and its calibration."
    return Lesson("baseline", sentence, finding, step)


# ---------------------------------------------------------------- classes, calibration, training


def class_lesson(facts: dict) -> Lesson | None:
    """The class with the lowest recall (three or more classes), what it is mistaken for, and how to help it: class
    weights when it is rare in training, a look at its confusions when it is not."""
    weak, confused, m = facts["weakest_class"], facts["most_confused"], facts["m"]
    if not weak:
        return None
    name, macro = weak["label"], m.get("recall_macro")
    sentence = (f"The weakest class is {name}: recall {weak['recall']:.3f} (F1 {weak['f1']:.3f}) on "
                f"{weak['support']} test {facts['unit']}"
                + (f", against a macro recall of {macro:.3f}." if macro is not None else "."))
    mistaken = confused["pred"] if confused and confused["true"] == name else None
    if mistaken:
        sentence += f" It is most often mistaken for {mistaken} ({confused['count']} times, {confused['share']:.0%})."
    elif confused:
        sentence += (f" The most frequent confusion is {confused['true']} called {confused['pred']} "
                     f"({confused['count']} times, {confused['share']:.0%} of the true {confused['true']}).")
    finding = f"Weakest class: {name}, recall {weak['recall']:.3f} on {weak['support']:,} test examples"
    finding += f" (macro recall {macro:.3f})" if macro is not None else ""
    finding += f"; most often called {mistaken} ({confused['share']:.0%} of them)." if mistaken else "."
    share = facts["class_shares"].get("train", {}).get(name)
    if share is not None and share >= 1 / facts["labels"].n:
        step = (f"{name} is not rare in training ({share:.1%} of it), so class weights will not help: read its "
                f"errors{' against ' + mistaken if mistaken else ''} for ambiguous labels or a train/test shift.")
    elif facts["config"].get("class_weights"):
        step = f"Class weights are already on: more {name} training examples would help most."
    else:
        step = f"Train with class weights (class_weights: true) or with more {name} examples."
    return Lesson("class", sentence, finding, step)


def calibration_lesson(facts: dict) -> Lesson | None:
    """ECE before and after temperature scaling, and whether the temperature is worth shipping."""
    ece, t, unit = facts["m"].get("ece"), facts["evaluation"].get("temperature"), facts["unit"]
    if ece is None:
        return None
    if not t:
        if facts["recorded_only"]:
            return plain("calibration", f"Expected calibration error is {ece:.3f}; the run has not been evaluated, "
                         "so no temperature was fitted.", "Evaluate the run (sentitune evaluate) to fit one.")
        return plain("calibration", f"Expected calibration error is {ece:.3f}; no validation predictions were "
                     "available to fit a temperature.", "Keep validation predictions so a temperature can be fitted.")
    after = t["metrics_after"]["ece"]
    direction = "over-confident (T > 1 softens it)" if t["value"] > 1 else "under-confident (T < 1 sharpens it)"
    worth = after < ece - CALIBRATION_GAIN
    needed = "worth applying" if worth else "not needed: it barely changes the calibration"
    sentence = (f"Calibration: ECE {ece:.3f} before and {after:.3f} after temperature scaling (T = {t['value']:.2f}, "
                f"fitted on {t['n_fit']} validation {unit}); the raw model is {direction}, and scaling is {needed}. "
                f"Log loss goes from {t['metrics_before']['log_loss']:.3f} to {t['metrics_after']['log_loss']:.3f}; "
                "accuracy is unchanged by construction.")
    finding = f"Calibration: ECE {ece:.3f} before and {after:.3f} after temperature scaling (T = {t['value']:.2f})."
    step = ("Ship the fitted temperature with the model: its confidences become trustworthy." if worth
            else "Calibration is already good: no temperature needed.")
    return Lesson("calibration", sentence, finding, step)


def training_lesson(facts: dict) -> Lesson | None:
    """Where the validation selection metric peaked: still rising at the last evaluation, or earlier."""
    peak = facts["selection_peak"]
    if peak is None:
        return None
    name = f"Validation {peak['metric']}"
    if peak["step"] >= peak["last_eval"]:
        said = f"{name} was still rising at the last evaluation (step {peak['step']}, {peak['value']:.3f})"
        return Lesson("training", f"{said}: more steps would probably help.", f"{said}.",
                      "Train longer: more steps would probably help.")
    said = f"{name} peaked at step {peak['step']} of {peak['last_step']} ({peak['value']:.3f})"
    return Lesson("training", f"{said}; the steps after it did not improve it.", f"{said}.",
                  f"Fewer steps (about {peak['step']}) or early stopping would give the same model sooner.")


# ---------------------------------------------------------------- the data


def intervals_overlap(a: dict, b: dict) -> bool:
    """Whether two slice rows' 95% accuracy intervals overlap (then a gap between them is not conclusive)."""
    return a["accuracy_ci95"][0] <= b["accuracy_ci95"][1] and b["accuracy_ci95"][0] <= a["accuracy_ci95"][1]


def gap_sentence(subject: str, a: dict, b: dict, unit: str) -> str:
    """'<subject>: accuracy A (n) vs B (n), +x points; conclusive or not.' for two slice rows."""
    verdict = ("the 95% intervals overlap, so the gap is within noise" if intervals_overlap(a, b)
               else "the 95% intervals do not overlap")
    return (f"{subject}: accuracy {a['accuracy']:.3f} on {a['n']} {unit} {a['group']} vs {b['accuracy']:.3f} on "
            f"{b['n']} {b['group']} ({points(a['accuracy'], b['accuracy'])}); {verdict}.")


def truncation_lesson(facts: dict) -> Lesson | None:
    """How the texts cut at max_length fare against the rest, when enough of them are cut to matter."""
    cut = facts["truncation"]
    if cut is None or cut["share"] < TRUNCATION_WORTH:
        return None
    limit, unit = cut["max_length"] or facts["max_length"].get("value"), facts["unit"]
    a, b = cut["cut"]["accuracy"], cut["kept"]["accuracy"]
    subject = f"Truncation to {limit} tokens ({100 * cut['share']:.0f}% of test {unit} are cut)"
    head_tail = facts["config"].get("truncation") == "head+tail"
    step = ("Truncation costs nothing here: a shorter max_length would train faster." if a >= b else
            "The cut texts are the weaker ones: try a longer max_length"
            + ("." if head_tail else " or head+tail truncation (keeping the end, where reviews conclude)."))
    finding = (f"{cut['share']:.0%} of test texts are longer than {limit} tokens; accuracy on them {a:.3f} vs {b:.3f} "
               f"on the rest ({points(a, b)}).")
    return Lesson("truncation", gap_sentence(subject, cut["cut"], cut["kept"], unit), finding, step)


def shares_lesson(facts: dict) -> Lesson | None:
    """The largest shift in class shares between train and test, when they differ."""
    if not facts["shares_differ"]:
        return None
    train, test = facts["class_shares"]["train"], facts["class_shares"]["test"]
    name = max(train, key=lambda n: abs(train[n] - test.get(n, 0)))
    shift = f"largest shift: {name}, {train[name]:.1%} of train vs {test.get(name, 0):.1%} of test"
    sentence = (f"Class shares differ between train and test ({shift}), so accuracy depends on the test mix; macro "
                "recall and macro F1 weigh every class alike.")
    return Lesson("shares", sentence, f"Train and test class mixes differ ({shift}).",
                  "Judge by macro metrics, which weigh every class alike; accuracy depends on the test mix.")


def ordinal_lesson(facts: dict) -> Lesson | None:
    """How far off the model is on an ordered scale."""
    m = facts["m"]
    if not facts["labels"].ordinal or any(m.get(k) is None for k in ("mae", "within_one", "qwk")):
        return None
    sentence = (f"On the ordered scale the model is off by {m['mae']:.2f} classes on average, {m['within_one']:.1%} of "
                f"its predictions are within one class of the truth, and the quadratic weighted kappa is "
                f"{m['qwk']:.3f}.")
    finding = (f"On the ordered scale the model is off by {m['mae']:.2f} classes on average; {m['within_one']:.1%} of "
               "its predictions are within one class.")
    return Lesson("ordinal", sentence, finding,
                  "Most errors are near misses between neighbouring classes: judge it by MAE and QWK too.")


# ---------------------------------------------------------------- slices, errors, search


def weakest_slice_lesson(facts: dict) -> Lesson | None:
    if not facts["weakest_slices"]:
        return None
    w, overall = facts["weakest_slices"][0], facts["m"]["accuracy"]
    return plain("slice", f"The weakest slice is {w['slice']} = {w['group']}: accuracy {w['accuracy']:.3f} on {w['n']} "
                 f"{facts['unit']}, {points(w['accuracy'], overall)} from the overall {overall:.3f}.")


def pooled(rows: list[dict], group: str) -> dict:
    """Several slice rows as one (accuracy weighted by size, the widest interval bounds)."""
    n = sum(r["n"] for r in rows)
    return {"group": group, "n": n, "accuracy": sum(r["accuracy"] * r["n"] for r in rows) / n,
            "accuracy_ci95": [min(r["accuracy_ci95"][0] for r in rows), max(r["accuracy_ci95"][1] for r in rows)]}


def rating_lesson(facts: dict) -> Lesson | None:
    """Are the borderline ratings (4 and 7) harder than the extreme ones (1 and 10)? (IMDB's rating scale.)"""
    by = {r["group"]: r for r in (facts["evaluation"].get("slices") or {}).get("rating", [])}
    border, extreme = [by[g] for g in ("4", "7") if g in by], [by[g] for g in ("1", "10") if g in by]
    if not border or not extreme:
        return None
    b, e = pooled(border, "4- and 7-star"), pooled(extreme, "1- and 10-star")
    verdict = "Yes" if b["accuracy"] < e["accuracy"] else "No"
    return plain("rating", f"Are 4s and 7s the hardest? {verdict}: accuracy {b['accuracy']:.3f} on {b['n']} 4- and "
                 f"7-star reviews vs {e['accuracy']:.3f} on {e['n']} 1- and 10-star ones "
                 f"({points(b['accuracy'], e['accuracy'])}).")


def negation_lesson(facts: dict) -> Lesson | None:
    rows = (facts["evaluation"].get("slices") or {}).get("negation", [])
    if len(rows) != 2:
        return None
    without, with_ = rows
    return plain("negation", gap_sentence("Negation words", with_, without, facts["unit"]))


def error_lesson(facts: dict) -> Lesson | None:
    """How the errors split: false positives and negatives for two classes, errors per true class above."""
    evaluation, labels, unit = facts["evaluation"], facts["labels"], facts["unit"]
    counts = (evaluation.get("errors") or {}).get("n_errors") or {}
    if not counts or None in counts.values():
        return None
    if labels.binary:
        negative, positive = labels.names
        return plain("errors", f"Errors split into {counts[negative]} false positives ({negative} {unit} called "
                     f"{positive}) and {counts[positive]} false negatives.")
    support = {r["label"]: r["support"] for r in evaluation["metrics"].get("per_class", [])}
    parts = [f"{name} {n} of {support.get(name, '?')}" for name, n in counts.items()]
    return plain("errors", f"Errors by true class: {', '.join(parts)}.")


def study_lesson(facts: dict) -> Lesson | None:
    """What the hyperparameter search found."""
    study = facts["study"]
    if not study or not study["best"]:
        return None
    best = study["best"]
    params = best.get("params", best)
    shown = ", ".join(f"{k} = {v}" for k, v in params.items() if not isinstance(v, (dict, list)))
    value = best.get("value")
    return plain("study", f"The hyperparameter search's best trial used {shown}"
                 + (f" (objective {value:.4f})." if isinstance(value, (int, float)) else "."))


LESSONS = (baseline_lesson, class_lesson, calibration_lesson, training_lesson, truncation_lesson, shares_lesson,
           ordinal_lesson, weakest_slice_lesson, rating_lesson, negation_lesson, error_lesson, study_lesson)


def lessons(facts: dict) -> list[Lesson]:
    """Every lesson the facts support, most actionable first."""
    return [lesson for derive in LESSONS if (lesson := derive(facts))]
