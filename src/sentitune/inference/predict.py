"""Prediction: fast batch inference (length-sorted batches, dynamic padding, bf16 where the hardware has it).

`SentimentModel.from_pretrained(path).predict(texts)` is the public face: every class's probability per
text; `predict_proba` returns the (n, K) matrix that `evaluate` and the baselines use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ..core.errors import SentituneError
from ..core.labels import LabelScheme
from ..core.machine import Runtime, pick_backend
from ..core.metrics import softmax
from ..core.preemption import sound_signal_stack
from ..data import clean_text, model_token_limit, special_tokens_around, tokenize_function
from ..models.exported import exported_backends, onnx_path, require_runtime
from ..models.loading import load_classifier, load_tokenizer, model_folder

BACKENDS = ("auto", "torch", "onnx", "onnx-int8", "openvino")


PAD_MULTIPLE = 8  # as in training: few distinct shapes, so oneDNN's cache of kernels per shape stays small


def _padded(batch: list[list[int]], pad_id: int, device: torch.device, multiple: int = 1,
            limit: int | None = None) -> dict[str, torch.Tensor]:
    """Right-padded ids and mask, the width rounded up to `multiple` (never past `limit`, the model's positions)."""
    longest = max(map(len, batch))
    width = -(-longest // multiple) * multiple
    width = min(width, max(limit, longest)) if limit else width
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


@torch.inference_mode()
def batched_rows(model, input_ids: list[list[int]], pad_id: int, reduce, batch_size: int = 64,
                 runtime: Runtime | None = None) -> np.ndarray:
    """`reduce(outputs, attention_mask)` for tokenized inputs, run in length-sorted batches, returned in input order.

    Autocast applies to fp32 torch weights only: a model already in bf16/fp16, or an onnxruntime one, runs as it is."""
    if batch_size < 1:
        raise SentituneError(f"--batch-size {batch_size}: must be at least 1.")
    runtime = runtime or Runtime.resolve()
    device, cast, multiple, limit = torch.device("cpu"), False, 1, None
    if isinstance(model, torch.nn.Module):
        # torch on CPU keeps a compiled kernel per input shape (up to 1,024): with exact widths their memory grows
        # for minutes over a long job as rarer lengths turn up (+21% peak from 10k to 1M rows, docs/benchmarks.md)
        weight = next(model.parameters())
        device, cast, multiple = weight.device, weight.dtype == torch.float32, PAD_MULTIPLE
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    model.eval()
    order = np.argsort([len(x) for x in input_ids], kind="stable")[::-1]
    rows = [None] * len(input_ids)
    with torch.autocast(device.type, dtype=runtime.dtype, enabled=cast and runtime.precision != "fp32"):
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = _padded([input_ids[i] for i in chunk], pad_id, device, multiple, limit)
            out = reduce(model(**batch), batch["attention_mask"]).float().cpu().numpy()
            for i, row in zip(chunk, out):
                rows[i] = row
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def _logits(outputs, attention_mask) -> torch.Tensor:
    return outputs.logits.float()


def logits_for_ids(model, input_ids: list[list[int]], pad_id: int, batch_size: int = 64,
                   runtime: Runtime | None = None) -> np.ndarray:
    """(n, K) logits for already tokenized inputs, in the input order."""
    return batched_rows(model, input_ids, pad_id, _logits, batch_size, runtime).astype(np.float32)


class OnnxClassifier:
    """An exported ONNX graph (`sentitune export`) run by onnxruntime, driven by `batched_rows` like the torch model.
    `batch_size`: the fastest measured here, one review at a time (no padding)."""

    batch_size = 1

    def __init__(self, path: Path, config, runtime: Runtime):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = runtime.threads or torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.config = config

    def eval(self) -> "OnnxClassifier":
        return self

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["logits"], feed)[0]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        feed = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        return SimpleNamespace(logits=torch.from_numpy(self.run(feed)))


class OpenVinoClassifier(OnnxClassifier):
    """The OpenVINO model `sentitune export` wrote, compiled for the CPU at the runtime's precision (bf16 on a CPU
    with native bf16: OpenVINO's kernels, AMX where the CPU has it). Batches of 16, sorted by length (32 measured
    the same on an AMX Xeon, docs/benchmarks.md)."""

    batch_size = 16

    def __init__(self, path: Path, config, runtime: Runtime):
        import openvino as ov

        settings = {"INFERENCE_PRECISION_HINT": "bf16" if runtime.precision == "bf16" else "f32",
                    "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": runtime.threads or torch.get_num_threads()}
        self.compiled = ov.Core().compile_model(str(path), "CPU", settings)
        sound_signal_stack()  # OpenVINO swapped the thread's signal stack for one it frees with the model
        self.config, self._local = config, threading.local()

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        # an infer request is not thread-safe: one per thread (`serve --no-batching` scores in several)
        if not hasattr(self._local, "request"):
            self._local.request = self.compiled.create_infer_request()
        return self._local.request.infer(feed)[self.compiled.output("logits")].copy()


def _exported_classifier(path: Path, backend: str, trust_remote_code: bool, runtime: Runtime) -> OnnxClassifier:
    from ..models.loading import load_config

    graph = onnx_path(path, backend)
    if not graph.is_file():
        flag = f" --backend {backend}" if backend == "openvino" else ""
        raise SentituneError(f"--backend {backend}: {graph} not found; run `sentitune export {path}{flag}` first.")
    require_runtime(backend, f"--backend {backend}")
    runner = OpenVinoClassifier if backend == "openvino" else OnnxClassifier
    return runner(graph, load_config(str(path), trust_remote_code), runtime)


@dataclass
class Scored:
    """Predictions for a list of texts: class probabilities and logits (n, K) and tokens per text."""

    probs: np.ndarray
    logits: np.ndarray
    n_tokens: np.ndarray


class SentimentModel:
    """A fine-tuned sentiment classifier with its tokenizer, label scheme and the preprocessing it was trained with."""

    def __init__(self, model, tokenizer, runtime: Runtime | None = None):
        self.model, self.tokenizer, self._fast, self.backend = model, tokenizer, None, "torch"
        self.runtime = runtime or Runtime.resolve()
        settings = getattr(model.config, "sentitune", None) or {}
        # what training decided (a model from elsewhere: as many tokens as it reads)
        self.max_length = int(settings.get("max_length") or model_token_limit(tokenizer))
        self.truncation = settings.get("truncation", "head+tail")
        self.clean = settings.get("clean", True)
        self.labels = LabelScheme.from_model_config(model.config)

    @classmethod
    def from_pretrained(cls, path: str | Path, trust_remote_code: bool = False, backend: str = "auto",
                        runtime: Runtime | None = None) -> "SentimentModel":
        """Load a saved model folder (or a run folder). `backend`: torch, or what `sentitune export` wrote: the ONNX
        graphs onnx (fp32) or onnx-int8 for onnxruntime, or openvino (OpenVINO Runtime); auto: when exported,
        openvino on a CPU with native bf16 and onnx-int8 on one without, else torch (`self.backend` says which)."""

        path = model_folder(path)
        if backend not in BACKENDS:
            raise SentituneError(f"--backend {backend}: use one of {', '.join(BACKENDS)}.")
        if not (path / "config.json").is_file():
            raise SentituneError(f"{path}: no saved model (config.json); pass a run folder or its model/ folder.")
        runtime = runtime or Runtime.resolve()
        backend = pick_backend(backend, runtime.precision, runtime.on_cpu, exported_backends(path))
        tokenizer = load_tokenizer(str(path), trust_remote_code)
        if backend != "torch":
            loaded = cls(_exported_classifier(path, backend, trust_remote_code, runtime), tokenizer, runtime)
        else:
            loaded = cls(load_classifier(str(path), trust_remote_code=trust_remote_code).to(runtime.device),
                         tokenizer, runtime)
        loaded.backend = backend
        return loaded

    @property
    def default_batch_size(self) -> int:
        """Fastest measured here: the exported backend's own (onnxruntime one review at a time, no padding;
        OpenVINO 16), 16 for torch on a CPU, 64 on a GPU."""
        if isinstance(self.model, OnnxClassifier):
            return self.model.batch_size
        return 16 if self.runtime.on_cpu else 64

    def model_at(self):
        """The network to run. bf16 on CPU runs `runtime.inference_copy`, made once: bf16 weights (~1.1x the speed
        of autocast over fp32 weights) and a last layer that computes the first token only (1.18x, exact;
        docs/benchmarks.md). The copy assumes `self.model` is not modified afterwards."""
        if isinstance(self.model, OnnxClassifier) or self.runtime.precision != "bf16" or not self.runtime.on_cpu:
            return self.model
        if self._fast is None:
            from ..models.runtime import inference_copy

            self._fast = inference_copy(self.model)
        return self._fast

    def score(self, texts: list[str], batch_size: int | None = None, max_length: int | None = None,
              truncation: str | None = None, clean: bool | None = None, windows: bool = False) -> Scored:
        """Class probabilities, logits and token counts per text (batch_size None: `default_batch_size`).

        `windows=True` reads long texts whole: the logits are the mean over half-overlapping windows of
        `max_length` tokens (more compute for texts longer than the model reads at once)."""
        clean = self.clean if clean is None else clean
        texts = [clean_text(t) for t in texts] if clean else list(texts)
        max_length, batch_size = max_length or self.max_length, batch_size or self.default_batch_size
        if windows:
            return self._windowed(texts, batch_size, max_length)
        encoded = tokenize_function(self.tokenizer, max_length, truncation or self.truncation)({"text": texts})
        logit = self._logits(encoded["input_ids"], batch_size)
        return Scored(softmax(logit), logit, np.asarray(encoded["n_tokens"]))

    def _logits(self, input_ids: list[list[int]], batch_size: int) -> np.ndarray:
        return logits_for_ids(self.model_at(), input_ids, self.tokenizer.pad_token_id or 0, batch_size, self.runtime)

    def _windowed(self, texts: list[str], batch_size: int, max_length: int) -> Scored:
        prefix, suffix = special_tokens_around(self.tokenizer)
        keep = max_length - len(prefix) - len(suffix)
        ids = self.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        pieces, owner = [], []
        for row, seq in enumerate(ids):
            starts = range(0, max(len(seq) - keep, 0) + keep // 2, keep // 2) if len(seq) > keep else [0]
            for start in starts:
                pieces.append(prefix + seq[start:start + keep] + suffix)
                owner.append(row)
        window_logits = self._logits(pieces, batch_size)
        counts = np.bincount(owner, minlength=len(texts))[:, None]
        logit = np.stack([np.bincount(owner, weights=window_logits[:, k], minlength=len(texts))
                          for k in range(window_logits.shape[1])], 1) / counts
        return Scored(softmax(logit), logit.astype(np.float32),
                      np.array([len(s) + len(prefix) + len(suffix) for s in ids]))

    def predict_proba(self, texts: list[str], batch_size: int | None = None, windows: bool = False) -> np.ndarray:
        """(n, K) class probabilities, columns in `self.labels.names` order."""
        return self.score(texts, batch_size, windows=windows).probs

    def predict(self, texts: list[str] | str, batch_size: int | None = None,
                windows: bool = False) -> list[dict] | dict:
        """[{label, score, scores}] per text: the predicted class, its probability and every class's
        (`label`/`score` as `transformers.pipeline("text-classification")` returns them)."""
        single = isinstance(texts, str)
        probs = self.predict_proba([texts] if single else texts, batch_size, windows)
        out = [label_decision(row, self.labels.names) for row in probs]
        return out[0] if single else out


def label_decision(probs: np.ndarray, names) -> dict:
    """The one label decision: the most probable class, its probability, and every class's probability."""
    best = int(np.argmax(probs))
    return {"label": names[best], "score": float(probs[best]), "scores": {n: float(p) for n, p in zip(names, probs)}}


def predict_proba(model_or_dir, texts: list[str], backend: str = "auto", **kwargs) -> np.ndarray:
    """(n, K) class probabilities for raw texts with a saved model (or a loaded SentimentModel)."""
    model = model_or_dir if isinstance(model_or_dir, SentimentModel) else \
        SentimentModel.from_pretrained(model_or_dir, backend=backend)
    return model.score(texts, **kwargs).probs
