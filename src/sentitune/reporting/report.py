"""Report stage: one self-contained HTML file (images embedded) and a Markdown twin, rendered from `facts.run_facts`.

Every number shown comes from the run's metrics and evaluation, through the same facts the deck and the model card
render; the "lessons learned" are the report's sentences of `lessons.lessons`. The most confident errors that
`sentitune evaluate` explained show their words coloured by attribution (the colours of `inference.explain`). The
HTML environment escapes every value (texts and class names come from the data and must never become markup); the
Markdown escapes pipes inside table cells.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..core.io import atomic_write_text
from ..evaluation.plots import plot_batch_sweep, plot_class_shares, plot_comparison
from .facts import evaluation_plot, explained_errors, run_facts
from .formats import colour_shade, data_uri, environment, highlighted

CLASS_SHARES, COMPARISON_CHART = "class_shares.png", "comparison.png"  # figures drawn at report time
BATCH_SWEEP_CHART = "batch_sweep.png"


def lessons_learned(facts: dict) -> list[str]:
    """The run's lessons (`lessons.lessons`, in `facts`) as the report states them."""
    return [lesson.sentence for lesson in facts["lessons"]]


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
    made = facts["evaluation"].get("plots") or {}
    order = [k for k in FIGURES if k in made] + [k for k in made if k not in FIGURES]
    return [{"title": figure_title(k), "path": path} for k in order if (path := evaluation_plot(facts, k))]


def report_figures(facts: dict) -> list[dict]:
    """Figures drawn from the facts themselves: class shares when train and test differ, the comparison chart."""
    plots_dir, out = facts["run"].plots_dir, []
    if facts["shares_differ"]:
        out.append({"title": "Class shares, train vs test", "path": plot_class_shares(facts["class_shares"],
                                                                                       plots_dir / CLASS_SHARES)})
    if facts["batch_sweep"]:
        out.append({"title": "Batch sizes measured (--batch-size auto)",
                    "path": plot_batch_sweep(facts["batch_sweep"]["sweeps"], plots_dir / BATCH_SWEEP_CHART)})
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


# ---------------------------------------------------------------- rendering


def explained(evaluation: dict) -> list[dict]:
    """The errors `sentitune evaluate` explained, most confident first, the whole text coloured word by word and the
    five strongest words under `shown`."""
    return [{**e, "shown": highlighted(e, shade=colour_shade, top=5)} for e in explained_errors(evaluation)]


def render(facts: dict, template: str, image_src) -> str:
    """Render one report template; `image_src(path)` decides how images are referenced (data URI or relative link).
    Templates named *.html.j2 are rendered with every value HTML-escaped."""
    shown = facts["figures"] if "figures" in facts else figures(facts)
    context = {**facts, "lessons": lessons_learned(facts), "explained": explained(facts["evaluation"]),
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
    A run not evaluated yet is reported from its recorded test metrics; evaluate it first for the rest."""
    facts = run_facts(run_dir, comparison, study_dir)
    facts["figures"] = figures(facts)
    run = facts["run"]
    html_path, md_path = run.report_html, run.report_md
    if out_dir is not None:
        html_path, md_path = Path(out_dir) / html_path.name, Path(out_dir) / md_path.name
    atomic_write_text(md_path, render(facts, "report.md.j2", relative_link(md_path.parent)))
    return atomic_write_text(html_path, render(facts, "report.html.j2", data_uri))
