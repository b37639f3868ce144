"""The HTTP service answers /health and /predict with the model's own probabilities."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from sentitune.predict import SentimentModel
from sentitune.serve import create_app


def test_predict_endpoint_matches_the_python_api(tiny_model):
    client = TestClient(create_app(tiny_model))
    assert client.get("/health").json()["status"] == "ok"
    texts = ["A wonderful, moving film.", "Dull and far too long."]
    answer = client.post("/predict", json={"texts": texts})
    assert answer.status_code == 200
    expected, _, _ = SentimentModel.from_pretrained(tiny_model).predict_proba(texts)
    assert np.allclose([p["positive"] for p in answer.json()], expected, atol=1e-6)
    assert all(p["label"] in {"negative", "positive"} and p["score"] >= 0.5 for p in answer.json())


def test_empty_request_is_rejected(tiny_model):
    client = TestClient(create_app(tiny_model))
    assert client.post("/predict", json={"texts": []}).status_code == 422
