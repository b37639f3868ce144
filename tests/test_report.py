"""Tests of sentitune.reporting.report (and the facts it renders) on fake runs of two, three and five classes and on the
older run folders kept in docs/runs: numbers match metrics.json, images are embedded, lessons are facts, and
nothing from the data can inject markup into the HTML."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import tiny_bert
from fake_run import TINY_PNG, comparison_table, fake_comparison, make_fake_run
from typer.testing import CliRunner

from sentitune.app.cli import app
from sentitune.evaluation.evaluate import evaluate_run
from sentitune.reporting.facts import run_facts
from sentitune.reporting.report import lessons_learned, write_report
from sentitune.run.folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
OLD_RUNS = ["main-job", "cpu-quick", "cpu-full", "cpu-full-d0"]
HOSTILE = ("<img src=x onerror=alert(1)>", "</script><script>alert(2)</script>", "a|b")
HOSTILE_RUN = "<script>alert(3)<img src=x onerror=alert(4)>"  # a configured name has no '/'
IMG_TAG = re.compile(r'<img src="([^"]+)"')


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A binary fake run, evaluated, with a comparison and a study, reported once for the whole module."""
    root = tmp_path_factory.mktemp("report")
    run = make_fake_run(root)
    evaluate_run(run)
    fake_comparison(run)
    study = root / "study"
    (study / "plots").mkdir(parents=True)
    (study / "plots" / "history.png").write_bytes(TINY_PNG)
    best = {"value": 0.9012, "params": {"learning_rate": 3e-5, "batch_size": 32}}
    (study / "best.yaml").write_text(yaml.safe_dump(best))
    return run, write_report(run, study_dir=study)


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    """{kind: run}: a three-class run (train and test shares differ) and a five-class ordinal one, both evaluated
    and reported with a comparison."""
    root = tmp_path_factory.mktemp("multiclass")
    runs = {kind: make_fake_run(root, name=kind, kind=kind) for kind in ("tweets", "stars")}
    for run in runs.values():
        evaluate_run(run)
        fake_comparison(run)
        write_report(run)
    return runs


def metrics_json(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def headline_value(html: str, md: str, key: str) -> tuple[float, float]:
    """The headline value of metric `key` as the HTML and the Markdown show it."""
    in_html = re.search(rf'<tr data-metric="{key}"[^>]*><td>([^<]+)</td><td class="num value">([0-9.]+)</td>', html)
    assert in_html, key
    section = md.split("## Headline", 1)[1].split("## Results", 1)[0]
    in_md = re.search(rf"^\| \**{re.escape(in_html[1])}\** \| ([0-9.]+) \|", section, re.MULTILINE)
    assert in_md, key
    return float(in_html[2]), float(in_md[1])


def markdown_tables_are_intact(md: str) -> None:
    """Every row of every Markdown table has as many unescaped pipes as its header (no cell broke out)."""
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    assert tables
    for table in tables:
        counts = {len(re.findall(r"(?<!\\)\|", row)) for row in table}
        assert len(counts) == 1, table


def test_report_files_and_numbers(reported):
    run, html_path = reported
    html, md = html_path.read_text(), (run / "report.md").read_text()
    test = metrics_json(run)["test"]
    for text in (html, md):
        for key in ("accuracy", "f1", "f1_macro", "roc_auc", "log_loss", "ece"):
            assert f"{test[key]:.4f}" in text, key
        assert "tfidf-logreg" in text and "no: other examples" in text
        assert "learning_rate" in text and "3e-05" in text  # the study's best params
        assert "x86_64, 2 CPU threads, torch 2.13.0" in text  # the older hardware record
    assert headline_value(html, md, "accuracy") == (pytest.approx(test["accuracy"], abs=5e-5),) * 2
    assert not list(run.glob(".*.tmp-*"))  # atomic writes left nothing behind
    assert "No word attributions of the errors: no model weights in the run's model/ folder." in md
    markdown_tables_are_intact(md)


def test_html_is_self_contained(reported):
    _, html_path = reported
    sources = IMG_TAG.findall(html_path.read_text())
    # 11 evaluation plots (3 training curves, confusion, per-class, ROC/PR, reliability, 4 slices) + comparison + study
    assert len(sources) == 13
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    for src in sources:
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"


def test_markdown_links_resolve(reported):
    run, _ = reported
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (run / "report.md").read_text())
    assert len(links) == 13 and all((run / link).is_file() for link in links)


def test_binary_lessons_are_computed_from_facts(reported):
    run, _ = reported
    facts = run_facts(run)
    lessons = lessons_learned(facts)
    text = " ".join(lessons)
    evaluation = facts["evaluation"]
    assert f"{evaluation['metrics']['ece']:.3f}" in text
    assert f"{evaluation['temperature']['metrics_after']['ece']:.3f}" in text
    assert "weakest slice is rating = 7" in text or "weakest slice is rating = 4" in text
    assert "Are 4s and 7s the hardest? Yes" in text
    model, baseline = facts["comparison"][0], next(r for r in facts["comparison"] if r["name"] == "tfidf-logreg")
    gap = 100 * (model["metrics"]["accuracy"] - baseline["metrics"]["accuracy"])
    assert gap > 0 and f"{gap:.1f} points above the best baseline" in text and "tfidf-logreg" in text
    assert f"McNemar p = {model['mcnemar']['p_value']:.2g}" in text and "Not compared" in text and "vader" in text
    assert any(s.startswith("Truncation to 256 tokens") for s in lessons)
    n_errors = evaluation["errors"]["n_errors"]
    assert f"Errors split into {n_errors['negative']} false positives" in text
    assert "weakest class" not in text  # a class lesson is for three or more classes


def test_three_classes_per_class_shares_and_official_metric(multiclass):
    run = multiclass["tweets"]
    html, md = (run / "report.html").read_text(), (run / "report.md").read_text()
    test = metrics_json(run)["test"]
    assert headline_value(html, md, "recall_macro") == (pytest.approx(test["recall_macro"], abs=5e-5),) * 2
    assert md.index("| **macro recall** |") < md.index("| accuracy |")  # the official metric heads the table
    assert "official metric of TweetEval" in html and "official metric of TweetEval" in md
    weakest = min(test["per_class"], key=lambda r: r["recall"])["label"]
    for row in test["per_class"]:
        name = f"**{row['label']}** (weakest)" if row["label"] == weakest else row["label"]
        assert f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |" in md
    assert "| true \\ predicted | negative | neutral | positive |" in md
    assert f"{test['confusion_matrix'][1][2]} ({100 * test['confusion_matrix_normalized'][1][2]:.1f}%)" in md
    assert "Class shares, train vs test" in html and "Train and test class shares differ" in md
    assert "ROC and precision-recall" not in html and "Precision, recall and F1 per class" in html
    assert "mean absolute error" not in md  # nominal classes: no ordinal metrics
    markdown_tables_are_intact(md)


def test_three_class_lessons_name_the_weakest_class(multiclass):
    facts = run_facts(multiclass["tweets"])
    text = " ".join(lessons_learned(facts))
    weakest = min(facts["m"]["per_class"], key=lambda r: r["recall"])
    assert f"The weakest class is {weakest['label']}: recall {weakest['recall']:.3f}" in text
    assert "Class shares differ between train and test" in text
    gap = 100 * (facts["m"]["recall_macro"] - facts["comparison"][1]["metrics"]["recall_macro"])
    assert f"test macro recall {facts['m']['recall_macro']:.3f} is {abs(gap):.1f} points" in text
    assert "paired bootstrap p = " in text
    support = {row["label"]: row["support"] for row in facts["m"]["per_class"]}
    errors = facts["evaluation"]["errors"]["n_errors"]
    assert "Errors by true class: " + ", ".join(f"{n} {c} of {support[n]}" for n, c in errors.items()) in text


def test_five_class_ordinal_metrics(multiclass):
    run = multiclass["stars"]
    html, md = (run / "report.html").read_text(), (run / "report.md").read_text()
    test = metrics_json(run)["test"]
    for key in ("mae", "qwk"):
        value = re.search(rf'<tr data-metric="{key}"><td>[^<]+</td><td class="num value">([0-9.]+)</td>', html)
        assert value and float(value[1]) == pytest.approx(test[key], abs=5e-5), key
    assert "within one class of the truth" in " ".join(lessons_learned(run_facts(run)))
    assert md.count("| very negative |") >= 2 and "(an ordered scale)" in md
    assert "Train and test class shares differ" not in md  # balanced test: no shift to report
    markdown_tables_are_intact(md)


def test_hostile_text_and_names_are_escaped_in_html(tmp_path):
    run = make_fake_run(tmp_path, name="hostile", kind="tweets", names=HOSTILE, title=HOSTILE_RUN,
                        text_prefix=" ".join(HOSTILE) + " ")
    evaluate_run(run)
    fake_comparison(run)
    html = write_report(run).read_text()
    assert "<script" not in html and "onerror=alert(1)>" not in html
    assert not re.search(r"<img (?!src=\"data:image/png;base64,)", html)  # only our own figures are images
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    assert html.count(escaped) > 20  # run name, class names in every table, error texts, lessons
    assert "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "<title>sentitune report: &lt;script&gt;alert(3)&lt;img src=x onerror=alert(4)&gt;</title>" in html
    md = (run / "report.md").read_text()
    assert "a\\|b" in md and HOSTILE[0] in md  # Markdown stays raw, but pipes cannot split a cell
    markdown_tables_are_intact(md)


def test_explained_errors_are_highlighted_and_escaped(tmp_path):
    run = make_fake_run(tmp_path, name="explained", kind="tweets", names=HOSTILE, text_prefix=" ".join(HOSTILE) + " ")
    tiny_bert(RunFolder(run).model_dir, num_labels=3)
    evaluate_run(run, plots=False)
    html, md = write_report(run).read_text(), (run / "report.md").read_text()
    explained = [row for rows in RunFolder(run).evaluation()["errors"]["confident"].values() for row in rows
                 if "words" in row]
    assert len(explained) == 5
    assert "<script" not in html and "onerror=alert(1)>" not in html
    span = r'<span style="background:rgb\(\d+,\d+,\d+\)" title="[+-]\d\.\d{3}">'
    assert len(re.findall(span + "&lt;/script&gt;&lt;script&gt;alert\\(2\\)&lt;/script&gt;</span>", html)) == 5
    assert len(re.findall(span + "&lt;img</span>", html)) == 5
    assert ": evidence for the predicted class, " in html and "word attributions of the 5 most confident" in html
    for row in explained:
        strongest = max(row["words"], key=lambda w: abs(w["score"]))
        assert f"{strongest['word']} {strongest['score']:+.2f}" in md
    assert "+ is evidence for the predicted class, - against" in md
    markdown_tables_are_intact(md)


def test_comparison_given_as_a_table_draws_its_chart(tmp_path):
    run = make_fake_run(tmp_path)
    html = write_report(run, out_dir=tmp_path / "out", comparison=comparison_table(run)).read_text()
    assert "Model vs baselines" in html and "tfidf-logreg" in html
    assert (run / "plots" / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_report_of_a_run_not_evaluated_reads_its_recorded_metrics(tmp_path):
    run = make_fake_run(tmp_path)
    html = write_report(run, out_dir=tmp_path / "out")
    assert not (run / "evaluation.json").exists() and html.parent == tmp_path / "out"
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Comparison with baselines" not in md and "**Not evaluated yet**" in md
    assert f"{metrics_json(run)['test']['accuracy']:.4f}" in md
    assert all((html.parent / link).is_file() for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md))


def test_cli_report_evaluates_a_run_first(tmp_path):
    run = make_fake_run(tmp_path)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "evaluation.json").is_file() and "Not evaluated yet" not in (run / "report.md").read_text()


@pytest.mark.parametrize("name", OLD_RUNS)
def test_older_run_folders_still_render(name, tmp_path):
    """Runs from before N-class support (binary evaluation.json, top-level comparison.json, no predictions)."""
    run = shutil.copytree(ROOT / "docs" / "runs" / name, tmp_path / name)
    html_path = write_report(run, out_dir=tmp_path / "out")
    html, md = html_path.read_text(), (tmp_path / "out" / "report.md").read_text()
    accuracy = metrics_json(run)["test"]["accuracy"]
    assert headline_value(html, md, "accuracy") == (pytest.approx(accuracy, abs=5e-5),) * 2
    assert "Model vs baselines" in html and "McNemar p = " in md  # the top-level comparison.json was found
    assert len(IMG_TAG.findall(html)) >= 11
    assert "attributions" not in html and "attributions" not in md  # evaluated before errors were explained
    markdown_tables_are_intact(md)


def _render_checker():
    spec = importlib.util.spec_from_file_location("check_report_render", ROOT / "benchmarks" / "check_report_render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_html_renders_in_headless_chromium(reported, tmp_path):
    checker = _render_checker()
    if checker.find_chromium() is None:
        pytest.skip("Chromium is not installed")
    _, html_path = reported
    result = checker.check_render(html_path, tmp_path / "shot.png")
    assert result["ok"], result
    assert result["images"] >= 13
    # a broken image must be caught
    broken = tmp_path / "broken.html"
    broken.write_text(html_path.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    assert checker.check_render(broken, tmp_path / "shot2.png")["broken"]
