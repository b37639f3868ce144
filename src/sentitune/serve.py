"""Serve predictions over HTTP: `sentitune serve RUN` (FastAPI + uvicorn).

Guards a public endpoint needs: a body limit (413 with a short JSON message, checked before the body is read),
a per-text length limit, validation errors that do not echo the request back, lone UTF-16 surrogates replaced
instead of crashing the tokenizer, and a cap on requests in flight (503 when full) so a burst cannot pile up
memory. Binds 127.0.0.1 by default.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pydantic import BaseModel, Field

from .predict import SentimentModel, label_decision

MAX_BODY_BYTES = 1 << 20  # 1 MiB: about 1,000 reviews
MAX_TEXT_CHARS = 20_000  # a text longer than this is cut to the model's tokens anyway
MAX_IN_FLIGHT = 8  # requests being scored at once; more get 503 and may retry


class PredictRequest(BaseModel):
    texts: list[str] = Field(..., min_length=1, max_length=1024, description="Texts to classify.")


class Prediction(BaseModel):
    label: str = Field(..., description="The most probable class.")
    score: float = Field(..., description="Probability of the predicted class.")
    scores: dict[str, float] = Field(..., description="Every class's probability.")


def _clean(text: str) -> str:
    """The text with lone surrogates (invalid in UTF-8, legal in JSON escapes) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


def create_app(model_dir: str | Path, backend: str = "torch", max_body: int = MAX_BODY_BYTES,
               max_in_flight: int = MAX_IN_FLIGHT):
    """A FastAPI app with POST /predict and GET /health around one loaded model."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    model = SentimentModel.from_pretrained(model_dir, backend=backend)
    app = FastAPI(title="sentitune", description=f"Sentiment predictions from {model_dir}")
    slots = app.state.slots = threading.BoundedSemaphore(max_in_flight)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > max_body):
            return JSONResponse({"detail": f"request body over {max_body} bytes; send fewer or shorter texts"}, 413)
        if size is None and request.method == "POST":
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_body:
                    return JSONResponse({"detail": f"request body over {max_body} bytes; send fewer texts"}, 413)
            request._body = body
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def short_validation_error(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid")} for e in exc.errors()[:5]]
        return JSONResponse({"detail": errors}, 422)  # the input is not echoed back

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": str(model_dir), "backend": backend, "labels": list(model.labels.names),
                "max_length": model.max_length, "truncation": model.truncation}

    @app.post("/predict", response_model=list[Prediction])
    def predict(request: PredictRequest):
        too_long = next((i for i, t in enumerate(request.texts) if len(t) > MAX_TEXT_CHARS), None)
        if too_long is not None:
            return JSONResponse({"detail": f"texts[{too_long}] is over {MAX_TEXT_CHARS} characters"}, 422)
        if not slots.acquire(blocking=False):
            return JSONResponse({"detail": "busy: too many requests in flight; retry shortly"}, 503)
        try:
            probs = model.predict_proba([_clean(t) for t in request.texts])
        finally:
            slots.release()
        return [Prediction(**label_decision(row, model.labels.names)) for row in probs]

    return app


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, backend: str = "torch") -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(model_dir, backend), host=host, port=port, timeout_keep_alive=5)
