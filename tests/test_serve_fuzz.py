"""Schemathesis against the serve app's own OpenAPI schema: generated requests to every operation (valid ones and
invalid ones) get no 5xx and answers that match the schema; the limits (408, 413, 422, 503) answer as documented.

Bounded for the default suite (EXAMPLES per operation and mode); `benchmarks/serve_fuzz.py` runs every phase of
Schemathesis (examples, coverage, fuzzing, stateful) with many more."""

from __future__ import annotations

import asyncio
import datetime
import time

import httpx
import pytest
import schemathesis
from case_counts import FUZZ, Counter
from hypothesis import given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sentitune.inference.predict import SentimentModel
from sentitune.inference.serve import create_app

# (operation, mode): examples; GET /health has no input to make invalid
EXAMPLES = {("GET /health", "positive"): 5, ("POST /predict", "positive"): 100, ("POST /predict", "negative"): 100,
            ("POST /explain", "positive"): 40, ("POST /explain", "negative"): 60}
# what a limit's answer must satisfy: documented, with the documented body (a request refused for a limit is not
# "valid data rejected"; 503 is the documented answer of a full or slow server, not a server error)
LIMIT_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def schema(tiny_model):
    app = create_app(tiny_model)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    if app.state.batcher is not None:
        app.state.batcher.close()


def operation(schema, label: str):
    method, path = label.split(" ", 1)
    return schema[path][method]


def test_the_schema_lists_every_endpoint_and_documents_the_limits(schema):
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert labels == {label for label, _ in EXAMPLES}  # a new endpoint needs its entry in EXAMPLES
    for label in ("POST /predict", "POST /explain"):
        assert set(operation(schema, label).definition.raw["responses"]) == {"200", "408", "413", "422", "503"}


@pytest.mark.parametrize("label, mode", list(EXAMPLES))
def test_generated_requests_get_no_5xx_and_schema_conformant_answers(schema, label, mode):
    with Counter("schemathesis", f"{label} ({mode})") as count:
        @given(case=operation(schema, label).as_strategy(GenerationMode(mode)))
        @settings(max_examples=EXAMPLES[label, mode], **FUZZ)
        def run(case):
            count()
            case.call_and_validate()

        run()
    assert count.n > 0


def request_case(schema, label: str, body):
    return operation(schema, label).Case(body=body, media_type="application/json")


@pytest.mark.parametrize("label", ["POST /predict", "POST /explain"])
def test_limits_answer_as_documented(tiny_model, label, monkeypatch):
    path = label.split(" ")[1]
    app = create_app(tiny_model, max_body=512, max_in_flight=1, timeout=0.3, batching=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    valid = {"texts": ["fine"]} if path == "/predict" else {"text": "fine"}

    def answer(body, status: int):
        case = request_case(schema, label, body)
        response = case.call()
        assert response.status_code == status, response.text
        case.validate_response(response, checks=LIMIT_CHECKS + ([] if status == 503 else [not_a_server_error]))
        return response

    answer({"texts": ["x" * 600]} if path == "/predict" else {"text": "x" * 600}, 413)
    app_long = create_app(tiny_model, batching=False)
    long = {"texts": ["y" * 20_001]} if path == "/predict" else {"text": "y" * 20_001}
    case = request_case(schemathesis.openapi.from_asgi("/openapi.json", app_long), label, long)
    response = case.call()
    assert response.status_code == 422 and "20000" in response.text
    case.validate_response(response, checks=LIMIT_CHECKS)
    app.state.slots.acquire()  # every slot in flight
    try:
        assert "busy" in answer(valid, 503).json()["detail"]
    finally:
        app.state.slots.release()
    plain = SentimentModel.predict_proba
    monkeypatch.setattr(SentimentModel, "predict_proba", lambda self, texts, *a, **k: (time.sleep(1.0),
                                                                                       plain(self, texts, *a, **k))[1])
    if path == "/predict":
        assert "within 0.3 s" in answer(valid, 503).json()["detail"]


def test_a_body_that_never_arrives_answers_408_as_documented(tiny_model):
    app, sent = create_app(tiny_model, timeout=0.2), []
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    async def receive():  # a client that opens a POST and never sends its body
        await asyncio.sleep(30)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1), "server": ("t", 80)}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    response = httpx.Response(start["status"], headers=[(k.decode(), v.decode()) for k, v in start["headers"]],
                              content=body, request=httpx.Request("POST", "http://testserver/predict"))
    response.elapsed = datetime.timedelta(0)  # what a transport sets once the response is read
    assert response.status_code == 408
    request_case(schema, "POST /predict", {"texts": ["a"]}).validate_response(response, checks=LIMIT_CHECKS)


# Shrunk examples the fuzzer found, kept as regular tests.

def test_a_body_that_is_not_utf8_is_422_not_400(schema):
    from fastapi.testclient import TestClient

    response = TestClient(schema.app).post("/predict", content=b"\xfa\xfb\xfc:`",
                                           headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json() == {
        "detail": [{"loc": ["body"], "msg": "not UTF-8, UTF-16 or UTF-32 text"}]}
    request_case(schema, "POST /predict", {"texts": ["a"]}).validate_response(response, checks=LIMIT_CHECKS)


def test_validation_errors_match_the_documented_422(schema):
    case = request_case(schema, "POST /predict", "\x00")  # FastAPI's own 422 shape has a "type" we leave out
    response = case.call()
    assert response.status_code == 422 and set(response.json()["detail"][0]) == {"loc", "msg"}
    case.validate_response(response, checks=LIMIT_CHECKS)


def test_the_explain_target_lists_the_model_labels(schema):
    target = operation(schema, "POST /explain").definition.raw["requestBody"]["content"]["application/json"]["schema"]
    resolved = schema.raw_schema["components"]["schemas"][target["$ref"].rsplit("/", 1)[-1]]
    assert resolved["properties"]["target"]["enum"] == ["LABEL_0", "LABEL_1", None]


def test_the_app_still_scores_after_its_lifespan_ran_and_ended(tiny_model):
    from fastapi.testclient import TestClient

    app = create_app(tiny_model)
    for _ in range(2):  # Schemathesis' ASGI client runs the lifespan around each request
        with TestClient(app) as client:
            assert client.post("/predict", json={"texts": [""]}).status_code == 200
    app.state.batcher.close()  # shutting down: a request that still arrives is refused, not a 500
    answer = TestClient(app).post("/predict", json={"texts": ["late"]})
    assert answer.status_code == 503 and answer.json() == {"detail": "shutting down; retry shortly"}
    assert app.state.slots._value == app.state.slots._initial_value  # its slot was given back
