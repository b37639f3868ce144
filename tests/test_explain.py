"""Explanations: every word scored, spans into the original text, any number of classes, escaped HTML."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_bert

from sentitune.data import clean_text
from sentitune.inference.explain import Explanation, cleaned_with_spans, explain, html_snippet, rich_text, without_words
from sentitune.inference.predict import SentimentModel

TEXT = "A wonderful,  moving film.<br /><br />Dull &amp; far too long&hellip; but the ending works!"


@pytest.fixture(scope="module")
def model(tiny_model) -> SentimentModel:
    return SentimentModel.from_pretrained(tiny_model, backend="torch")


def test_every_word_is_scored_with_its_span_in_the_original_text(model):
    found = explain(model, TEXT, steps=8)
    assert found.words == clean_text(TEXT).split()
    assert all(clean_text(TEXT[start:end]) == word for word, (start, end) in zip(found.words, found.spans))
    assert TEXT[slice(*found.spans[1])] == "wonderful," and TEXT[slice(*found.spans[5])] == "&amp;"
    assert len(found.scores) == len(found.words) and all(found.read)
    assert max(abs(s) for s in found.scores) == pytest.approx(1.0)
    assert found.label == found.target and found.label in model.labels.names
    assert np.allclose(list(found.probs.values()), model.predict_proba([TEXT])[0], atol=1e-6)
    assert np.isfinite(found.delta)


def test_explanations_are_deterministic(model):
    first, second = explain(model, TEXT, steps=8), explain(model, TEXT, steps=8)
    assert first.scores == second.scores and first.delta == second.delta


def test_more_steps_converge_and_another_target_flips_the_evidence(model):
    coarse, fine = explain(model, TEXT, steps=2), explain(model, TEXT, steps=64)
    assert abs(fine.delta) <= abs(coarse.delta) + 1e-4
    other = next(name for name in model.labels.names if name != fine.label)
    flipped = explain(model, TEXT, target=other, steps=64)
    # Two classes: p(other) = 1 - p(label), so the evidence for one is the evidence against the other.
    assert flipped.target == other and np.allclose(flipped.scores, [-s for s in fine.scores], atol=0.05)


def test_words_cut_by_truncation_are_listed_with_score_zero(model, monkeypatch):
    monkeypatch.setattr(model, "max_length", 12)
    text = " ".join(f"word{i}" for i in range(40))
    found = explain(model, text, steps=4)
    assert found.words == text.split() and not all(found.read) and any(found.read)
    assert all(score == 0 for score, read in zip(found.scores, found.read) if not read)
    assert found.read[0] and found.read[-1]  # head+tail keeps both ends


def test_three_classes_and_a_chosen_target(tmp_path):
    folder = tiny_bert(tmp_path / "three", num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"})
    found = explain(SentimentModel.from_pretrained(folder, backend="torch"), "meh, it was fine", target="neutral",
                    steps=8)
    assert found.target == "neutral" and set(found.probs) == {"negative", "neutral", "positive"}
    assert found.words == ["meh,", "it", "was", "fine"] and max(map(abs, found.scores)) == pytest.approx(1.0)


def test_cleaning_keeps_track_of_where_each_character_came_from():
    for text in ["  a&amp;b <BR/>c&notit; &#39;d&#39;\n\te &", "", "&&&", "x<br />", "&#0;y"]:
        cleaned, spans = cleaned_with_spans(text)
        assert cleaned == clean_text(text) and len(spans) == len(cleaned)
        assert all(clean_text(text[start:end]) in (char, "") or char == " " for char, (start, end) in
                   zip(cleaned, spans))


def test_deleting_words_removes_exactly_their_spans():
    text = "the plot was awful, the acting superb"
    spans = [(13, 19), (0, 3), (31, 37)]
    assert without_words(text, spans) == " plot was  the acting "
    assert without_words(text, []) == text and without_words(text, [(0, 3), (0, 3)]) == text[3:]


def faithfulness_benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "explain_faithfulness.py"
    spec = importlib.util.spec_from_file_location("explain_faithfulness", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_faithfulness_benchmark_deletes_the_top_and_random_read_words():
    bench = faithfulness_benchmark()
    text = "awful plot, superb acting and music"
    words = text.split()
    spans = [(m, m + len(w)) for m, w in zip([0, 6, 12, 19, 26, 30], words)]
    found = Explanation(text, words, spans, [-1.0, 0.1, 0.9, 0.2, 0.0, 1.0], "pos", "pos", {"neg": 0.2, "pos": 0.8},
                        0.0, [True, True, True, True, True, False])
    top, rand = bench.deleted_texts([found], (1, 2, 10), seed=0)
    assert top == ["awful plot,  acting and music", "awful plot,   and music", "     music"]
    assert rand[2] == top[2] and all(len(t.split()) == len(words) - k for t, k in zip(rand[:2], (1, 2)))
    assert rand == bench.deleted_texts([found], (1, 2, 10), seed=0)[1]  # seeded


def test_the_faithfulness_benchmark_measures_drops_of_the_explained_class(model):
    from sentitune.inference.explain import explain_many

    bench = faithfulness_benchmark()
    found = explain_many(model, [TEXT, "a dull film, truly"], steps=2, batch_size=2)
    rows = bench.drops(model, found, (1, 3), seed=0, batch_size=None)
    top, _ = bench.deleted_texts(found, (1, 3), seed=0)
    column = [model.labels.names.index(one.target) for one in found]
    after = model.predict_proba(top[2:])[[0, 1], column]
    expected = np.mean([one.probs[one.target] for one in found] - after)
    assert [r["k"] for r in rows] == [1, 3] and rows[1]["n"] == 2
    assert rows[1]["top_k_drop"] == pytest.approx(expected, abs=1e-4)
    assert "| 3 | 2 |" in bench.table(rows)


def test_html_escapes_hostile_text_and_labels():
    hostile = "<img src=x onerror=alert(1)>"
    found = Explanation(hostile, hostile.split(), [(0, 4), (5, 10), (11, 28)], [1.0, -0.5, 0.0], "<b>pos</b>",
                        '"><script>x</script>', {"<b>pos</b>": 0.9, '"><script>x</script>': 0.1}, 0.0)
    snippet = html_snippet(found)
    assert "<img" not in snippet and "<script" not in snippet and "<b>" not in snippet
    assert "&lt;img" in snippet and "&lt;b&gt;pos" in snippet
    assert "background:rgb(22,163,74)" in snippet and "background:rgb(238,146,146)" in snippet
    assert rich_text(found).plain == hostile


def test_cli_prints_and_writes_html(tiny_model, tmp_path):
    from test_cli import sentitune

    result = sentitune("explain", str(tiny_model), "A <b>wonderful</b> film", "--steps", "4",
                       "--output", str(tmp_path / "out" / "why.html"))
    assert result.returncode == 0, result.stderr
    assert "predicted" in result.stdout and "wonderful" in result.stdout
    written = (tmp_path / "out" / "why.html").read_text()
    assert "&lt;b&gt;wonderful&lt;/b&gt;" in written and "<b>" not in written


def test_cli_unknown_target_is_one_line_and_exit_2(tiny_model):
    from test_cli import sentitune

    result = sentitune("explain", str(tiny_model), "fine", "--target", "sarcastic")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1
    assert "--target sarcastic" in lines[0] and "LABEL_0, LABEL_1" in lines[0]


def test_explain_endpoint_returns_words_and_keeps_the_guards(tiny_model):
    from fastapi.testclient import TestClient

    from sentitune.inference.serve import MAX_TEXT_CHARS, create_app

    client = TestClient(create_app(tiny_model, backend="torch", max_in_flight=1))
    answer = client.post("/explain", json={"text": "A wonderful, moving film."})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [w["word"] for w in body["words"]] == ["A", "wonderful,", "moving", "film."]
    assert body["label"] in body["scores"] and body["words"][1]["start"] == 2 and body["words"][1]["end"] == 12
    assert client.post("/explain", json={"text": "ok", "target": body["label"]}).json()["target"] == body["label"]
    unknown = client.post("/explain", json={"text": "ok", "target": "<nope>"})
    assert unknown.status_code == 422 and "<nope>" not in unknown.text and "LABEL_0" in unknown.text
    assert client.post("/explain", json={"text": "y" * (MAX_TEXT_CHARS + 1)}).status_code in {413, 422}
    client.app.state.slots.acquire()
    try:
        assert client.post("/explain", json={"text": "a"}).status_code == 503
    finally:
        client.app.state.slots.release()
