"""Batch scoring (`sentitune predict RUN --input F --output F`): every format, stdin/stdout, resume, atomicity."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_reviews, tiny_bert
from test_cli import sentitune

from sentitune.core.errors import SentituneError
from sentitune.inference.batch import score_file
from sentitune.inference.predict import SentimentModel

PROBS = ["prob_LABEL_0", "prob_LABEL_1"]
TRICKY = 'line one\nline two, "quoted"; tab\there \u2028 and ünïcode'


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    """45 reviews with an id column; one text holds a newline, quotes, a tab and a Unicode line separator."""
    df = synthetic_reviews(22, seed=3).head(44)[["text", "movie"]]
    df = pd.concat([df, pd.DataFrame({"text": [TRICKY], "movie": ["tt9"]})], ignore_index=True)
    return df.assign(id=[f"r{i:03d}" for i in range(len(df))])[["id", "text", "movie"]]


@pytest.fixture(scope="module")
def model(tiny_model) -> SentimentModel:
    return SentimentModel.from_pretrained(tiny_model)


def write_input(df: pd.DataFrame, path: Path) -> Path:
    """`df` in the format of `path`'s extension (.txt: the texts, one per line)."""
    suffix = path.suffix
    if suffix == ".parquet":
        df.to_parquet(path, row_group_size=7)  # row groups smaller than a chunk are joined
    elif suffix in {".csv", ".tsv"}:
        df.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    elif suffix in {".jsonl", ".json"}:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in df.to_dict("records")))
    else:
        path.write_text("\n".join(df.text) + "\n")
    return path


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype={"id": str})


def check_scores(out: pd.DataFrame, texts: list[str], model: SentimentModel) -> None:
    """Probabilities sum to 1, equal predict_proba on the same texts, and label/confidence follow them."""
    assert list(out.text) == texts
    probs = out[PROBS].to_numpy(dtype=np.float64)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(probs, model.predict_proba(texts), atol=1e-5)
    assert list(out.label) == [PROBS[i][5:] for i in probs.argmax(1)]
    np.testing.assert_allclose(out.confidence, probs.max(1), atol=1e-6)


def assert_only(folder: Path, *names: str) -> None:
    """Nothing but `names` in `folder`: no parts folder, no temporary file."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt"])
def test_each_input_format_keeps_its_columns_and_scores_like_predict_proba(suffix, reviews, model, tiny_model,
                                                                           tmp_path):
    rows = reviews[reviews.text != TRICKY] if suffix == ".txt" else reviews
    source = write_input(rows, tmp_path / f"in{suffix}")
    summary = score_file(tiny_model, source, tmp_path / "out.parquet", chunk_size=16, progress=False)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert summary["rows"] == summary["scored"] == len(rows) and summary["labels"] == ["LABEL_0", "LABEL_1"]
    extra = [] if suffix == ".txt" else ["id", "movie"]
    assert list(out.columns) == [c for c in rows.columns if c in extra + ["text"]] + ["label", "confidence", *PROBS]
    if extra:
        assert list(out.id) == list(rows.id) and list(out.movie) == list(rows.movie)
    check_scores(out, list(rows.text), model)
    assert_only(tmp_path, source.name, "out.parquet")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_each_output_format_reads_back(suffix, reviews, model, tiny_model, tmp_path):
    source = write_input(reviews, tmp_path / "in.parquet")
    score_file(tiny_model, source, tmp_path / f"out{suffix}", chunk_size=10, progress=False)
    out = read_output(tmp_path / f"out{suffix}")
    assert list(out.id) == list(reviews.id) and list(out.movie) == list(reviews.movie)
    check_scores(out, list(reviews.text), model)
    assert_only(tmp_path, "in.parquet", f"out{suffix}")


def test_missing_or_blank_texts_get_empty_results(tiny_model, tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": 1, "text": "a fine film"}\n{"id": 2, "text": "  "}\n'
                                       '{"id": 3}\n{"id": 4, "text": null}\n{"id": 5, "text": "dull"}\n')
    summary = score_file(tiny_model, tmp_path / "in.jsonl", tmp_path / "out.jsonl", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert summary["scored"] == 2 and summary["empty"] == 3 and [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["label"] is None for r in rows] == [False, True, True, True, False]
    assert rows[1]["prob_LABEL_0"] is None and rows[1]["confidence"] is None


def test_stdin_to_stdout_through_the_cli(reviews, model, tiny_model, monkeypatch):
    lines = "".join(json.dumps(r) + "\n" for r in reviews.to_dict("records"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    result = sentitune("predict", str(tiny_model), "--input", "-", "--output", "-", "--chunk-size", "7")
    assert result.returncode == 0, result.stderr
    out = pd.DataFrame([json.loads(line) for line in result.stdout.splitlines()])
    assert list(out.id) == list(reviews.id)
    check_scores(out, list(reviews.text), model)
    assert "wrote stdout: 45 rows" in result.stderr


def test_a_real_pipe_through_the_installed_command(tiny_model, tmp_path):
    lines = '{"id": 7, "text": "a moving film"}\n{"id": 8, "text": "caf\u00e9 \u2028 awful"}\n'
    result = subprocess.run([sys.executable, "-m", "sentitune", "predict", str(tiny_model), "--input", "-",
                             "--output", "-"], input=lines.encode(), capture_output=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["id"] for r in rows] == [7, 8] and rows[1]["text"] == "caf\u00e9 \u2028 awful"


def test_a_missing_text_column_is_one_line_and_exit_2(reviews, tiny_model, tmp_path):
    source = write_input(reviews, tmp_path / "in.csv")
    result = sentitune("predict", str(tiny_model), "--input", str(source), "--output", str(tmp_path / "out.csv"),
                       "--text-column", "review")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert str(source) in lines[0] and "'review'" in lines[0] and "['id', 'text', 'movie']" in lines[0]
    assert_only(tmp_path, "in.csv")


def test_bad_flag_combinations_are_one_line_errors(reviews, tiny_model, tmp_path):
    source = write_input(reviews, tmp_path / "in.parquet")
    both = sentitune("predict", str(tiny_model), "a text", "--input", str(source), "--output", "o.csv", cwd=tmp_path)
    alone = sentitune("predict", str(tiny_model), "--input", str(source), cwd=tmp_path)
    excel = sentitune("predict", str(tiny_model), "--input", str(source), "--output", "o.xlsx", cwd=tmp_path)
    for result, words in ((both, "without --input"), (alone, "go together"), (excel, "unknown format")):
        assert result.returncode == 2 and words in result.stderr and len(result.stderr.splitlines()) == 1
    (tmp_path / "labelled.jsonl").write_text('{"text": "fine", "label": 1}\n')
    with pytest.raises(SentituneError, match=r"\['label'\] would be overwritten"):
        score_file(tiny_model, tmp_path / "labelled.jsonl", tmp_path / "o.csv", progress=False)
    (tmp_path / "nested.jsonl").write_text('{"text": "fine", "tags": ["a", "b"]}\n')
    with pytest.raises(SentituneError, match=r"\['tags'\] hold lists or objects, which CSV cannot write"):
        score_file(tiny_model, tmp_path / "nested.jsonl", tmp_path / "o.csv", progress=False)
    assert_only(tmp_path, "in.parquet", "labelled.jsonl", "nested.jsonl")


def test_an_existing_output_needs_overwrite(reviews, tiny_model, tmp_path):
    source = write_input(reviews, tmp_path / "in.parquet")
    (tmp_path / "out.csv").write_text("old\n")
    with pytest.raises(SentituneError, match="--overwrite"):
        score_file(tiny_model, source, tmp_path / "out.csv", progress=False)
    score_file(tiny_model, source, tmp_path / "out.csv", overwrite=True, progress=False)
    assert len(pd.read_csv(tmp_path / "out.csv")) == len(reviews)


def test_resume_after_a_kill_skips_the_finished_parts(reviews, tiny_model, tmp_path, monkeypatch):
    source = write_input(reviews, tmp_path / "in.parquet")
    score_file(tiny_model, source, tmp_path / "straight.parquet", chunk_size=10, progress=False)
    calls, real = [], SentimentModel.predict_proba

    def dies_on_third_chunk(self, texts, *args, **kwargs):
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt  # a kill while the third chunk is scored
        return real(self, texts, *args, **kwargs)

    monkeypatch.setattr(SentimentModel, "predict_proba", dies_on_third_chunk)
    out, parts = tmp_path / "out.parquet", tmp_path / ".out.parquet.parts"
    with pytest.raises(KeyboardInterrupt):
        score_file(tiny_model, source, out, chunk_size=10, progress=False)
    assert not out.exists() and sorted(p.name for p in parts.glob("part-*")) == ["part-00000.parquet",
                                                                                 "part-00001.parquet"]
    with pytest.raises(SentituneError, match="--resume"):
        score_file(tiny_model, source, out, chunk_size=10, progress=False)
    with pytest.raises(SentituneError, match="another chunk size.*without --resume"):
        score_file(tiny_model, source, out, chunk_size=5, resume=True, progress=False)

    calls.clear()
    monkeypatch.setattr(SentimentModel, "predict_proba", lambda self, texts, *a, **k: calls.append(len(texts))
                        or real(self, texts, *a, **k))
    summary = score_file(tiny_model, source, out, chunk_size=10, resume=True, progress=False)
    assert calls == [10, 10, 5] and summary["parts_reused"] == 2 and summary["rows"] == len(reviews)
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "straight.parquet"))
    assert_only(tmp_path, "in.parquet", "straight.parquet", "out.parquet")


def test_three_classes_get_three_probability_columns_by_name(reviews, tmp_path):
    folder = tiny_bert(tmp_path / "three", num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"})
    source = write_input(reviews, tmp_path / "in.csv")
    summary = score_file(folder, source, tmp_path / "out.csv", progress=False)
    out = pd.read_csv(tmp_path / "out.csv")
    names = ["prob_negative", "prob_neutral", "prob_positive"]
    assert list(out.columns)[-5:] == ["label", "confidence", *names]
    assert summary["labels"] == ["negative", "neutral", "positive"]
    np.testing.assert_allclose(out[names].sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(out[names], SentimentModel.from_pretrained(folder).predict_proba(list(out.text)),
                               atol=1e-5)
    assert set(out.label) <= {"negative", "neutral", "positive"}
