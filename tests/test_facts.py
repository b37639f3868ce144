"""Tests of reporting.facts, reporting.lessons and reporting.formats: reading a run never evaluates it, the lessons
come from one engine for the report and the deck, comparison rows and scored splits are what the run recorded,
and explained texts are cut into pieces once for both renderers."""

from __future__ import annotations

import html
import json
import re

import pytest
from conftest import tiny_bert
from fake_run import comparison_table, fake_comparison, make_fake_run
from safetensors.torch import load_file

from sentitune.evaluation.evaluate import evaluate_run
from sentitune.reporting.card import write_model_card
from sentitune.reporting.facts import comparison_rows, run_facts, scored_split
from sentitune.reporting.formats import colour_shade, highlighted
from sentitune.reporting.present import LESSONS_SHOWN, SAID_BEFORE, write_presentation
from sentitune.reporting.report import lessons_learned, write_report
from sentitune.run.folder import RunFolder


def refuse(*args, **kwargs):
    raise AssertionError("reporting loaded a model or evaluated the run")


def test_reporting_a_run_not_evaluated_neither_evaluates_nor_loads_a_model(tmp_path, monkeypatch):
    run = make_fake_run(tmp_path)
    fake_comparison(run)
    folder = RunFolder(run)
    tiny_bert(folder.model_dir)  # weights an evaluation would load to explain the errors
    monkeypatch.setattr("sentitune.evaluation.evaluate.evaluate_run", refuse)
    monkeypatch.setattr("sentitune.models.loading.load_pretrained", refuse)
    monkeypatch.setattr("sentitune.models.loading.load_classifier", refuse)
    monkeypatch.setattr("transformers.modeling_utils.PreTrainedModel.from_pretrained", classmethod(refuse))

    facts = run_facts(run)
    write_report(run)
    write_model_card(run)
    deck = write_presentation(run).read_text()

    assert not folder.evaluation_path.exists() and not folder.plots_dir.joinpath("confusion_matrix.png").exists()
    test = folder.metrics()["test"]
    assert facts["recorded_only"] and facts["m"]["accuracy"] == test["accuracy"]
    assert facts["evaluation"]["slices"] == {} and facts["evaluation"]["errors"] == {}
    calibration = next(lesson for lesson in facts["lessons"] if lesson.key == "calibration")
    assert "the run has not been evaluated" in calibration.sentence
    assert "**Not evaluated yet**" in (run / "report.md").read_text()
    assert "This run has no evaluation.json" in deck
    weights = load_file(next(folder.model_dir.glob("*.safetensors")))
    assert facts["model_details"]["parameters"] == sum(t.numel() for t in weights.values())


def test_the_report_and_the_deck_say_the_same_lessons(tmp_path):
    run = make_fake_run(tmp_path, kind="tweets")
    evaluate_run(run)
    fake_comparison(run)
    facts = run_facts(run)
    keys = [lesson.key for lesson in facts["lessons"]]
    assert keys[:5] == ["baseline", "class", "calibration", "training", "truncation"] and "errors" in keys
    assert lessons_learned(facts) == [lesson.sentence for lesson in facts["lessons"]]
    md, deck = write_report(run).with_suffix(".md").read_text(), html.unescape(write_presentation(run).read_text())
    for lesson in facts["lessons"]:
        assert f"- {lesson.sentence}" in md
        assert lesson.finding in deck and (lesson.next is None or lesson.next in deck)
    # beyond the lessons slide, each lesson once: the errors slide's notes already say the slice and error findings
    assert deck.count("Also: ") == sum(1 for lesson in facts["lessons"][LESSONS_SHOWN:]
                                       if lesson.key not in SAID_BEFORE or lesson.next)


def test_comparison_rows_keep_the_table_values_of_the_run(tmp_path):
    run = make_fake_run(tmp_path)
    table = comparison_table(run)
    own = {**table["rows"][0], "accuracy": 0.5}  # the table's own value wins over the run's evaluation
    model = {"name": "fake-run", "kind": "fine-tuned", "is_model": True, "metrics": {"accuracy": 0.9},
             "examples": own["examples"], "examples_per_s": None, "mcnemar": None, "bootstrap": None, "row": {}}
    rows = comparison_rows({**table, "rows": [table["rows"][1], own, table["rows"][2]]}, model, {"fake-run"},
                           "accuracy")
    assert [r["name"] for r in rows] == ["fake-run", "tfidf-logreg", "vader"]
    assert rows[0]["metrics"]["accuracy"] == 0.5 and rows[0]["row"] is own and rows[0]["mcnemar"]
    assert [r["comparable"] for r in rows] == [True, True, False]
    without = comparison_rows({**table, "rows": table["rows"][1:]}, model, {"fake-run"}, "accuracy")
    assert without[0] is not model and without[0]["metrics"] == {"accuracy": 0.9} and without[0]["comparable"]


@pytest.mark.parametrize(("examples", "data", "split", "whole"), [
    ({"size": 400, "seed": 42, "per_class": None}, {}, "test", True),
    ({"size": 25000, "seed": 42, "per_class": None}, {"raw_rows": {"test": 25000}}, "test", True),
    ({"size": 2000, "seed": 42, "per_class": 1000}, {"raw_rows": {"test": 25000}}, "test[sample: 2000, seed 42]",
     False),
    ({"size": 900, "seed": 7, "per_class": None}, {"raw_rows": {"test": 1000}}, "test[sample: 900, seed 7]", False),
    ({"size": 200, "seed": 42, "per_class": None}, {"test_carved_from_train": 0.2, "raw_rows": {"train": 1000}},
     "train[20% held out, seed 42]", False),
])
def test_scored_split_names_a_sample_honestly(examples, data, split, whole):
    scored = scored_split(examples, data, None)
    assert (scored["split"], scored["whole"]) == (split, whole)


def test_highlighted_whole_text_and_window():
    text = "not bad at all, really good"
    words = [{"word": m.group(), "start": m.start(), "end": m.end(), "score": s}
             for m, s in zip(re.finditer(r"\w+", text), (-0.2, 0.9, 0.0, 0.1, 0.3, 0.6))]
    overlapping = {"word": "bad at", "start": 4, "end": 10, "score": 5.0}  # a hand-edited span over two words
    shown = highlighted({"text": text, "words": [*words, overlapping]}, shade=colour_shade, top=2)
    assert "".join(s["text"] for s in shown["segments"]) == text  # every character once, in order
    assert not shown["cut_before"] and not shown["cut_after"]
    coloured = {s["text"]: s for s in shown["segments"] if "colour" in s}
    assert coloured["bad"]["score"] == 0.9 and re.fullmatch(r"rgb\(\d+,\d+,\d+\)", coloured["bad"]["colour"])
    assert [w["word"] for w in shown["top"]] == ["bad", "good"]
    long = " ".join(["filler"] * 100) + " " + text
    window = highlighted({"text": long, "words": [{**w, "start": w["start"] + 700, "end": w["end"] + 700}
                                                  for w in words]}, chars=60)
    assert window["cut_before"] and not window["cut_after"]
    assert "".join(s["text"] for s in window["segments"]) == text
    assert json.dumps(window)  # plain data, ready for the template
