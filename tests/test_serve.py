"""The HTTP service answers /health and /predict with the model's own probabilities for every class."""

from __future__ import annotations

import numpy as np
from conftest import tiny_bert
from fastapi.testclient import TestClient

from sentitune.predict import SentimentModel
from sentitune.serve import create_app


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


def test_a_full_server_answers_503(tiny_model):
    client = TestClient(create_app(tiny_model, max_in_flight=1))
    client.app.state.slots.acquire()  # one request in flight
    try:
        busy = client.post("/predict", json={"texts": ["a"]})
        assert busy.status_code == 503 and "busy" in busy.json()["detail"]
    finally:
        client.app.state.slots.release()
    assert client.post("/predict", json={"texts": ["a"]}).status_code == 200
