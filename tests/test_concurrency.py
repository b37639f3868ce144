"""Concurrency: two `predict --input` jobs writing one output, `serve` under 10,000 requests while its model folder is
replaced, and one tune study shared by two `sentitune tune` processes.

Properties: one job wins and the other refuses in one line (or both write, one after the other), the output always
valid; the server keeps answering with the model it loaded (or refuses cleanly, 503), never a 5xx or another model's
scores; both tuners finish, their trials numbered once each, and the study's outputs (best.yaml, summary.json,
plots) whole."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from case_counts import record
from conftest import synthetic_reviews, tiny_bert
from test_batch import write_input
from test_cli import sentitune

from sentitune.core.errors import SentituneError
from sentitune.core.io import exclusive_lock
from sentitune.inference.batch import score_file
from sentitune.inference.predict import SentimentModel
from sentitune.inference.serve import create_app

REQUESTS = int(os.environ.get("SENTITUNE_SERVE_REQUESTS", 10_000))
CONCURRENCY = 128  # requests in flight at once (below the app's 256 slots, so none is refused for being busy)


def cli(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sentitune", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error:", "Traceback"))]


# ---------------------------------------------------------------- two jobs, one output


@pytest.fixture(scope="module")
def job_input(tiny_model, tmp_path_factory):
    """600 reviews, and the output one job alone writes from them."""
    folder = tmp_path_factory.mktemp("two-jobs")
    source = write_input(synthetic_reviews(300, seed=8)[["text", "movie"]], folder / "in.parquet")
    score_file(tiny_model, source, folder / "alone.parquet", chunk_size=50, progress=False)
    return source, pd.read_parquet(folder / "alone.parquet")


def test_a_job_writing_an_output_refuses_a_second_one_in_one_line(tiny_model, job_input, tmp_path):
    source, alone = job_input
    out = tmp_path / "out.parquet"
    with exclusive_lock(tmp_path / ".out.parquet.lock", "held by the first job"):
        with pytest.raises(SentituneError, match=rf"--output {out}: another sentitune job is writing it now"):
            score_file(tiny_model, source, out, overwrite=True, progress=False)
        result = sentitune("predict", str(tiny_model), "--input", str(source), "--output", str(out))
        assert result.returncode == 2 and len(error_lines(result.stderr)) == 1
        assert "another sentitune job is writing it now" in result.stderr
    assert not out.exists() and not (tmp_path / ".out.parquet.parts").exists()
    score_file(tiny_model, source, out, chunk_size=50, progress=False)  # the lock is gone with its holder
    pd.testing.assert_frame_equal(pd.read_parquet(out), alone)


@pytest.mark.parametrize("overwrite", [False, True])
def test_two_processes_with_one_output_one_wins_and_the_output_is_whole(tiny_model, job_input, tmp_path, overwrite):
    source, alone = job_input
    out = tmp_path / "out.parquet"
    args = ("predict", str(tiny_model), "--input", str(source), "--output", str(out), "--chunk-size", "50",
            *(("--overwrite",) if overwrite else ()))
    jobs = [cli(*args) for _ in range(2)]
    results = [(job.wait(timeout=300), job.communicate()[1]) for job in jobs]
    record("fault", "two predict --input jobs on one output")
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]) if overwrite else codes == [0, 2], results
    for code, stderr in results:
        assert "Traceback" not in stderr
        if code == 2:
            assert len(error_lines(stderr)) == 1 and ("another sentitune job is writing it now" in stderr
                                                      or "already exists" in stderr), stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_parquet(out), alone)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]  # no parts, lock or temporary file left


# ---------------------------------------------------------------- serve while the model folder is replaced


TEXTS = [f"{'a wonderful, moving' if i % 2 else 'a dull, far too long'} film number {i}" for i in range(40)]


async def hammer(app, n: int, replace_at: int, replace) -> list[tuple[str, int, dict | list]]:
    """`n` requests, CONCURRENCY at a time: /predict of one text each, and after `replace_at` every 500th an
    /explain (the explainer loads on first use); `replace()` runs in a thread once `replace_at` have been sent,
    while the rest go on. An /explain's answer is tagged "explain after" when the replacement had finished."""
    gate, answers, replaced, done = asyncio.Semaphore(CONCURRENCY), [], None, []

    def replace_then_say_so():
        replace()
        done.append(True)

    async def one(client: httpx.AsyncClient, i: int):
        nonlocal replaced
        async with gate:
            if i == replace_at:
                replaced = asyncio.get_running_loop().run_in_executor(None, replace_then_say_so)
            text = TEXTS[i % len(TEXTS)]
            if i > replace_at and i % 500 == 250:
                when = "explain after" if done else "explain during"
                response = await client.post("/explain", json={"text": text})
                answers.append((when, response.status_code, response.json()))
            else:
                response = await client.post("/predict", json={"texts": [text]})
                answers.append((text, response.status_code, response.json()))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        await asyncio.gather(*(one(client, i) for i in range(n)))
    await replaced
    return answers


def another_model(path: Path) -> Path:
    """A tiny BERT whose head all but always says the first class (scores far from the served model's)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    tiny_bert(path)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([6.0, -6.0]))
    model.save_pretrained(path)
    return path


@pytest.mark.parametrize("how, requests", [("rename", REQUESTS // 5), ("rewrite", REQUESTS)])
def test_serve_keeps_its_model_while_the_folder_is_replaced(tiny_model, tmp_path, how, requests):
    served, other = tmp_path / "served", another_model(tmp_path / "other")
    shutil.copytree(tiny_model, served)
    model = SentimentModel.from_pretrained(served)
    expected = dict(zip(TEXTS, model.predict_proba(TEXTS)))
    atol = 1e-5 if model.runtime.precision == "fp32" else 2e-2
    assert not np.allclose(SentimentModel.from_pretrained(other).predict_proba(TEXTS[:4]),
                           model.predict_proba(TEXTS[:4]), atol=atol)
    app = create_app(served)

    def replace():
        if how == "rename":  # the careful way: a complete new folder renamed over the old one
            shutil.copytree(other, tmp_path / "incoming")
            shutil.rmtree(served)
            (tmp_path / "incoming").rename(served)
        else:  # the careless way: files deleted, then copied in one by one while requests arrive
            shutil.rmtree(served)
            served.mkdir()
            for path in sorted(other.iterdir()):
                shutil.copy2(path, served / path.name)
                time.sleep(0.01)

    started = time.perf_counter()
    answers = asyncio.run(hammer(app, requests, requests // 3, replace))
    seconds = time.perf_counter() - started
    app.state.batcher.close()
    record("fault", f"model folder replaced ({how}) under {requests:,} requests", requests=requests,
           seconds=round(seconds, 1))
    statuses = {status for _, status, _ in answers}
    assert len(answers) == requests and statuses <= {200, 503}, statuses
    for text, status, body in answers:
        if text.startswith("explain"):  # the new files are not the served model's: refused, never explained
            assert status == 503 and "changed since the server started" in body["detail"], body
        else:
            assert status == 200, body
            assert np.allclose(list(body[0]["scores"].values()), expected[text], atol=atol, rtol=0)
    assert any(text == "explain after" for text, _, _ in answers)
    assert create_app(served).state.slots  # the new folder is whole: a restarted server loads it


# ---------------------------------------------------------------- one study, two tuners


def test_two_tune_processes_share_one_study(tiny_model, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    synthetic_reviews(40, 0).to_parquet(data / "train.parquet")
    synthetic_reviews(20, 1).to_parquet(data / "test.parquet")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({"search_space": {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}}}))
    study = tmp_path / "study"
    args = ("tune", "--study", str(study), "--n-trials", "4", "--space", str(tmp_path / "space.yaml"),
            "--model", str(tiny_model), "--data", str(data), "--validation-size", "0.2", "--max-steps", "4",
            "--batch-size", "8", "--max-length", "64", "--output-dir", str(tmp_path / "runs"))
    tuners = [cli(*args, cwd=tmp_path) for _ in range(2)]
    results = [(tuner.wait(timeout=600), tuner.communicate()[1]) for tuner in tuners]
    record("fault", "two tune processes on one study")
    assert [code for code, _ in results] == [0, 0], [stderr[-2000:] for _, stderr in results]
    import optuna

    trials = optuna.load_study(study_name="study", storage=f"sqlite:///{study / 'study.db'}").trials
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))) and 4 <= len(trials) <= 5
    assert all(t.state.name in {"COMPLETE", "PRUNED"} for t in trials)
    for t in trials:  # each trial's folder is its own
        assert json.loads((study / "trials" / str(t.number) / "metrics.json").read_text())["trial"] == t.number
    assert yaml.safe_load((study / "best.yaml").read_text())["name"] == "study-best"
    assert json.loads((study / "summary.json").read_text())["study"] == "study"
    import matplotlib.image

    for png in (study / "plots").glob("*.png"):
        assert matplotlib.image.imread(png).ndim == 3  # whole images (two writers replace them atomically)
    assert not [p for p in (study / "plots").iterdir() if p.suffix != ".png"]
