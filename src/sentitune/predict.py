"""Prediction: fast batch inference (length-sorted batches, dynamic padding, bf16 where the hardware has it).

`SentimentModel.from_pretrained(path).predict(texts)` is the public face; `predict_proba` is the path
`evaluate` and the baselines comparison use.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .data import clean_text, special_tokens_around, tokenize_function
from .errors import SentituneError
from .models import LABELS, autocast, load_tokenizer, resolve_precision

BACKENDS = ("torch", "onnx", "onnx-int8")


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _padded(batch: list[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(map(len, batch))
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


@torch.inference_mode()
def batched_rows(model, input_ids: list[list[int]], pad_id: int, reduce, batch_size: int = 64, precision: str = "auto") -> np.ndarray:
    """`reduce(outputs, attention_mask)` for tokenized inputs, run in length-sorted batches, returned in input order.

    Autocast applies to fp32 torch weights only: a model already in bf16/fp16, or an onnxruntime one, runs as it is."""
    device, cast = torch.device("cpu"), False
    if isinstance(model, torch.nn.Module):
        weight = next(model.parameters())
        device, cast = weight.device, weight.dtype == torch.float32
    model.eval()
    order = np.argsort([len(x) for x in input_ids], kind="stable")[::-1]
    rows = [None] * len(input_ids)
    with autocast(resolve_precision(precision) if cast else "fp32", device):
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = _padded([input_ids[i] for i in chunk], pad_id, device)
            out = reduce(model(**batch), batch["attention_mask"]).float().cpu().numpy()
            for i, row in zip(chunk, out):
                rows[i] = row
    return np.stack(rows) if rows else np.zeros((0,), dtype=np.float32)


def _margin(outputs, attention_mask) -> torch.Tensor:
    logits = outputs.logits.float()
    return logits[:, 1] - logits[:, 0]


def margins_for_ids(model, input_ids: list[list[int]], pad_id: int, batch_size: int = 64, precision: str = "auto") -> np.ndarray:
    """logit(positive) - logit(negative) for already tokenized inputs, in the input order."""
    return batched_rows(model, input_ids, pad_id, _margin, batch_size, precision).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (margins of confident models overflow the naive form)."""
    return np.exp(-np.logaddexp(0.0, -x))


def predict_proba(model_or_dir, texts: list[str], batch_size: int | None = None, max_length: int | None = None,
                  truncation: str | None = None, precision: str = "auto", tokenizer=None, clean: bool = True,
                  backend: str = "torch", windows: bool = False):
    """(P(positive), margin, n_tokens) for raw texts; settings default to those the model was trained with."""
    model = SentimentModel.from_pretrained(model_or_dir, backend=backend) if isinstance(model_or_dir, (str, Path)) else model_or_dir
    if not isinstance(model, SentimentModel):
        model = SentimentModel(model, tokenizer)
    return model.predict_proba(texts, batch_size, max_length, truncation, precision, clean, windows)


class OnnxClassifier:
    """An onnxruntime session (`sentitune export`) that `batched_rows` drives like the torch model."""

    def __init__(self, path: Path, config, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.config = config

    def eval(self) -> "OnnxClassifier":
        return self

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        feed = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        return SimpleNamespace(logits=torch.from_numpy(self.session.run(["logits"], feed)[0]))


def _onnx_classifier(path: Path, backend: str, trust_remote_code: bool) -> OnnxClassifier:
    from transformers import AutoConfig

    from .export import onnx_path

    graph = onnx_path(path, backend)
    if not graph.is_file():
        raise SentituneError(f"--backend {backend}: {graph} not found; run `sentitune export {path}` first.")
    return OnnxClassifier(graph, AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code))


class SentimentModel:
    """A fine-tuned sentiment classifier with its tokenizer and the preprocessing it was trained with."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer, self._bf16 = model, tokenizer, None
        settings = getattr(model.config, "sentitune", None) or {}
        self.max_length = settings.get("max_length", 512)
        self.truncation = settings.get("truncation", "head+tail")

    @classmethod
    def from_pretrained(cls, path: str | Path, trust_remote_code: bool = False, backend: str = "torch") -> "SentimentModel":
        """Load a saved model folder (or a run folder). `backend`: torch, or the ONNX graphs `sentitune export`
        wrote: onnx (fp32) or onnx-int8 (fastest on CPU; accuracy measured in docs/benchmarks.md)."""
        from .models import load_classifier, model_folder

        path = model_folder(path)
        if backend not in BACKENDS:
            raise SentituneError(f"--backend {backend}: use one of {', '.join(BACKENDS)}.")
        if backend != "torch":
            return cls(_onnx_classifier(path, backend, trust_remote_code), load_tokenizer(str(path), trust_remote_code))
        model = load_classifier(str(path), trust_remote_code=trust_remote_code)
        return cls(model.to(_device()), load_tokenizer(str(path), trust_remote_code))

    @property
    def default_batch_size(self) -> int:
        """Fastest measured here: one review at a time for onnxruntime (no padding), 16 for torch on a CPU, 64 on a GPU."""
        if isinstance(self.model, OnnxClassifier):
            return 1
        return 64 if next(self.model.parameters()).device.type == "cuda" else 16

    def model_at(self, precision: str = "auto"):
        """The network to run at `precision`. bf16 on CPU runs `runtime.inference_copy`, made once: bf16 weights
        (~1.1x the speed of autocast over fp32 weights, which keeps the residual stream in fp32, for 1.5x the
        memory) and a last layer that computes the first token only (1.18x, exact; docs/benchmarks.md). The copy
        assumes `self.model` is not modified afterwards."""
        if isinstance(self.model, OnnxClassifier) or resolve_precision(precision) != "bf16" \
                or next(self.model.parameters()).device.type != "cpu":
            return self.model
        if self._bf16 is None:
            from .runtime import inference_copy

            self._bf16 = inference_copy(self.model)
        return self._bf16

    def predict_proba(self, texts: list[str], batch_size: int | None = None, max_length: int | None = None,
                      truncation: str | None = None, precision: str = "auto", clean: bool = True, windows: bool = False):
        """(P(positive), margin, n_tokens) per text (batch_size None: `default_batch_size`).

        `windows=True` reads long texts whole: the margin is the mean over half-overlapping windows of
        `max_length` tokens (more compute for reviews longer than the model reads at once)."""
        texts = [clean_text(t) for t in texts] if clean else list(texts)
        max_length, batch_size = max_length or self.max_length, batch_size or self.default_batch_size
        if windows:
            return self._windowed(texts, batch_size, max_length, precision)
        encoded = tokenize_function(self.tokenizer, max_length, truncation or self.truncation)({"text": texts})
        margin = margins_for_ids(self.model_at(precision), encoded["input_ids"], self.tokenizer.pad_token_id or 0, batch_size, precision)
        return sigmoid(margin), margin, np.asarray(encoded["n_tokens"])

    def _windowed(self, texts: list[str], batch_size: int, max_length: int, precision: str):
        prefix, suffix = special_tokens_around(self.tokenizer)
        keep = max_length - len(prefix) - len(suffix)
        ids = self.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        pieces, owner = [], []
        for row, seq in enumerate(ids):
            starts = range(0, max(len(seq) - keep, 0) + keep // 2, keep // 2) if len(seq) > keep else [0]
            for start in starts:
                pieces.append(prefix + seq[start:start + keep] + suffix)
                owner.append(row)
        margins = margins_for_ids(self.model_at(precision), pieces, self.tokenizer.pad_token_id or 0, batch_size, precision)
        margin = np.bincount(owner, weights=margins, minlength=len(texts)) / np.bincount(owner, minlength=len(texts))
        return sigmoid(margin), margin.astype(np.float32), np.array([len(s) + len(prefix) + len(suffix) for s in ids])

    def predict(self, texts: list[str] | str, batch_size: int | None = None, windows: bool = False) -> list[dict]:
        """[{label, score}] per text, like `transformers.pipeline("text-classification")`."""
        single = isinstance(texts, str)
        prob, _, _ = self.predict_proba([texts] if single else texts, batch_size, windows=windows)
        out = [{"label": LABELS[int(p >= 0.5)], "score": float(max(p, 1 - p))} for p in prob]
        return out[0] if single else out
