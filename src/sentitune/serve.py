"""Serve predictions over HTTP: `sentitune serve RUN` (FastAPI + uvicorn)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from .predict import SentimentModel, label_decision


class PredictRequest(BaseModel):
    texts: list[str] = Field(..., min_length=1, max_length=1024, description="Texts to classify.")


class Prediction(BaseModel):
    label: str = Field(..., description="The most probable class.")
    score: float = Field(..., description="Probability of the predicted class.")
    scores: dict[str, float] = Field(..., description="Every class's probability.")


def create_app(model_dir: str | Path, backend: str = "torch"):
    """A FastAPI app with POST /predict and GET /health around one loaded model."""
    from fastapi import FastAPI

    model = SentimentModel.from_pretrained(model_dir, backend=backend)
    app = FastAPI(title="sentitune", description=f"Sentiment predictions from {model_dir}")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": str(model_dir), "backend": backend, "labels": list(model.labels.names),
                "max_length": model.max_length, "truncation": model.truncation}

    @app.post("/predict", response_model=list[Prediction])
    def predict(request: PredictRequest) -> list[Prediction]:
        probs = model.predict_proba(request.texts)
        return [Prediction(**label_decision(row, model.labels.names)) for row in probs]

    return app


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, backend: str = "torch") -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(model_dir, backend), host=host, port=port)
