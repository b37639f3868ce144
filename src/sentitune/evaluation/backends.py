"""How each exported backend of a run's model compares with torch on the run's own test texts: accuracy, agreement
and speed, the evidence behind `--backend auto` (`sentitune export` writes it beside the graphs)."""

from __future__ import annotations

from pathlib import Path

from ..models.exported import exported_backends
from ..models.loading import model_folder
from ..run.folder import RunFolder, write_json


def backend_quality(model_dir: str | Path, n: int = 500) -> dict | None:
    """Accuracy, agreement with torch and speed of every exported backend on the first `n` test texts of the run
    the model folder belongs to (None outside a run), written to `onnx/quality.json`: the evidence behind
    `--backend auto` choosing int8."""
    import time

    from ..inference.predict import SentimentModel

    model_dir = model_folder(model_dir)
    run = RunFolder(model_dir.parent)
    if n <= 0 or not run.has_predictions():
        return None
    test = run.predictions().query("split == 'test'").head(n)
    texts, labels = test["text"].tolist(), test["label"].to_numpy()
    rows, reference = {}, None
    for backend in ["torch", *sorted(exported_backends(model_dir))]:
        model = SentimentModel.from_pretrained(model_dir, backend=backend)
        started = time.perf_counter()
        probs = model.predict_proba(texts)
        seconds = time.perf_counter() - started
        pred = probs.argmax(1)
        reference = pred if reference is None else reference
        rows[backend] = {"accuracy": float((pred == labels).mean()), "agreement_with_torch": float(
            (pred == reference).mean()), "examples_per_s": round(len(texts) / seconds, 1)}
    quality = {"texts": len(texts), "source": "the run's test split", "precision": model.runtime.precision,
               "cpu": model.runtime.cpu.summary(), "backends": rows}
    write_json(run.onnx_quality_path, quality)
    return quality
