"""Tests of reporting.present: the slide deck of fake runs of two, three and five classes and of every run folder in
docs/runs (some lack pieces): ten slides with speaker notes that make the talk, self-contained, the results slide's
numbers those of the comparison table, lessons computed from the run, nothing from the data turned into markup, and
(with Chromium) every slide fitting its page, the keys moving between slides and printing one slide per page."""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
from fake_run import fake_comparison, make_fake_run
from typer.testing import CliRunner

from sentitune.app.cli import app
from sentitune.evaluation.evaluate import evaluate_run
from sentitune.reporting.formats import highlighted, p_value
from sentitune.reporting.present import write_presentation
from sentitune.run.folder import RunFolder, write_json

ROOT = Path(__file__).resolve().parents[1]
DOC_RUNS = sorted(p.name for p in (ROOT / "docs" / "runs").iterdir() if (p / "metrics.json").is_file())
KEYS = ["title", "data", "baselines", "training", "results", "classes", "errors", "speed", "lessons", "reuse"]
HOSTILE = ("<img src=x onerror=alert(1)>", "</script><script>alert(2)</script>", "a|b")
HOSTILE_RUN = "<script>alert(3)<img src=x onerror=alert(4)>"
SECTION = re.compile(r'<section class="slide [^"]*" id="slide-(\d+)" data-key="([^"]+)">(.*?)</section>', re.S)
NOTES = re.compile(r'<aside class="notes">(.*?)</aside>', re.S)
TAG = re.compile(r"<[^>]+>")


def slides_of(text: str) -> dict[str, str]:
    """{slide key: its section's HTML}, in order."""
    return {key: body for _, key, body in SECTION.findall(text)}


def notes_of(section: str) -> str:
    return html.unescape(TAG.sub(" ", NOTES.search(section).group(1)))


def shown_text(section: str) -> str:
    """The visible text of a slide: no notes, no footer, no images."""
    body = NOTES.sub("", section).split('<div class="footer">')[0]
    return html.unescape(TAG.sub(" ", body))


@pytest.fixture(scope="module")
def decks(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """{kind: (run, deck HTML)}: binary, three-class (train/test shares differ) and five-class ordinal fake runs,
    evaluated, each with a comparison table (one baseline scored on other examples)."""
    root = tmp_path_factory.mktemp("present")
    out = {}
    for kind in ("binary", "tweets", "stars"):
        run = make_fake_run(root, name=kind, kind=kind)
        evaluate_run(run)
        fake_comparison(run)
        out[kind] = (run, write_presentation(run).read_text())
    return out


# ---------------------------------------------------------------- structure


def test_ten_slides_each_with_speaker_notes(decks):
    for run, text in decks.values():
        assert (run / "presentation.html").is_file()
        slides = slides_of(text)
        assert list(slides) == KEYS
        for key, section in slides.items():
            notes = notes_of(section)
            assert "min of 15" in notes and len(notes) > 60, key


def test_deck_is_self_contained_and_prints_a_slide_per_page(decks):
    for _, text in decks.values():
        assert "http://" not in text and "https://" not in text and "<link" not in text and "url(" not in text
        assert text.count("<script") == 1 and "<script src" not in text
        images = re.findall(r'<img src="([^"]+)"', text)
        assert len(images) >= 4  # two curves, the comparison chart, the confusion matrix
        for src in images:
            assert src.startswith("data:image/png;base64,")
            assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
        assert "@media print" in text and "break-after: page" in text
        for key in ("ArrowRight", "PageDown", "PageUp", '" "', '"s"'):
            assert key in text


def test_notes_walk_through_the_run_with_its_numbers(decks):
    """The notes are the talk: the training curves, the results with intervals and the paired test, the classes,
    and how to reuse the model, each with the run's own numbers."""
    run, text = decks["tweets"]
    folder, slides = RunFolder(run), slides_of(text)
    log = [r for r in folder.log() if r.get("eval_f1_macro") is not None]
    best = max(log, key=lambda r: r["eval_f1_macro"])
    assert f"peaks at {best['eval_f1_macro']:.3f} at step {best['step']}" in notes_of(slides["training"])
    model = folder.comparison()["rows"][0]
    low, high = model["recall_macro_ci95"]  # TweetEval's official metric
    results = notes_of(slides["results"])
    assert f"macro recall is {model['recall_macro']:.3f}, 95% interval {low:.3f} to {high:.3f}" in results
    assert "McNemar's test looks only at the" in results and "tfidf-logreg" in results
    per_class = folder.evaluation()["metrics"]["per_class"][0]
    assert f"{per_class['label']}: precision {per_class['precision']:.3f}" in notes_of(slides["classes"])
    reuse = shown_text(slides["reuse"])
    assert 'sentitune predict tweets "a text"' in reuse and "tweets/model" in reuse
    assert "model's weights" in notes_of(slides["reuse"])  # a fake run keeps no weights: said


def test_title_slide_names_task_data_model_machine(decks):
    run, text = decks["tweets"]
    title = shown_text(slides_of(text)["title"])
    for part in ("3 classes", "tweeteval", "prajjwal1/bert-tiny", "AMD EPYC", "tweets"):
        assert part in title, part
    assert re.search(r"\d{4}-\d\d-\d\d", title)


# ---------------------------------------------------------------- numbers


def results_rows(section: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """[(system name, [(data-key, value, interval)])] of the results table."""
    rows = re.findall(r'<tr class="[^"]*" data-system="\d+"><td>(.*?)<span class="ci">[^<]*</span></td>(.*?)</tr>',
                      section, re.S)
    cells = r'<td class="num" data-key="(\w+)">([^<]*)(?:<span class="ci">([^<]*)</span>)?</td>'
    return [(html.unescape(name).removesuffix(" †"), [tuple(map(html.unescape, c)) for c in re.findall(cells, row)])
            for name, row in rows]


def table_numbers(table: dict) -> set[str]:
    """Every number a faithful results slide may show: the table's values and intervals at three decimals, its
    p-values, and the numbers inside its headline, system names and kinds."""
    allowed = {"95"}
    for row in table["rows"]:
        for key, value in row.items():
            if isinstance(value, float):
                allowed.add(f"{value:.3f}")
            elif key.endswith("_ci95") and value:
                allowed |= {f"{v:.3f}" for v in value}
            elif isinstance(value, dict) and "p_value" in value:
                allowed |= set(re.findall(r"\d+(?:\.\d+)?", p_value(value)))
        allowed |= set(re.findall(r"\d+(?:\.\d+)?", f"{row['name']} {row.get('kind', '')}"))
    return allowed | set(re.findall(r"\d+(?:\.\d+)?", table.get("headline") or ""))


def assert_results_match(text: str, table: dict) -> None:
    section = slides_of(text)["results"]
    rows = results_rows(section)
    by_name = {row["name"]: row for row in table["rows"]}
    assert sorted(name for name, _ in rows) == sorted(by_name)
    for name, cells in rows:
        row = by_name[name]
        assert cells
        for key, value, interval in cells:
            if key in ("mcnemar", "bootstrap"):
                test = row.get(f"{key}_vs_best_baseline" if key == "mcnemar" else "bootstrap_f1_macro_vs_best_baseline")
                assert value == p_value(test), (name, key)
                continue
            assert value == (f"{row[key]:.3f}" if row.get(key) is not None else "n/a"), (name, key)
            ci = row.get(f"{key}_ci95")
            assert interval == (f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""), (name, key)
    shown = set(re.findall(r"\b\d+(?:\.\d+)?", shown_text(section)))  # \b: not the 1 of F1
    assert shown <= table_numbers(table), shown - table_numbers(table)


def test_results_slide_numbers_equal_the_comparison_table(decks):
    for run, text in decks.values():
        table = RunFolder(run).comparison()
        assert_results_match(text, table)
        section = slides_of(text)["results"]
        assert "vader †" in html.unescape(section)  # scored on other examples: flagged
        assert '<tr class="model" data-system="0">' in section  # the run first


def test_per_class_and_ordinal_numbers_come_from_the_evaluation(decks):
    run, text = decks["stars"]
    m = RunFolder(run).evaluation()["metrics"]
    classes = shown_text(slides_of(text)["classes"])
    for row in m["per_class"]:
        assert f"{row['precision']:.3f}" in classes and f"{row['recall']:.3f}" in classes
    assert f"{m['mae']:.2f}" in classes and f"{m['qwk']:.3f}" in classes and "Ordered scale" in classes
    assert "Ordered scale" not in shown_text(slides_of(decks["binary"][1])["classes"])


def test_lessons_are_computed_from_the_run(decks):
    run, text = decks["tweets"]
    folder = RunFolder(run)
    evaluation, table = folder.evaluation(), folder.comparison()
    lessons = shown_text(slides_of(text)["lessons"])
    t = evaluation["temperature"]
    assert f"ECE {evaluation['metrics']['ece']:.3f} before and {t['metrics_after']['ece']:.3f} after" in lessons
    weakest = min(evaluation["metrics"]["per_class"], key=lambda r: r["recall"])
    assert f"Weakest class: {weakest['label']}, recall {weakest['recall']:.3f}" in lessons
    model, best = table["rows"][0], next(r for r in table["rows"] if r["name"] == table["best_baseline"])
    assert f"{model['recall_macro']:.3f} vs {best['recall_macro']:.3f} for the best baseline, tfidf-logreg" in lessons
    assert "significant at 5%" in lessons and slides_of(text)["lessons"].count('class="next"') == 5  # "→ try:" in CSS


def test_speed_slide_shows_backend_quality_when_exported(tmp_path):
    run = make_fake_run(tmp_path)
    quality = {"texts": 500, "source": "the run's test split", "precision": "fp32", "cpu": "AMD EPYC, 2 threads",
               "backends": {"torch": {"accuracy": 0.912, "agreement_with_torch": 1.0, "examples_per_s": 101.5},
                            "onnx-int8": {"accuracy": 0.908, "agreement_with_torch": 0.994, "examples_per_s": 333.3}}}
    write_json(RunFolder(run).onnx_quality_path, quality)
    speed = slides_of(write_presentation(run).read_text())["speed"]
    assert "onnx-int8" in speed and "99.4%" in speed and "333.3" in speed and "0.908" in speed
    assert "Not shown" in notes_of(speed) and "inference" in notes_of(speed)  # the fake run records no inference


# ---------------------------------------------------------------- errors and explanations


def explained(text: str, label: str, pred: str) -> dict:
    """An explanation in evaluation.json's shape: every word with its span, alternating evidence for and against."""
    words = [{"word": m.group(), "start": m.start(), "end": m.end(), "score": (1 if i % 2 else -1) * (i % 7) / 6}
             for i, m in enumerate(re.finditer(r"\S+", text))]
    return {"text": text, "label": label, "pred": pred, "confidence": 0.97, "words": words}


def with_explanations(run: Path) -> None:
    folder = RunFolder(run)
    evaluation = folder.evaluation()
    for row in [r for rows in evaluation["errors"]["confident"].values() for r in rows][:2]:  # as evaluate does
        row["words"] = explained(row["text"], row["label"], row["pred"])["words"]
    folder.write_evaluation(evaluation)


def test_errors_slide_without_and_with_explanations(tmp_path):
    run = make_fake_run(tmp_path)
    evaluate_run(run)
    plain = slides_of(write_presentation(run).read_text())["errors"]
    assert plain.count('<div class="error">') == 4 and 'class="w ' not in plain
    assert "word highlights (evaluation.json has no explanations)" in notes_of(plain)
    with_explanations(run)
    section = slides_of(write_presentation(run).read_text())["errors"]
    assert section.count('<div class="error explained">') == 2
    assert 'class="w for"' in section and 'class="w against"' in section
    assert "strongest words:" in section and "Integrated Gradients" in notes_of(section)


def test_highlight_window_is_around_the_strongest_word():
    text = " ".join(f"w{i}" for i in range(300))
    item = explained(text, "negative", "positive")
    for w in item["words"]:
        w["score"] = 0.1
    item["words"][250]["score"] = -2.0
    shown = highlighted(item, chars=120)
    joined = "".join(s["text"] for s in shown["segments"])
    assert "w250" in joined and len(joined) <= 120 and shown["cut_before"] and shown["cut_after"]
    assert shown["top"][0] == {"word": "w250", "score": -2.0}
    assert next(s for s in shown["segments"] if s["text"] == "w250") == {"text": "w250", "sign": "against",
                                                                        "weight": 1.0}
    no_spans = highlighted({"text": "good film", "words": [{"word": "good", "score": 0.5}, {"word": "film"}]})
    assert [s["text"] for s in no_spans["segments"]] == ["good "]


# ---------------------------------------------------------------- escaping


def test_hostile_text_and_names_are_escaped(tmp_path):
    run = make_fake_run(tmp_path, name="hostile", kind="tweets", names=HOSTILE, title=HOSTILE_RUN,
                        text_prefix=" ".join(HOSTILE) + " ")
    fake_comparison(run)
    evaluate_run(run)
    with_explanations(run)
    text = write_presentation(run).read_text()
    assert text.count("<script") == 1 and "onerror=alert(1)>" not in text and "alert(2)</script>" not in text
    assert not re.search(r"<img (?!src=\"data:image/png;base64,)", text)  # only the deck's own figures are images
    assert text.count("&lt;img src=x onerror=alert(1)&gt;") >= 8  # class names, texts and notes, all escaped
    assert "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in text
    assert "<title>&lt;script&gt;alert(3)&lt;img src=x onerror=alert(4)&gt;: presentation</title>" in text
    assert all(re.fullmatch(r"--w: [01]\.\d\d", style) for style in re.findall(r'style="([^"]*)"', text))
    errors = slides_of(text)["errors"]
    assert 'class="w ' in errors and "&lt;img" in errors


# ---------------------------------------------------------------- other runs, the command line


@pytest.mark.parametrize("name", DOC_RUNS)
def test_every_docs_run_renders(name, tmp_path):
    """Runs of every age and completeness: binary first-format runs, N-class runs, and runs kept with metrics.json
    only (no predictions, evaluation or comparison): every slide renders, and what is missing is said in the
    notes."""
    run = shutil.copytree(ROOT / "docs" / "runs" / name, tmp_path / name)
    text = write_presentation(run).read_text()
    slides = slides_of(text)
    assert list(slides) == KEYS and all(notes_of(s).strip() for s in slides.values())
    table = RunFolder(run).comparison()
    if table.get("rows"):
        assert_results_match(text, table)
    else:
        assert "Not shown" in notes_of(slides["baselines"]) and "Not shown" in notes_of(slides["results"])
        accuracy = json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
        assert f"{accuracy:.3f}" in shown_text(slides["results"])
    assert "<td>" in slides["classes"]  # per-class rows, from evaluation.json or metrics.json


def test_cli_present_writes_the_deck(tmp_path):
    run = make_fake_run(tmp_path)
    out = tmp_path / "talk" / "deck.html"
    result = CliRunner().invoke(app, ["present", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and list(slides_of(out.read_text())) == KEYS
    assert not (run / "presentation.html").exists()


# ---------------------------------------------------------------- in a browser


def _deck_checker():
    spec = importlib.util.spec_from_file_location("check_presentation_render",
                                                  ROOT / "benchmarks" / "check_presentation_render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_slides_fit_and_keys_work_in_headless_chromium(decks, tmp_path):
    checker = _deck_checker()
    if checker.find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the in-browser checks need it")
    for kind, (run, _) in decks.items():
        result = checker.check_deck(run / "presentation.html", pdf=kind == "tweets")
        assert result["ok"], (kind, result["problems"])
        assert len(result["slides"]) == len(KEYS) and all(all(s["images"]) for s in result["slides"])
    for name in DOC_RUNS:
        run = shutil.copytree(ROOT / "docs" / "runs" / name, tmp_path / name)
        result = checker.check_deck(write_presentation(run), pdf=False)
        assert result["ok"], (name, result["problems"])
    hostile = make_fake_run(tmp_path, name="hostile", kind="stars", names=HOSTILE + ("x" * 60, "y"),
                            title=HOSTILE_RUN * 3, text_prefix=" ".join(HOSTILE) + " ")
    result = checker.check_deck(write_presentation(hostile), pdf=False, min_fit=0.7)
    assert result["ok"], result["problems"]
