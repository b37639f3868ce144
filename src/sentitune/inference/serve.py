"""Serve predictions over HTTP: `sentitune serve RUN` (FastAPI + uvicorn); POST /explain scores each word, and
GET / is a page to try both (static/index.html: plain HTML and JavaScript, nothing fetched from elsewhere).

Concurrent /predict requests are micro-batched (microbatch.py): queued and scored together in one model call,
which keeps one scoring thread busy instead of several fighting over the cores; `batching=False`
(`--no-batching`) scores each request in its own thread, at most `max_in_flight` at once.

Guards a public endpoint needs: a body limit (413 with a short JSON message, checked before the body is read),
a per-text length limit, validation errors that do not echo the request back, lone UTF-16 surrogates replaced
instead of crashing the tokenizer, and a cap on requests in flight (503 when full) so a burst cannot pile up
memory, and a deadline per request (408 when the body does not arrive in time, 503 when scoring takes too
long). uvicorn's own `limit_concurrency` bounds open connections, so a flood cannot starve /health either.
Binds 127.0.0.1 by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from ..core.extras import require
from ..models.loading import model_folder
from .microbatch import MAX_BATCH_TEXTS, MAX_WAIT_MS, Closed, MicroBatcher
from .predict import SentimentModel, label_decision

MAX_BODY_BYTES = 1 << 20  # 1 MiB: about 1,000 reviews
MAX_TEXT_CHARS = 20_000  # a text longer than this is cut to the model's tokens anyway
MAX_IN_FLIGHT = 8  # without batching: requests being scored at once; more get 503 and may retry
MAX_QUEUED = 256  # with batching: requests waiting or being scored; they cost memory, not cores
REQUEST_TIMEOUT_S = 30.0  # to receive a body, and again to answer it
MAX_CONNECTIONS = 512  # uvicorn answers 503 beyond this
ASSETS = {"index.html": "text/html; charset=utf-8", "page.js": "text/javascript; charset=utf-8",
          "page.css": "text/css; charset=utf-8"}
# The page loads only its own files and talks only to this server, so injected markup could not run a script.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                                           "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
                                           "frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class PredictRequest(BaseModel):
    texts: list[str] = Field(..., min_length=1, max_length=1024, description="Texts to classify.")


class Prediction(BaseModel):
    label: str = Field(..., description="The most probable class.")
    score: float = Field(..., description="Probability of the predicted class.")
    scores: dict[str, float] = Field(..., description="Every class's probability.")


class ExplainRequest(BaseModel):
    text: str = Field(..., description="The text to explain.")
    target: str | None = Field(None, description="The class to explain (default: the predicted one).")


class WordScore(BaseModel):
    word: str
    start: int = Field(..., description="Character span of the word in the text sent.")
    end: int
    score: float = Field(..., description="Attribution, max |score| = 1: > 0 for the target class, < 0 against.")


class Explained(BaseModel):
    label: str = Field(..., description="The most probable class.")
    target: str = Field(..., description="The class explained.")
    scores: dict[str, float] = Field(..., description="Every class's probability.")
    delta: float = Field(..., description="Integrated Gradients convergence delta (probability units).")
    words: list[WordScore]


class ErrorPlace(BaseModel):
    loc: list[str | int] = Field(..., description="Where in the request: e.g. [\"body\", \"texts\", 0].")
    msg: str


class Problem(BaseModel):
    detail: str | list[ErrorPlace] = Field(..., description="What was wrong (the input is not echoed back).")


def _documented(*statuses: int) -> dict:
    """OpenAPI `responses` for the limits every request of an operation may meet."""
    what = {408: "The request body did not arrive in time.", 413: "The request body is over the size limit.",
            422: "The request is invalid: not JSON, a wrong type, an empty or too long list, a text too long, or "
                 "an unknown target.",
            503: "Busy (too many requests in flight) or not answered in time; retry shortly."}
    return {status: {"model": Problem, "description": what[status]} for status in statuses}


def _clean(text: str) -> str:
    """The text with lone surrogates (invalid in UTF-8, legal in JSON escapes) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


class BodyTooLarge(Exception):
    pass


async def read_body(request, limit: int) -> bytes:
    """The request body, stopping as soon as it passes `limit` bytes (a missing or lying content-length)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return body


def _undecodable(body: bytes) -> bool:
    """Whether `body` is not text in an encoding JSON allows (FastAPI would answer 400 instead of 422)."""
    try:
        body.decode(json.detect_encoding(body), "surrogatepass")
    except UnicodeDecodeError:
        return True
    return False


@functools.cache
def asset(name: str) -> bytes:
    """One of the page's files, shipped in the package (static/)."""
    return resources.files("sentitune.inference").joinpath("static", name).read_bytes()


class ModelChanged(Exception):
    """The model folder is not the one the server loaded at start."""


def model_stamps(model_dir: str | Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of each file of the model folder: saving or replacing the model changes them."""
    folder = model_folder(model_dir)
    try:
        return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}
    except OSError:
        return {}


class Service:
    """What the routes of one app share: the loaded model, the micro-batcher, the limits and the slots that count
    the /predict and /explain requests admitted (waiting or being scored)."""

    def __init__(self, model_dir: str | Path, model: SentimentModel, batcher: MicroBatcher | None, max_body: int,
                 max_in_flight: int, timeout: float):
        self.model_dir, self.model, self.batcher = model_dir, model, batcher
        self.max_body, self.timeout = max_body, timeout
        self.slots = threading.BoundedSemaphore(max_in_flight)
        # Captum hooks the embedding layer while it explains, so explanations run one at a time on a torch copy
        # of their own (never on the network /predict is running), loaded on the first request: from the same files
        # as the served model, or not at all (the folder may have been replaced since the server started).
        self.explaining = threading.Lock()
        self.stamps = model_stamps(model_dir)
        self._explainer: SentimentModel | None = None

    @property
    def explainer(self) -> SentimentModel:
        if self._explainer is None:
            try:
                loaded = SentimentModel.from_pretrained(self.model_dir, backend="torch", runtime=self.model.runtime)
            except Exception:  # the folder is being replaced (files missing or half there)
                loaded = None
            if loaded is None or model_stamps(self.model_dir) != self.stamps:
                raise ModelChanged
            self._explainer = loaded
        return self._explainer

    def predictions(self, probs) -> list[Prediction]:
        return [Prediction(**label_decision(row, self.model.labels.names)) for row in probs]

    def health(self) -> dict:
        model = self.model
        return {"status": "ok", "model": str(self.model_dir), "backend": model.backend,
                "labels": list(model.labels.names), "max_length": model.max_length, "truncation": model.truncation,
                "batching": self.batcher is not None}


def _answer(status: int, detail: str):
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": detail}, status)


def _busy():
    return _answer(503, "busy: too many requests in flight; retry shortly")


def _late(service: Service):
    return _answer(503, f"not answered within {service.timeout:g} s; retry with fewer texts")


def _text_error(texts: list[str]):
    """422 naming the first text over MAX_TEXT_CHARS, or None."""
    too_long = next((i for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS), None)
    return None if too_long is None else _answer(422, f"texts[{too_long}] is over {MAX_TEXT_CHARS} characters")


def add_guard(app, service: Service) -> None:
    """The middleware every request passes: the body limit (413), the time to receive a body (408) and the time
    to answer (503)."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    too_large = f"request body over {service.max_body} bytes; send fewer or shorter texts"

    @app.middleware("http")
    async def guard(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > service.max_body):
            return _answer(413, too_large)
        try:
            if request.method == "POST":
                request._body = await asyncio.wait_for(read_body(request, service.max_body), service.timeout)
        except BodyTooLarge:
            return _answer(413, too_large)
        except asyncio.TimeoutError:
            return _answer(408, f"request body not received within {service.timeout:g} s")
        if request.method == "POST" and _undecodable(request._body):
            return JSONResponse({"detail": [{"loc": ["body"], "msg": "not UTF-8, UTF-16 or UTF-32 text"}]}, 422)
        try:
            return await asyncio.wait_for(call_next(request), service.timeout)
        except asyncio.TimeoutError:  # the scoring thread finishes and frees its slot; the client is told now
            return _late(service)


def add_validation_errors(app) -> None:
    """422 with where and what for at most five errors; the input is not echoed back."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    @app.exception_handler(RequestValidationError)
    async def short_validation_error(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid")} for e in exc.errors()[:5]]
        return JSONResponse({"detail": errors}, 422)


def add_page(app) -> None:
    """GET / and its files (static/), outside the API schema."""
    from fastapi.responses import Response

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return Response(asset("index.html"), media_type=ASSETS["index.html"], headers=PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    def no_icon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str) -> Response:
        if name not in ASSETS:
            return _answer(404, "not found")
        return Response(asset(name), media_type=ASSETS[name], headers=PAGE_HEADERS)


def add_health(app, service: Service) -> None:
    @app.get("/health", responses=_documented(413, 503))
    def health() -> dict:
        return service.health()


def add_predict(app, service: Service) -> None:
    """POST /predict: micro-batched with a batcher, else scored in the request's own thread."""
    slots, batcher = service.slots, service.batcher
    if batcher is not None:
        @app.post("/predict", response_model=list[Prediction], responses=_documented(408, 413, 422, 503))
        async def predict_batched(request: PredictRequest):
            if (error := _text_error(request.texts)) is not None:
                return error
            if not slots.acquire(blocking=False):
                return _busy()
            try:
                future = batcher.submit([_clean(t) for t in request.texts])
            except Closed:
                slots.release()
                return _answer(503, "shutting down; retry shortly")
            except BaseException:
                slots.release()
                raise
            future.add_done_callback(lambda _: slots.release())  # when scored, failed, or dropped unscored
            try:
                return service.predictions(await asyncio.wrap_future(future))
            except TimeoutError:
                return _late(service)
    else:
        @app.post("/predict", response_model=list[Prediction], responses=_documented(408, 413, 422, 503))
        def predict(request: PredictRequest):
            if (error := _text_error(request.texts)) is not None:
                return error
            if not slots.acquire(blocking=False):
                return _busy()
            try:
                probs = service.model.predict_proba([_clean(t) for t in request.texts])
            finally:
                slots.release()
            return service.predictions(probs)


def add_explain(app, service: Service) -> None:
    """POST /explain: one explanation at a time, counted in the same slots as /predict."""
    from pydantic import create_model

    names = service.model.labels.names
    # the schema lists the model's labels; the check below answers an unknown one with the labels to use
    target = Field(None, description="The class to explain (default: the predicted one).",
                   json_schema_extra={"enum": [*names, None]})
    request_model = create_model("ExplainRequest", __base__=ExplainRequest, target=(str | None, target))

    def explain_text(request: ExplainRequest):
        from .explain import explain

        if len(request.text) > MAX_TEXT_CHARS:
            return _answer(422, f"text is over {MAX_TEXT_CHARS} characters")
        if request.target is not None and request.target not in names:
            return _answer(422, f"target is not a label of this model; use one of {', '.join(names)}")
        if not service.slots.acquire(blocking=False):
            return _busy()
        try:
            if not service.explaining.acquire(blocking=False):
                return _answer(503, "busy: an explanation is running; retry shortly")
            try:
                return explain(service.explainer, _clean(request.text), request.target).to_dict()
            except ModelChanged:
                return _answer(503, f"the model folder {service.model_dir} changed since the server started; "
                                    "restart the server to explain with the new model")
            finally:
                service.explaining.release()
        finally:
            service.slots.release()

    explain_text.__annotations__["request"] = request_model  # this app's model, not the annotation's name
    app.post("/explain", response_model=Explained, responses=_documented(408, 413, 422, 503))(explain_text)


def create_app(model_dir: str | Path, backend: str = "auto", max_body: int = MAX_BODY_BYTES,
               max_in_flight: int | None = None, timeout: float = REQUEST_TIMEOUT_S, batching: bool = True,
               max_batch_texts: int = MAX_BATCH_TEXTS, max_wait_ms: float = MAX_WAIT_MS):
    """A FastAPI app with POST /predict, POST /explain, GET /health and the page at GET / around one loaded model.

    `max_in_flight`: /predict and /explain requests admitted at once, waiting or being scored (default
    MAX_QUEUED with batching, MAX_IN_FLIGHT without); `app.state.slots` counts them. With `batching`, the
    requests that arrive within `max_wait_ms` of each other are scored together, up to `max_batch_texts` texts."""
    require("serve", what="sentitune serve")
    from fastapi import FastAPI

    model = SentimentModel.from_pretrained(model_dir, backend=backend)
    # Looked up on every call, not bound now, so a patched SentimentModel.predict_proba is the one used.
    batcher = MicroBatcher(lambda texts: model.predict_proba(texts), max_batch_texts, max_wait_ms, timeout) \
        if batching else None
    service = Service(model_dir, model, batcher, max_body,
                      max_in_flight or (MAX_QUEUED if batching else MAX_IN_FLIGHT), timeout)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if batcher is not None:
            batcher.open()  # a lifespan may start again after it ended (test clients, servers that restart it)
        yield
        if batcher is not None:
            batcher.close()

    app = FastAPI(title="sentitune", description=f"Sentiment predictions from {model_dir}", lifespan=lifespan)
    app.state.batcher, app.state.slots = batcher, service.slots
    add_guard(app, service)
    add_validation_errors(app)
    add_health(app, service)
    add_page(app)
    add_predict(app, service)
    add_explain(app, service)
    return app


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, backend: str = "auto",
          batching: bool = True, max_in_flight: int | None = None) -> None:
    """Run the app with uvicorn until interrupted."""
    require("serve", what="sentitune serve")
    import uvicorn

    app = create_app(model_dir, backend, batching=batching, max_in_flight=max_in_flight)
    uvicorn.run(app, host=host, port=port, timeout_keep_alive=5, limit_concurrency=MAX_CONNECTIONS)
