"""Export: a fine-tuned model as ONNX for onnxruntime, optionally int8-quantized, in the Hub's `onnx/` layout.

`export_onnx(model_dir)` writes, inside the model folder, `onnx/model.onnx` (fp32, with onnxruntime's transformer
fusions: one Attention, SkipLayerNorm and BiasGelu op per layer) and `onnx/model_quantized.onnx` (dynamic int8,
per-channel weights): the layout transformers.js and Optimum's `ORTModelForSequenceClassification.from_pretrained(
folder, subfolder="onnx", file_name=...)` read. `SentimentModel.from_pretrained(folder, backend="onnx-int8")`
predicts with it. `export_openvino(model_dir)` writes `openvino/openvino_model.xml` (+ `.bin`) for OpenVINO Runtime
(`backend="openvino"`), converted from torch with the last layer computing the first token only.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from ..core.errors import SentituneError
from ..core.extras import require
from ..core.io import atomic_dir, disk_space_checked
from ..models.exported import ONNX_FILES, OPENVINO_FILE
from ..models.loading import model_folder

log = logging.getLogger("sentitune")


def _export_graph(model_dir: Path, path: Path):
    """torch -> ONNX with dynamic batch and sequence axes; returns the model's config."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from ..models.loading import load_pretrained

    model = load_pretrained(str(model_dir), AutoModelForSequenceClassification, attn_implementation="eager").eval()
    ids = torch.full((2, 16), 1000, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}
    with warnings.catch_warnings():  # the TorchScript exporter: onnxruntime's fusions recognise its graphs
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, torch.ones_like(ids)), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return model.config


def _fused(raw: Path, out: Path, config) -> None:
    """onnxruntime's transformer fusions where it knows the architecture; the plain graph otherwise."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

    if config.model_type not in MODEL_TYPES:
        log.warning("onnxruntime has no fusions for %s; exporting the unfused graph.", config.model_type)
        raw.rename(out)
        return
    optimize_model(str(raw), model_type=config.model_type, num_heads=config.num_attention_heads,
                   hidden_size=config.hidden_size).save_model_to_file(str(out))
    raw.unlink()


def _quantized(src: Path, out: Path) -> None:
    """Dynamic int8: weights per output channel (per-tensor lost 0.65 points on IMDB; per-channel none,
    docs/benchmarks.md)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # onnxruntime's generic "consider pre-processing" advice
    try:
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.level = level


@disk_space_checked(lambda model_dir, *args, **kwargs: (f"export {model_dir}", Path(model_dir)))
def export_onnx(model_dir: str | Path, quantize: bool = True) -> list[Path]:
    """Write `onnx/model.onnx` (and `onnx/model_quantized.onnx`) into a saved model folder; returns the files.
    `backend_quality` then measures them against torch."""
    require("export", what="sentitune export")
    model_dir = model_folder(model_dir)
    if not (model_dir / "config.json").is_file():
        raise SentituneError(f"export {model_dir}: no config.json; pass a run folder or its model/ folder.")
    with atomic_dir(model_dir / "onnx") as tmp:
        config = _export_graph(model_dir, tmp / "raw.onnx")
        _fused(tmp / "raw.onnx", tmp / ONNX_FILES["onnx"], config)
        if quantize:
            _quantized(tmp / ONNX_FILES["onnx"], tmp / ONNX_FILES["onnx-int8"])
    return sorted((model_dir / "onnx").glob("*.onnx"))


def _logits_only(model):
    """The classifier as (input_ids, attention_mask) -> logits, the signature the converted graph keeps."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    return Logits().eval()


@disk_space_checked(lambda model_dir, *args, **kwargs: (f"export {model_dir}", Path(model_dir)))
def export_openvino(model_dir: str | Path) -> list[Path]:
    """Write `openvino/openvino_model.xml` (+ .bin, fp32 weights) into a saved model folder, converted from the torch
    model by OpenVINO with SDPA attention and the last layer computing the first token only (the head reads nothing
    else): 1.16x the same model converted from the fused ONNX graph on an AMX Xeon (docs/benchmarks.md)."""
    import torch

    from ..models.loading import load_pretrained
    from ..models.runtime import first_token_only

    require("openvino", what="sentitune export --backend openvino")
    model_dir = model_folder(model_dir)
    if not (model_dir / "config.json").is_file():
        raise SentituneError(f"export {model_dir}: no config.json; pass a run folder or its model/ folder.")
    import openvino as ov
    from transformers import AutoModelForSequenceClassification

    model = load_pretrained(str(model_dir), AutoModelForSequenceClassification, attn_implementation="sdpa").eval()
    ids = torch.full((2, 16), 1000, dtype=torch.long)
    spec = [(name, [-1, -1], ov.Type.i64) for name in ("input_ids", "attention_mask")]
    with warnings.catch_warnings(), torch.no_grad():  # the tracer's notes on shapes it keeps dynamic anyway
        warnings.simplefilter("ignore")
        graph = ov.convert_model(_logits_only(first_token_only(model)), example_input=(ids, torch.ones_like(ids)),
                                 input=spec)
    graph.outputs[0].get_tensor().set_names({"logits"})
    with atomic_dir(model_dir / OPENVINO_FILE.parent) as tmp:
        ov.save_model(graph, tmp / OPENVINO_FILE.name, compress_to_fp16=False)
    return sorted((model_dir / OPENVINO_FILE.parent).iterdir())
