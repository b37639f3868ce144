"""Model stage: load a base model with a negative/positive head, safely, and pick the numeric precision."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .errors import SentituneError

LABELS = {0: "negative", 1: "positive"}
log = logging.getLogger("sentitune")


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 matmul (AVX512-BF16 or AMX), where bf16 autocast is several times faster."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(requested: str = "auto") -> str:
    """bf16, fp16 or fp32, decided once from the hardware unless the user asked for one."""
    if requested not in {"auto", "bf16", "fp16", "fp32"}:
        raise SentituneError(f"--precision {requested}: use auto, bf16, fp16 or fp32.")
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


def autocast(precision: str, device: torch.device):
    """The autocast context for inference at `precision` (a no-op for fp32)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


ATTENTION = "sentitune_cpu_bf16"
MATMUL_ATTENTION_MAX_TOKENS = 256  # measured faster than SDPA at 256 tokens, slower at 512


def cpu_bf16_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention as two bf16 matmuls and a softmax, for bf16 on CPU up to 256 tokens; SDPA everywhere else.

    At MiniLM's shapes (head dim 32, 256 tokens) this is 1.3-2.4x faster forward+backward than SDPA's CPU flash
    kernel, which took ~40% of a training step; at 512 tokens the flash kernel wins (benchmarks/attention_kernels.py).
    The scores are rounded to bf16 before the softmax, as eager attention under bf16 autocast does on a GPU."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.device.type != "cpu" or query.dtype != torch.bfloat16 or getattr(module, "is_causal", False) \
            or query.shape[1] != key.shape[1] or key.shape[2] > MATMUL_ATTENTION_MAX_TOKENS:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    scores = torch.matmul(query * (scaling or query.shape[-1] ** -0.5), key.transpose(-1, -2))
    if attention_mask is not None:  # boolean (keep = True) from transformers' sdpa mask builder
        if attention_mask.dtype == torch.bool:
            attention_mask = torch.zeros((), dtype=scores.dtype).masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        scores = scores + attention_mask.to(scores.dtype)
    weights = torch.nn.functional.dropout(torch.softmax(scores, dim=-1), p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION, cpu_bf16_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)


def attn_implementation(attention: str) -> str | None:
    """transformers' attn_implementation for sentitune's `attention` setting (auto, sdpa or eager)."""
    if attention not in {"auto", "sdpa", "eager"}:
        raise SentituneError(f"--attention {attention}: use auto, sdpa or eager.")
    if attention == "auto":
        _register_attention()
        return ATTENTION
    return attention


def model_folder(path: str | Path) -> Path:
    """A run folder's `model/` when it holds a saved model, else `path` itself (already a model folder)."""
    path = Path(path)
    return path / "model" if (path / "model" / "config.json").is_file() else path


def _is_local(name: str) -> bool:
    return Path(name).expanduser().is_dir()


def _hub_error(name: str, exc: Exception) -> SentituneError:
    if _is_local(name):
        return SentituneError(f"--model {name}: not a loadable model folder ({str(exc).splitlines()[0][:160]}).")
    return SentituneError(
        f"--model {name}: not a local folder and the Hugging Face Hub could not serve it ({type(exc).__name__}); "
        "offline, pass a local model folder to --model."
    )


def load_tokenizer(name: str, trust_remote_code: bool = False):
    """The model's fast tokenizer."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, use_fast=True, trust_remote_code=trust_remote_code)
    except Exception as exc:  # OSError offline, ValueError for odd folders
        raise _hub_error(name, exc) from None


def load_classifier(name: str, dropout: float | None = None, attention_dropout: float | None = None,
                    trust_remote_code: bool = False, attention: str = "auto"):
    """A sequence classifier with the negative/positive head; a different head (5 stars, say) is re-initialised.

    `attention="auto"` uses `cpu_bf16_attention` on architectures that take transformers' attention interface."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise _hub_error(name, exc) from None
    old_labels = dict(getattr(config, "id2label", None) or {})
    has_head = any("ForSequenceClassification" in a for a in (config.architectures or []))
    reinit_head = has_head and len(old_labels) != 2
    if reinit_head:
        log.warning("%s has a %d-label head (%s); re-initialising it as negative/positive.", name, len(old_labels),
                    ", ".join(map(str, old_labels.values())))
    config.num_labels, config.id2label, config.label2id = 2, dict(LABELS), {v: k for k, v in LABELS.items()}
    for attr, value in (("hidden_dropout_prob", dropout), ("attention_probs_dropout_prob", attention_dropout)):
        if value is not None:
            setattr(config, attr, value)
    implementation = attn_implementation(attention)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            name, config=config, ignore_mismatched_sizes=reinit_head, use_safetensors=True,
            trust_remote_code=trust_remote_code)
    except OSError as exc:
        if "safetensors" in str(exc).lower():
            raise SentituneError(f"--model {name}: no safetensors weights; sentitune loads only safetensors (convert the .bin weights with transformers' save_pretrained).") from None
        raise _hub_error(name, exc) from None
    if model._can_set_attn_implementation():  # models on transformers' attention interface; others keep theirs
        model.set_attn_implementation(implementation)
    return model


def quiet_transformers() -> None:
    """Keep transformers' loading chatter (missing pooler weights etc.) out of the user's terminal."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import datasets

    datasets.disable_progress_bars()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
