"""export: ONNX graphs that onnxruntime runs with the torch model's predictions, written atomically."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sentitune.core.errors import SentituneError
from sentitune.core.machine import Runtime
from sentitune.inference.export import export_onnx, export_openvino
from sentitune.inference.predict import SentimentModel
from sentitune.models.exported import onnx_path

TEXTS = ["a wonderful, moving film", "dull and far too long " * 30, "ok", "I hated every minute of it."]


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    import shutil

    folder = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(tiny_model, folder)
    return folder, export_onnx(folder)


def test_export_writes_the_hub_onnx_layout(exported):
    folder, files = exported
    assert [p.name for p in files] == ["model.onnx", "model_quantized.onnx"]
    assert all(p.parent == folder / "onnx" and p.stat().st_size > 0 for p in files)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_onnx_backends_agree_with_torch(exported):
    folder, _ = exported
    torch_logits = SentimentModel.from_pretrained(folder, backend="torch", runtime=Runtime.resolve("fp32")).score(
        TEXTS).logits
    fp32 = SentimentModel.from_pretrained(folder, backend="onnx")
    int8 = SentimentModel.from_pretrained(folder, backend="onnx-int8")
    assert fp32.default_batch_size == 1
    np.testing.assert_allclose(fp32.score(TEXTS).logits, torch_logits, atol=1e-4)
    np.testing.assert_allclose(fp32.score(TEXTS, batch_size=4).logits, torch_logits, atol=1e-4)  # padding masked
    assert np.abs(int8.score(TEXTS).logits - torch_logits).max() < 0.05
    assert ([p["label"] for p in fp32.predict(TEXTS)]
            == [p["label"] for p in SentimentModel.from_pretrained(folder, backend="torch").predict(TEXTS)])


def test_auto_backend_takes_int8_only_where_bf16_is_absent_and_it_was_exported(exported, tiny_model):
    folder, _ = exported
    assert SentimentModel.from_pretrained(folder, runtime=Runtime.resolve("fp32")).backend == "onnx-int8"
    assert SentimentModel.from_pretrained(folder, runtime=Runtime.resolve("bf16")).backend == "torch"
    assert SentimentModel.from_pretrained(tiny_model, runtime=Runtime.resolve("fp32")).backend == "torch"


def test_missing_graph_names_the_export_command(tiny_model):
    with pytest.raises(SentituneError, match=r"not found; run `sentitune export"):
        SentimentModel.from_pretrained(tiny_model, backend="onnx-int8")
    with pytest.raises(SentituneError, match="--backend tflite: use one of auto, torch, onnx, onnx-int8, openvino"):
        SentimentModel.from_pretrained(tiny_model, backend="tflite")


needs_openvino = pytest.mark.skipif(__import__("importlib").util.find_spec("openvino") is None,
                                    reason="the package openvino is not installed (pip install 'sentitune[openvino]')")


OPENVINO_THEN_SIGTERM = """
import gc, os, signal, sys, time
from pathlib import Path
from sentitune.core.machine import Runtime
from sentitune.inference.predict import SentimentModel

first, second = (SentimentModel.from_pretrained(Path(sys.argv[1]), backend="openvino", runtime=Runtime.resolve(p))
                 for p in ("fp32", "bf16"))
first.score(["fine"]), second.score(["fine"])
del first; gc.collect()
del second; gc.collect()  # released in the order they were compiled: OpenVINO restores a stack it freed
signal.signal(signal.SIGTERM, lambda *args: print("handled"))
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.1)
"""


@needs_openvino
def test_sigterm_reaches_its_handler_after_openvino_models_are_released(tmp_path):
    """OpenVINO's CPU plugin swaps the thread's alternate signal stack at compile time and restores the one it found
    on release: models released in the order they were compiled left it on freed memory, and SIGTERM then ended the
    process with SIGSEGV (exit 139) instead of running Python's handler."""
    from conftest import tiny_bert

    folder = tiny_bert(tmp_path / "m")
    export_openvino(folder)
    result = subprocess.run([sys.executable, "-c", OPENVINO_THEN_SIGTERM, str(folder)], capture_output=True,
                            text=True, timeout=120)
    assert (result.returncode, result.stdout.strip()) == (0, "handled"), result.stderr[-2000:]


@needs_openvino
def test_openvino_export_agrees_with_torch_for_any_number_of_classes(tmp_path):
    """The converted graph (first-token last layer, dynamic batch and length) gives torch's logits, padding masked;
    three classes as two."""
    from conftest import tiny_bert

    for classes in (2, 3):
        folder = tiny_bert(tmp_path / f"m{classes}", num_labels=classes)
        files = export_openvino(folder)
        assert [p.name for p in files] == ["openvino_model.bin", "openvino_model.xml"]
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # built aside, then renamed
        fp32 = Runtime.resolve("fp32")
        expected = SentimentModel.from_pretrained(folder, backend="torch", runtime=fp32).score(TEXTS).logits
        model = SentimentModel.from_pretrained(folder, backend="openvino", runtime=fp32)
        assert model.backend == "openvino" and model.default_batch_size == 16
        assert SentimentModel.from_pretrained(folder, runtime=Runtime.resolve("bf16")).backend == "openvino"
        assert SentimentModel.from_pretrained(folder, runtime=fp32).backend == "torch"  # no int8 graph here
        assert model.score(TEXTS).logits.shape == (len(TEXTS), classes)
        np.testing.assert_allclose(model.score(TEXTS).logits, expected, atol=1e-4)
        np.testing.assert_allclose(model.score(TEXTS, batch_size=1).logits, expected, atol=1e-4)
    bf16 = SentimentModel.from_pretrained(folder, backend="openvino", runtime=Runtime.resolve("bf16"))
    assert np.abs(bf16.score(TEXTS).logits - expected).max() < 0.05  # OpenVINO's bf16 kernels


@needs_openvino
def test_openvino_backend_scores_from_several_threads_at_once(tiny_model, tmp_path):
    """`serve --no-batching` calls the model from several threads: each gets its own infer request."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    export_openvino(folder)
    model = SentimentModel.from_pretrained(folder, backend="openvino", runtime=Runtime.resolve("fp32"))
    batches = [TEXTS[i:] + TEXTS[:i] for i in range(len(TEXTS))] * 4
    alone = [model.predict_proba(b) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(model.predict_proba, batches))
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_openvino_without_the_package_says_how_to_install(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    with pytest.raises(SentituneError, match=r"pip install 'sentitune\[openvino\]'"):
        export_openvino(tiny_model)
    with pytest.raises(SentituneError, match=r"not found; run `sentitune export .* --backend openvino` first"):
        SentimentModel.from_pretrained(tiny_model, backend="openvino")


def test_export_rejects_a_folder_without_a_model(tmp_path):
    with pytest.raises(SentituneError, match="no config.json"):
        export_onnx(tmp_path)


def test_cli_export_then_predict_with_int8(tiny_model, tmp_path):
    import shutil

    from test_cli import sentitune as cli  # the real entry point, in this process

    from sentitune.core.metrics import softmax
    from sentitune.run.folder import RunFolder, prediction_columns

    shutil.copytree(tiny_model, tmp_path / "run" / "model")
    logits = np.zeros((len(TEXTS), 2), dtype=np.float32)
    RunFolder(tmp_path / "run").write_predictions(pd.DataFrame({
        "split": "test", "idx": range(len(TEXTS)), "text": TEXTS, "label": [1, 0, 1, 0],
        **prediction_columns(softmax(logits), logits)}))
    out = cli("export", str(tmp_path / "run"), "--backend", "onnx,onnx-int8")
    assert out.returncode == 0, out.stderr
    assert "model_quantized.onnx" in out.stdout and onnx_path(tmp_path / "run" / "model", "onnx-int8").is_file()
    assert not (tmp_path / "run" / "model" / "openvino").exists()
    quality = json.loads((tmp_path / "run" / "model" / "onnx" / "quality.json").read_text())
    assert quality["texts"] == 4 and set(quality["backends"]) == {"torch", "onnx", "onnx-int8"}
    assert quality["backends"]["onnx"]["agreement_with_torch"] == 1.0
    assert "onnx-int8: accuracy" in out.stdout
    out = cli("predict", str(tmp_path / "run"), "great film", "--backend", "onnx-int8")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["label"] in {"LABEL_0", "LABEL_1"}  # the stand-in model's own names


@needs_openvino
def test_cli_export_writes_openvino_when_installed_and_predict_uses_it(tiny_model, tmp_path):
    import shutil

    from test_cli import sentitune as cli

    shutil.copytree(tiny_model, tmp_path / "model")
    out = cli("export", str(tmp_path / "model"), "--check", "0")
    assert out.returncode == 0, out.stderr
    assert "openvino_model.xml" in out.stdout and onnx_path(tmp_path / "model", "openvino").is_file()
    out = cli("predict", str(tmp_path / "model"), "great film", "--backend", "openvino")
    assert out.returncode == 0, out.stderr
    expected = SentimentModel.from_pretrained(tmp_path / "model", backend="openvino").predict(["great film"])[0]
    assert json.loads(out.stdout.splitlines()[-1])["label"] == expected["label"]


def test_serve_with_the_int8_backend(exported):
    from fastapi.testclient import TestClient

    from sentitune.inference.serve import create_app

    folder, _ = exported
    client = TestClient(create_app(folder, backend="onnx-int8"))
    assert client.get("/health").json()["backend"] == "onnx-int8"
    answer = client.post("/predict", json={"texts": TEXTS}).json()
    expected = SentimentModel.from_pretrained(folder, backend="onnx-int8").predict(TEXTS)
    assert [a["label"] for a in answer] == [e["label"] for e in expected]


def test_five_star_run_through_train_export_predict_and_serve(tmp_path):
    """Five ordered classes end to end on the tiny model: train, export, the int8 backend, serve."""
    import pandas as pd
    from conftest import synthetic_reviews, tiny_bert
    from fastapi.testclient import TestClient

    from sentitune.inference.serve import create_app
    from sentitune.run.config import load_config
    from sentitune.training.train import train

    rows = synthetic_reviews(50)
    rows = rows.assign(label=[f"{1 + (i % 5)} star{'s' if i % 5 else ''}" for i in range(len(rows))],
                       text=[f"{t} take {i % 5}" for i, t in enumerate(rows.text)])
    rows.to_csv(tmp_path / "stars.csv", index=False)
    cfg = load_config(overrides={"model": str(tiny_bert(tmp_path / "m")), "output_dir": str(tmp_path / "runs"),
                                 "name": "stars", "max_steps": 4, "batch_size": 8, "max_length": 32, "eval_steps": 2,
                                 "data": {"data": str(tmp_path / "stars.csv"), "validation_size": 0.2}})
    run = train(cfg)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["labels"]["names"] == ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
    assert metrics["labels"]["ordinal"] and {"mae", "qwk", "within_one"} <= set(metrics["test"])
    export_onnx(run)
    texts = rows.text.tolist()[:6]
    fp32 = Runtime.resolve("fp32")
    torch_probs = SentimentModel.from_pretrained(run, backend="torch", runtime=fp32).predict_proba(texts)
    onnx_probs = SentimentModel.from_pretrained(run, backend="onnx").predict_proba(texts)
    assert torch_probs.shape == (6, 5) and np.allclose(onnx_probs, torch_probs, atol=1e-4)
    body = TestClient(create_app(run / "model", backend="onnx-int8")).post("/predict", json={"texts": texts[:2]}).json()
    assert [len(b["scores"]) for b in body] == [5, 5] and all(b["label"].endswith(("star", "stars")) for b in body)
    assert pd.read_parquet(run / "predictions.parquet").filter(like="prob_").shape[1] == 5
