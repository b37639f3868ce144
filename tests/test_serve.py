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
