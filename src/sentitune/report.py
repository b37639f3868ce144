"""Report stage: one self-contained HTML file (images embedded) and a Markdown twin, built from a run's facts.

The facts are gathered once (`run_facts`) and both renderings, the "lessons learned" sentences and the
model card read from that same dict, so every number shown comes from metrics.json / evaluation.json.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import jinja2
import yaml

from .errors import SentituneError
from .evaluate import evaluate_run, read_json, read_log, read_run_config, weakest_slice
from .io import atomic_write_text
from .plots import plot_baseline_comparison



# ---------------------------------------------------------------- optional inputs


def comparison_entry(row: dict) -> dict:
    """A row of `sentitune.compare`'s table in the report's shape: {name, metrics, examples, mcnemar, is_model, ...}."""
    from .compare import FINE_TUNED

    metrics = {k: row[k] for k in ("n", "accuracy", "accuracy_ci95", "f1", "precision", "recall", "roc_auc") if row.get(k) is not None}
    return {"name": row["name"], "metrics": metrics, "examples": row.get("examples") or {}, "kind": row.get("kind"),
            "mcnemar": row.get("mcnemar_vs_best_baseline"), "examples_per_s": row.get("examples_per_s"),
            "is_model": row.get("kind") == FINE_TUNED}


def read_comparison(source: str | Path | dict | None) -> list[dict]:
    """The rows of a comparison: `comparison.json` (or its folder) written by `sentitune compare`, or its loaded dict."""
    if source is None:
        return []
    if isinstance(source, (str, Path)):
        path = Path(source) / "comparison.json" if Path(source).is_dir() else Path(source)
        if not path.is_file():
            raise SentituneError(f"--comparison {path}: file not found; build it with `sentitune compare RUN BASELINES... --out DIR`.")
        try:
            source = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SentituneError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); rebuild it with `sentitune compare`.") from None
    if not isinstance(source, dict) or not isinstance(source.get("rows"), list):
        raise SentituneError("comparison: expected the table `sentitune compare` writes (a JSON object with 'rows').")
    return [comparison_entry(row) for row in source["rows"]]


def read_study(study_dir: str | Path | None) -> dict | None:
    """A hyperparameter study folder as {dir, best (from best.yaml), plots [paths]}; None when absent."""
    if study_dir is None:
        return None
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise SentituneError(f"--study {study_dir}: folder not found; pass the folder the search wrote (with best.yaml).")
    best_file = study_dir / "best.yaml"
    best = (yaml.safe_load(best_file.read_text()) or {}) if best_file.is_file() else {}
    return {"dir": str(study_dir), "best": best, "plots": sorted((study_dir / "plots").glob("*.png"))}


# ---------------------------------------------------------------- facts


def model_entry(name: str, evaluation: dict, metrics: dict) -> dict:
    """The run itself as a comparison entry."""
    return {"name": name, "metrics": evaluation["metrics"], "examples": metrics.get("examples", {}).get("test") or evaluation.get("examples") or {},
            "mcnemar": None, "kind": "model", "examples_per_s": None, "is_model": True}


def comparison_rows(entries: list[dict], model: dict) -> list[dict]:
    """Model first (with its paired test from the table), then the other entries by accuracy, each flagged
    `comparable` (same example fingerprint as the model)."""
    own = next((e for e in entries if e["is_model"] and e["name"] == model["name"]), None)
    if own:
        model = {**model, "mcnemar": own["mcnemar"], "examples_per_s": own["examples_per_s"]}
    baselines = sorted([e for e in entries if e is not own], key=lambda e: -(e["metrics"].get("accuracy") or 0))
    fingerprint = model["examples"].get("fingerprint")
    return [{**e, "comparable": e is model or (fingerprint is not None and e["examples"].get("fingerprint") == fingerprint)}
            for e in [model, *baselines]]


def find_study(run_dir: Path, config: dict) -> Path | None:
    """A study the run refers to: RUN/study/ or a `study` path in config.yaml."""
    for candidate in (run_dir / "study", config.get("study")):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def run_facts(run_dir: str | Path, comparison=None, study_dir: str | Path | None = None) -> dict:
    """Everything the report and model card show, from the run folder (evaluating it first if needed)."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").is_file():
        raise SentituneError(f"{run_dir}: no metrics.json; pass a run folder made by sentitune train.")
    config, metrics = read_run_config(run_dir), read_json(run_dir / "metrics.json")
    evaluation = read_json(run_dir / "evaluation.json") or evaluate_run(run_dir)
    name = config.get("name") or run_dir.name
    if comparison is None and (run_dir / "comparison" / "comparison.json").is_file():
        comparison = run_dir / "comparison"
    model = model_entry(name, evaluation, metrics)
    study = read_study(study_dir or find_study(run_dir, config))
    return {
        "run_dir": run_dir, "name": name, "config": config, "metrics": metrics, "evaluation": evaluation,
        "train": metrics.get("train", {}), "data": metrics.get("data", {}), "log": read_log(run_dir),
        "comparison": comparison_rows(read_comparison(comparison), model) if comparison is not None else [],
        "study": study,
    }


# ---------------------------------------------------------------- lessons learned


def points(a: float, b: float) -> str:
    """A difference of two rates in percentage points, signed."""
    return f"{100 * (a - b):+.1f} points"


def intervals_overlap(a: dict, b: dict) -> bool:
    """Whether two slice rows' 95% accuracy intervals overlap (then a gap between them is not conclusive)."""
    return a["accuracy_ci95"][0] <= b["accuracy_ci95"][1] and b["accuracy_ci95"][0] <= a["accuracy_ci95"][1]


def gap_sentence(subject: str, a: dict, b: dict) -> str:
    """'<subject>: accuracy A (n) vs B (n), +x points; conclusive or not.' for two slice rows."""
    verdict = "the 95% intervals overlap, so the gap is within noise" if intervals_overlap(a, b) else "the 95% intervals do not overlap"
    return (f"{subject}: accuracy {a['accuracy']:.3f} on {a['n']} reviews {a['group']} vs {b['accuracy']:.3f} on {b['n']} "
            f"{b['group']} ({points(a['accuracy'], b['accuracy'])}); {verdict}.")


def baseline_lesson(rows: list[dict]) -> str | None:
    """How far the model is from the best baseline scored on the same examples."""
    model = rows[0] if rows else None
    same = [r for r in rows[1:] if r["comparable"] and r["metrics"].get("accuracy") is not None]
    if not same:
        return "No baseline was scored on the same test examples, so the comparison is only indicative." if len(rows) > 1 else None
    best = max(same, key=lambda r: r["metrics"]["accuracy"])
    acc, base = model["metrics"]["accuracy"], best["metrics"]["accuracy"]
    word = "above" if acc > base else "below"
    sentence = (f"The fine-tuned model's test accuracy {acc:.3f} is {abs(100 * (acc - base)):.1f} points {word} the best baseline "
                f"on the same {model['metrics'].get('n', '')} examples, {best['name']} ({base:.3f})")
    p_value = (model.get("mcnemar") or {}).get("p_value")
    sentence += f" (McNemar p = {p_value:.2g})." if p_value is not None else "."
    skipped = [r["name"] for r in rows[1:] if not r["comparable"]]
    if skipped:
        sentence += f" Not compared, because they were scored on other examples: {', '.join(skipped)}."
    return sentence


def calibration_lesson(evaluation: dict) -> str:
    """Whether temperature scaling was needed, from the ECE before and after."""
    ece = evaluation["metrics"]["ece"]
    t = evaluation.get("temperature")
    if not t:
        return f"Expected calibration error is {ece:.3f}; no validation predictions were available to fit a temperature."
    after = t["metrics_after"]["ece"]
    direction = "over-confident (T > 1 softens it)" if t["value"] > 1 else "under-confident (T < 1 sharpens it)"
    needed = "worth applying" if after < ece - 0.005 else "not needed: it barely changes the calibration"
    return (f"Calibration: ECE {ece:.3f} before and {after:.3f} after temperature scaling (T = {t['value']:.2f}, fitted on "
            f"{t['n_fit']} validation reviews); the raw model is {direction}, and scaling is {needed}. "
            f"Log loss goes from {t['metrics_before']['log_loss']:.3f} to {t['metrics_after']['log_loss']:.3f}; accuracy is unchanged by construction.")


def rating_lesson(rows: list[dict]) -> str | None:
    """Are the borderline ratings (4 and 7) harder than the extreme ones (1 and 10)?"""
    by = {r["group"]: r for r in rows}
    border, extreme = [by[g] for g in ("4", "7") if g in by], [by[g] for g in ("1", "10") if g in by]
    if not border or not extreme:
        return None
    pooled = lambda rs, group: {"group": group, "n": sum(r["n"] for r in rs), "accuracy": sum(r["accuracy"] * r["n"] for r in rs) / sum(r["n"] for r in rs),
                                "accuracy_ci95": [min(r["accuracy_ci95"][0] for r in rs), max(r["accuracy_ci95"][1] for r in rs)]}
    b, e = pooled(border, "4- and 7-star"), pooled(extreme, "1- and 10-star")
    verdict = "Yes" if b["accuracy"] < e["accuracy"] else "No"
    return f"Are 4s and 7s the hardest? {verdict}: accuracy {b['accuracy']:.3f} on {b['n']} 4- and 7-star reviews vs {e['accuracy']:.3f} on {e['n']} 1- and 10-star ones ({points(b['accuracy'], e['accuracy'])})."


def training_lesson(train: dict, log: list[dict]) -> str | None:
    """Where validation F1 peaked relative to the end of training."""
    evals = [r for r in log if r.get("eval_f1") is not None]
    if not evals:
        return None
    best = max(evals, key=lambda r: r["eval_f1"])
    last_step = train.get("steps") or max(r.get("step", 0) for r in log)
    if best["step"] >= last_step:
        return f"Validation F1 was still rising at the last evaluation (step {best['step']}, F1 {best['eval_f1']:.3f}): more steps would probably help."
    return f"Validation F1 peaked at step {best['step']} of {last_step} (F1 {best['eval_f1']:.3f}); the steps after it did not improve it."


def study_lesson(study: dict | None) -> str | None:
    """What the hyperparameter search found."""
    if not study or not study["best"]:
        return None
    best = study["best"]
    params = best.get("params", best)
    shown = ", ".join(f"{k} = {v}" for k, v in params.items() if not isinstance(v, (dict, list)))
    value = best.get("value")
    return f"The hyperparameter search's best trial used {shown}" + (f" (objective {value:.4f})." if isinstance(value, (int, float)) else ".")


def lessons_learned(facts: dict) -> list[str]:
    """One sentence per fact of the run: baseline gap, weakest slice, calibration, truncation, ratings, negation, training, search."""
    evaluation, slice_tables = facts["evaluation"], facts["evaluation"]["slices"]
    lessons = [baseline_lesson(facts["comparison"])]
    weakest = weakest_slice(slice_tables)
    if weakest:
        lessons.append(f"The weakest slice is {weakest['slice']} = {weakest['group']}: accuracy {weakest['accuracy']:.3f} on {weakest['n']} reviews, "
                       f"{points(weakest['accuracy'], evaluation['metrics']['accuracy'])} from the overall {evaluation['metrics']['accuracy']:.3f}.")
    lessons.append(calibration_lesson(evaluation))
    if len(slice_tables.get("truncation", [])) == 2:
        kept, cut = slice_tables["truncation"]
        share = cut["n"] / (cut["n"] + kept["n"])
        lessons.append(gap_sentence(f"Truncation to {evaluation['max_length']} tokens ({100 * share:.0f}% of test reviews are cut)", cut, kept))
    lessons.append(rating_lesson(slice_tables.get("rating", [])))
    if len(slice_tables.get("negation", [])) == 2:
        without, with_ = slice_tables["negation"]
        lessons.append(gap_sentence("Negation words", with_, without))
    errors = evaluation["errors"]
    lessons.append(f"Errors split into {errors['n_false_positives']} false positives and {errors['n_false_negatives']} false negatives.")
    lessons += [training_lesson(facts["train"], facts["log"]), study_lesson(facts["study"])]
    return [s for s in lessons if s]


# ---------------------------------------------------------------- rendering


def data_uri(path: Path) -> str:
    """A PNG as a base64 data URI, so the HTML needs no files beside it."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


FIGURES = [
    ("loss", "Training and validation loss"), ("f1", "Validation F1 and accuracy"), ("learning_rate", "Learning rate"),
    ("confusion_matrix", "Confusion matrix"), ("roc_pr", "ROC and precision-recall curves"), ("reliability", "Reliability diagram"),
    ("accuracy_by_length", "Accuracy by review length"), ("accuracy_by_rating", "Accuracy by star rating"),
    ("accuracy_by_truncation", "Accuracy by truncation"), ("accuracy_by_negation", "Accuracy by negation"),
]


def figures(facts: dict) -> list[dict]:
    """[{title, path}] of the run's plots that exist, then the comparison chart, then the study's plots."""
    run_dir = facts["run_dir"]
    made = facts["evaluation"].get("plots", {})
    out = [{"title": title, "path": run_dir / made[key]} for key, title in FIGURES if key in made and (run_dir / made[key]).is_file()]
    if facts["comparison"]:
        chart = run_dir / "comparison" / "comparison.png"
        if not chart.is_file():
            chart = plot_baseline_comparison(facts["comparison"], run_dir / "plots" / "comparison.png")
        if chart:
            out.append({"title": "Model vs baselines", "path": chart})
    for path in (facts["study"] or {}).get("plots", []):
        out.append({"title": f"Hyperparameter search: {path.stem.replace('_', ' ')}", "path": path})
    return out


def hardware_text(hardware) -> str:
    """Hardware as one line, whatever form train.py recorded it in."""
    if isinstance(hardware, dict):
        parts = [hardware.get("gpu"), hardware.get("processor"), f"{hardware['cpu_threads']} CPU threads" if hardware.get("cpu_threads") else None,
                 f"torch {hardware['torch']}" if hardware.get("torch") else None]
        return ", ".join(p for p in parts if p) or json.dumps(hardware)
    return str(hardware or "unknown")


def environment(templates: str = "templates") -> jinja2.Environment:
    """Jinja environment over the package's templates, with number filters."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("sentitune", templates), autoescape=jinja2.select_autoescape(["html"]),
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["f3"] = lambda x: "n/a" if x is None else f"{x:.3f}"
    env.filters["f4"] = lambda x: "n/a" if x is None else f"{x:.4f}"
    env.filters["ci"] = lambda c: "n/a" if not c else f"[{c[0]:.3f}, {c[1]:.3f}]"
    env.filters["pvalue"] = lambda m: "" if not m or m.get("p_value") is None else f"{m['p_value']:.2g}"
    env.filters["duration"] = lambda s: "n/a" if s is None else (f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s")
    return env


def render(facts: dict, template: str, image_src) -> str:
    """Render one report template; `image_src(path)` decides how images are referenced (data URI or relative link)."""
    env = environment()
    context = {**facts, "lessons": lessons_learned(facts), "hardware": hardware_text(facts["train"].get("hardware")),
               "figures": [{**f, "src": image_src(f["path"])} for f in figures(facts)],
               "config_yaml": yaml.safe_dump(facts["config"], sort_keys=False)}
    return env.get_template(template).render(**context)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, comparison=None, study_dir: str | Path | None = None) -> Path:
    """Write `report.html` (self-contained) and `report.md` to out_dir (default: the run folder); returns the HTML path.

    `comparison`: a comparison.json path/folder or loaded entries (default: RUN/comparison.json when present).
    `study_dir`: a hyperparameter study folder with best.yaml and plots/ (default: RUN/study or config's `study`).
    The run is evaluated first when it has no evaluation.json yet.
    """
    facts = run_facts(run_dir, comparison, study_dir)
    out_dir = Path(out_dir) if out_dir else facts["run_dir"]
    out_dir.mkdir(parents=True, exist_ok=True)
    html = render(facts, "report.html.j2", data_uri)
    markdown = render(facts, "report.md.j2", lambda p: Path(os.path.relpath(Path(p).resolve(), out_dir.resolve())).as_posix())
    atomic_write_text(out_dir / "report.md", markdown)
    return atomic_write_text(out_dir / "report.html", html)
