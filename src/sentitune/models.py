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
                    trust_remote_code: bool = False):
    """A sequence classifier with the negative/positive head; a different head (5 stars, say) is re-initialised."""
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
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            name, config=config, ignore_mismatched_sizes=reinit_head, use_safetensors=True,
            trust_remote_code=trust_remote_code)
    except OSError as exc:
        if "safetensors" in str(exc).lower():
            raise SentituneError(f"--model {name}: no safetensors weights; sentitune loads only safetensors (convert the .bin weights with transformers' save_pretrained).") from None
        raise _hub_error(name, exc) from None


def quiet_transformers() -> None:
    """Keep transformers' loading chatter (missing pooler weights etc.) out of the user's terminal."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import datasets

    datasets.disable_progress_bars()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
