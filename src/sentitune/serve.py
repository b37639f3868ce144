"""Serve predictions over HTTP: `sentitune serve RUN` (FastAPI + uvicorn)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from .predict import SentimentModel


class PredictRequest(BaseModel):
    texts: list[str] = Field(..., min_length=1, max_length=1024, description="Reviews to classify.")


class Prediction(BaseModel):
    label: str
    score: float = Field(..., description="Probability of the predicted label.")
    positive: float = Field(..., description="Probability of the positive label.")


def create_app(model_dir: str | Path, backend: str = "torch"):
    """A FastAPI app with POST /predict and GET /health around one loaded model."""
    from fastapi import FastAPI

    model = SentimentModel.from_pretrained(model_dir, backend=backend)
    app = FastAPI(title="sentitune", description=f"Sentiment predictions from {model_dir}")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": str(model_dir), "backend": backend, "max_length": model.max_length,
                "truncation": model.truncation}

    @app.post("/predict", response_model=list[Prediction])
    def predict(request: PredictRequest) -> list[Prediction]:
        prob, _, _ = model.predict_proba(request.texts)
        return [Prediction(label="positive" if p >= 0.5 else "negative", score=float(max(p, 1 - p)), positive=float(p)) for p in prob]

    return app


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, backend: str = "torch") -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(model_dir, backend), host=host, port=port)
