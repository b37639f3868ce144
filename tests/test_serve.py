"""The HTTP service answers /health and /predict with the model's own probabilities for every class."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import numpy as np
import pytest
from conftest import tiny_bert
from fastapi.testclient import TestClient

from sentitune.inference.predict import SentimentModel
from sentitune.inference.serve import create_app


def test_predict_endpoint_matches_the_python_api(tiny_model):
    client = TestClient(create_app(tiny_model))
    assert (client.get("/health").json()["labels"] == ["negative", "positive"]
            or client.get("/health").json()["status"] == "ok")
    texts = ["A wonderful, moving film.", "Dull and far too long."]
    answer = client.post("/predict", json={"texts": texts})
    assert answer.status_code == 200
    expected = SentimentModel.from_pretrained(tiny_model).predict_proba(texts)
    assert np.allclose([list(p["scores"].values()) for p in answer.json()], expected, atol=1e-6)
    assert all(p["score"] == max(p["scores"].values()) for p in answer.json())


def test_three_classes_come_back_by_name(tmp_path):
    folder = tiny_bert(tmp_path / "three", num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"})
    client = TestClient(create_app(folder))
    assert client.get("/health").json()["labels"] == ["negative", "neutral", "positive"]
    body = client.post("/predict", json={"texts": ["meh"]}).json()[0]
    assert set(body["scores"]) == {"negative", "neutral", "positive"} and body["label"] in body["scores"]


def test_empty_request_is_rejected(tiny_model):
    client = TestClient(create_app(tiny_model))
    assert client.post("/predict", json={"texts": []}).status_code == 422


def test_hostile_requests_get_short_answers(tiny_model):
    client = TestClient(create_app(tiny_model, max_body=4096))
    json_header = {"content-type": "application/json"}
    big = client.post("/predict", content=b'{"texts": ["' + b"x" * 10_000 + b'"]}', headers=json_header)
    assert big.status_code == 413 and len(big.content) < 200
    bad = client.post("/predict", json={"texts": "not a list " * 50})
    assert bad.status_code == 422 and "not a list" not in bad.text  # the input is not echoed back
    surrogate = client.post("/predict", content=b'{"texts": ["ok \\ud800 fine"]}', headers=json_header)
    assert surrogate.status_code == 200 and surrogate.json()[0]["label"] in surrogate.json()[0]["scores"]
    long_text = client.post("/predict", json={"texts": ["y" * 20_001]})
    assert long_text.status_code in {413, 422}


@pytest.mark.parametrize("batching", [True, False])
def test_a_full_server_answers_503(tiny_model, batching):
    client = TestClient(create_app(tiny_model, max_in_flight=1, batching=batching))
    client.app.state.slots.acquire()  # one request in flight
    try:
        busy = client.post("/predict", json={"texts": ["a"]})
        assert busy.status_code == 503 and "busy" in busy.json()["detail"]
    finally:
        client.app.state.slots.release()
    assert client.post("/predict", json={"texts": ["a"]}).status_code == 200


@pytest.mark.parametrize("batching", [True, False])
def test_a_slow_answer_times_out_with_503(tiny_model, monkeypatch, batching):
    client = TestClient(create_app(tiny_model, timeout=0.3, batching=batching))
    plain = SentimentModel.predict_proba
    monkeypatch.setattr(SentimentModel, "predict_proba", lambda self, texts: (time.sleep(1.0), plain(self, texts))[1])
    slow = client.post("/predict", json={"texts": ["a"]})
    assert slow.status_code == 503 and "within 0.3 s" in slow.json()["detail"]


def test_a_body_that_never_arrives_times_out_with_408(tiny_model):
    app, sent = create_app(tiny_model, timeout=0.2), []

    async def receive():  # a client that opens a POST and never sends its body
        await asyncio.sleep(30)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1), "server": ("t", 80)}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    assert sent[0]["status"] == 408


# ---------------------------------------------------------------- micro-batching

TEXTS = ["Great.", "Dull and far too long, with a plot that goes nowhere and actors who look bored throughout.",
         "A wonderful, moving film.", "meh", "I laughed, I cried, I would watch it again tomorrow. " * 8, "No."]


def counting_predict_proba(monkeypatch) -> list[int]:
    """Patch SentimentModel.predict_proba to record how many texts each call scores."""
    calls, plain = [], SentimentModel.predict_proba
    monkeypatch.setattr(SentimentModel, "predict_proba", lambda self, texts, *a, **k: (
        calls.append(len(texts)), plain(self, texts, *a, **k))[1])
    return calls


async def post_all(app, bodies: list[dict]) -> list[httpx.Response]:
    """POST every body to /predict at once, in one event loop, as concurrent clients would."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await asyncio.gather(*(client.post("/predict", json=body) for body in bodies))


def request_texts(n: int = 16) -> list[list[str]]:
    """n requests of one to three texts of different lengths (so batches pad short texts to long ones)."""
    return [[TEXTS[(i + j) % len(TEXTS)] for j in range(1 + i % 3)] for i in range(n)]


@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_requests_match_scoring_each_alone(tiny_model, monkeypatch, batching):
    alone = SentimentModel.from_pretrained(tiny_model)
    expected = [alone.predict_proba(texts) for texts in request_texts()]
    # Padding is masked, so a batch changes only the order of float sums; bf16 (a GPU, an AMX CPU) rounds coarser.
    atol = 1e-5 if alone.runtime.precision == "fp32" else 2e-2
    app = create_app(tiny_model, batching=batching, max_wait_ms=50, max_in_flight=16)
    calls = counting_predict_proba(monkeypatch)
    answers = asyncio.run(post_all(app, [{"texts": texts} for texts in request_texts()]))
    assert [a.status_code for a in answers] == [200] * 16
    for answer, rows in zip(answers, expected):
        assert np.allclose([list(p["scores"].values()) for p in answer.json()], rows, atol=atol, rtol=0)
    assert sum(calls) == sum(map(len, request_texts()))
    if batching:
        assert len(calls) < 16 and app.state.batcher.batches == len(calls)
        app.state.batcher.close()
    else:
        assert len(calls) == 16 and app.state.batcher is None


def test_a_full_queue_answers_503_until_it_drains(tiny_model, monkeypatch):
    app = create_app(tiny_model, max_in_flight=2, max_wait_ms=0)
    gate, plain = threading.Event(), SentimentModel.predict_proba
    monkeypatch.setattr(SentimentModel, "predict_proba", lambda self, texts: (gate.wait(10), plain(self, texts))[1])

    async def scenario() -> tuple[list[int], int, int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            waiting = [asyncio.create_task(client.post("/predict", json={"texts": [t]})) for t in ("a", "b")]
            while app.state.slots._value:  # both requests admitted: one being scored, one queued
                await asyncio.sleep(0.01)
            full = await client.post("/predict", json={"texts": ["c"]})
            gate.set()
            answered = [r.status_code for r in await asyncio.gather(*waiting)]
            return answered, full, (await client.post("/predict", json={"texts": ["d"]})).status_code

    answered, full, after = asyncio.run(scenario())
    assert full.status_code == 503 and full.json() == {"detail": "busy: too many requests in flight; retry shortly"}
    assert answered == [200, 200] and after == 200
    app.state.batcher.close()


def fake_scores(texts: list[str]) -> np.ndarray:
    """One row per text that names it: (length, first character), so a misplaced row shows."""
    if any("bad" in t for t in texts):
        raise ValueError("cannot score 'bad'")
    return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def held_batcher(**kwargs):
    """A MicroBatcher whose first call waits for `release`, so the jobs submitted meanwhile queue up."""
    from sentitune.inference.microbatch import MicroBatcher

    release, sizes = threading.Event(), []

    def score(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        release.wait(10)
        return fake_scores(texts)

    batcher = MicroBatcher(score, **kwargs)
    first = batcher.submit(["hold"])
    while not sizes:
        time.sleep(0.005)
    return batcher, first, release, sizes


def test_batches_never_split_a_request_and_each_gets_its_rows():
    batcher, first, release, sizes = held_batcher(max_batch_texts=4, max_wait_ms=0)
    requests = [["aa", "b"], ["ccc"], ["dddd", "e", "ff", "g", "hhhhh"], ["i"], ["jj", "k"]]
    futures = [batcher.submit(texts) for texts in requests]
    release.set()
    for texts, future in zip(requests, futures):
        assert future.result(10).tolist() == fake_scores(texts).tolist()
    assert first.result(10).tolist() == [[4, ord("h")]]
    assert sizes == [1, 3, 5, 3]  # hold | aa b ccc | the five-text request alone | i jj k
    batcher.close()


def test_one_failing_request_does_not_fail_the_others_in_its_batch():
    batcher, _, release, sizes = held_batcher(max_wait_ms=0)
    good, bad, also_good = batcher.submit(["fine"]), batcher.submit(["bad text"]), batcher.submit(["ok"])
    release.set()
    assert good.result(10).tolist() == [[4, ord("f")]] and also_good.result(10).tolist() == [[2, ord("o")]]
    with pytest.raises(ValueError, match="bad"):
        bad.result(10)
    batcher.close()


def test_abandoned_and_expired_requests_are_not_scored():
    batcher, _, release, sizes = held_batcher(max_wait_ms=0)
    abandoned = batcher.submit(["abandoned"])
    assert abandoned.cancel()  # its client stopped waiting
    batcher.timeout = 0.0
    expired = batcher.submit(["expired"])
    batcher.timeout = float("inf")
    kept = batcher.submit(["kept"])
    release.set()
    assert kept.result(10).tolist() == [[4, ord("k")]]
    with pytest.raises(TimeoutError):
        expired.result(10)
    assert sizes == [1, 1]
    batcher.close()


# ---------------------------------------------------------------- the page at /


def test_the_page_and_its_files_are_served_with_a_strict_policy(tiny_model):
    client = TestClient(create_app(tiny_model))
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"] and "static/page.js" in page.text
    for name, kind in (("page.js", "text/javascript"), ("page.css", "text/css")):
        served = client.get(f"/static/{name}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
    assert client.get("/static/serve.py").status_code == 404
    assert client.get("/static/..%2Fserve.py").status_code == 404


def test_the_page_never_parses_text_as_html():
    from importlib import resources

    script = resources.files("sentitune.inference").joinpath("static", "page.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "setAttribute"):
        assert sink not in script
    assert "textContent" in script
