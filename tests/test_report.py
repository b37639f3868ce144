"""Tests of sentitune.report on a fake run: numbers match metrics.json, images are embedded, lessons are facts."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from fake_run import fake_comparison, make_fake_run
from sentitune.errors import SentituneError
from sentitune.report import lessons_learned, read_comparison, run_facts, write_report

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A fake run with a comparison and a study, reported once for the whole module."""
    root = tmp_path_factory.mktemp("report")
    run = make_fake_run(root)
    fake_comparison(run)
    study = root / "study"
    (study / "plots").mkdir(parents=True)
    (study / "plots" / "history.png").write_bytes(_tiny_png())
    (study / "best.yaml").write_text(yaml.safe_dump({"value": 0.9012, "params": {"learning_rate": 3e-5, "batch_size": 32}}))
    html = write_report(run, study_dir=study)
    return run, html


def _tiny_png() -> bytes:
    """A valid 1x1 PNG."""
    return base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def test_report_files_and_numbers(reported):
    run, html_path = reported
    html, md = html_path.read_text(), (run / "report.md").read_text()
    test = json.loads((run / "metrics.json").read_text())["test"]
    for text in (html, md):
        for key in ("accuracy", "f1", "roc_auc", "log_loss", "ece"):
            assert f"{test[key]:.4f}" in text, key
        assert "tfidf-logreg" in text and "no: other examples" in text
        assert "learning_rate" in text and "3e-05" in text  # the study's best params
    assert not list(run.glob(".*.tmp-*"))  # atomic writes left nothing behind


def test_html_is_self_contained(reported):
    _, html_path = reported
    html = html_path.read_text()
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) >= 12  # 10 run plots + comparison + study plot
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    for src in sources:
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"


def test_markdown_links_resolve(reported):
    run, _ = reported
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (run / "report.md").read_text())
    assert links and all((run / link).is_file() for link in links)


def test_lessons_are_computed_from_facts(reported):
    run, _ = reported
    facts = run_facts(run)
    lessons = lessons_learned(facts)
    text = " ".join(lessons)
    evaluation = facts["evaluation"]
    assert f"{evaluation['metrics']['ece']:.3f}" in text and f"{evaluation['temperature']['metrics_after']['ece']:.3f}" in text
    assert "weakest slice is rating = 7" in text or "weakest slice is rating = 4" in text
    assert "Are 4s and 7s the hardest? Yes" in text
    model, baseline = facts["comparison"][0], next(r for r in facts["comparison"] if r["name"] == "tfidf-logreg")
    gap = 100 * (model["metrics"]["accuracy"] - baseline["metrics"]["accuracy"])
    assert gap > 0 and f"{gap:.1f} points above the best baseline" in text and "tfidf-logreg" in text
    assert f"McNemar p = {model['mcnemar']['p_value']:.2g}" in text and "Not compared" in text and "vader" in text
    assert any(s.startswith("Truncation to 256 tokens") for s in lessons)


def test_read_comparison_reads_the_compare_table(tmp_path):
    run = make_fake_run(tmp_path)
    table = fake_comparison(run)
    rows = read_comparison(run / "comparison")
    assert [r["name"] for r in rows] == [r["name"] for r in table["rows"]]
    model = next(r for r in rows if r["is_model"])
    assert model["mcnemar"]["p_value"] is not None and model["metrics"]["accuracy"] == table["rows"][0]["accuracy"]
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(SentituneError, match="not valid JSON"):
        read_comparison(tmp_path / "bad.json")
    with pytest.raises(SentituneError, match="sentitune compare"):
        read_comparison({"entries": []})


def test_report_without_comparison_evaluates_first(tmp_path):
    run = make_fake_run(tmp_path)
    html = write_report(run, out_dir=tmp_path / "out")
    assert (run / "evaluation.json").is_file() and html.parent == tmp_path / "out"
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Comparison with baselines" not in md
    assert all((html.parent / link).is_file() for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md))


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
    assert result["images"] >= 12
    # a broken image must be caught
    broken = tmp_path / "broken.html"
    broken.write_text(html_path.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    assert checker.check_render(broken, tmp_path / "shot2.png")["broken"]
