"""Explanations: which words moved a fine-tuned model's decision, by Integrated Gradients (Captum).

`explain(model, text)` attributes the probability of one class (the predicted one unless `target` names another)
to the input embeddings (`model.get_input_embeddings()`) along the straight path from a baseline of pad tokens,
the special tokens kept, to the text. The model reads exactly what prediction reads (the same cleaning,
truncation and special tokens, through `SentimentModel`'s own settings and `tokenize_function`); token
attributions are summed into the text's whitespace-separated words, each with its character span in the
original text. `rich_text` and `html_snippet` colour the words: green for evidence for the explained class,
red against.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.colours import background
from ..core.errors import SentituneError
from ..data import clean_text, special_tokens_around, tokenize_function, truncate_ids
from ..data.splits import BREAK_TAGS, WHITESPACE
from .predict import SentimentModel

DEFAULT_STEPS = 32
_WORD = re.compile(r"\S+")
Span = tuple[int, int]


@dataclass
class Explanation:
    """Per-word attributions for one text.

    `scores` are signed (positive: evidence for `target`) and scaled so that the largest |score| is 1; words the
    model did not read (cut by truncation) score 0 and have `read` False. `delta` is Captum's convergence delta,
    in probability units: the attributions' sum minus (p(text) - p(baseline)); raise `steps` when it is large."""

    text: str
    words: list[str]
    spans: list[Span]
    scores: list[float]
    label: str
    target: str
    probs: dict[str, float]
    delta: float
    read: list[bool] = field(default_factory=list)

    def to_dict(self) -> dict:
        """What `POST /explain` answers."""
        words = [{"word": w, "start": s, "end": e, "score": round(v, 6)}
                 for w, (s, e), v in zip(self.words, self.spans, self.scores)]
        return {"label": self.label, "target": self.target, "scores": self.probs, "delta": self.delta,
                "words": words}


def explainable(model: SentimentModel) -> SentimentModel:
    """`model` itself when it runs on torch; Integrated Gradients needs gradients, which ONNX graphs lack."""
    backend = getattr(model, "backend", "torch")
    if backend != "torch" or not isinstance(model.model, torch.nn.Module):
        raise SentituneError(f"explain: the {backend} backend has no gradients; load the model with "
                             "backend='torch'.")
    return model


def target_index(model: SentimentModel, target: str | None, probs: np.ndarray) -> int:
    """The class to explain: `target` by name, else the most probable one."""
    if target is None:
        return int(np.argmax(probs))
    names = list(model.labels.names)
    if target not in names:
        raise SentituneError(f"--target {target}: not a label of this model; use one of {', '.join(names)}.")
    return names.index(target)


def cleaned_with_spans(text: str) -> tuple[str, list[Span]]:
    """`clean_text(text)` and, for each of its characters, the span of `text` it came from.

    Cleaning only shortens (entities to characters, <br /> and whitespace runs to one space, strip), so each
    step maps every output character to the input characters it replaced."""
    spans = [(i, i + 1) for i in range(len(text))]
    out, spans = _unescaped(text, spans)
    out, spans = _substituted(BREAK_TAGS, out, spans)
    out, spans = _substituted(WHITESPACE, out, spans)
    start = len(out) - len(out.lstrip())
    end = len(out.rstrip())
    out, spans = out[start:end], spans[start:end]
    if out != clean_text(text):
        raise RuntimeError("explain: cleaned_with_spans no longer matches clean_text; update it with clean_text.")
    return out, spans


def _unescaped(text: str, spans: list[Span]) -> tuple[str, list[Span]]:
    # No character reference contains a second '&', so unescaping each piece that starts at an '&' equals
    # unescaping the whole; only a piece's head changes, its tail is kept as it is.
    out, out_spans, offset = [], [], 0
    for piece in re.split(r"(?=&)", text):
        plain = html.unescape(piece)
        tail = _common_suffix(piece, plain) if plain != piece else len(piece)
        head = len(plain) - tail
        replaced = (spans[offset][0], spans[offset + len(piece) - tail - 1][1]) if head else None
        out.append(plain)
        out_spans += [replaced] * head + spans[offset + len(piece) - tail: offset + len(piece)]
        offset += len(piece)
    return "".join(out), out_spans


def _common_suffix(a: str, b: str) -> int:
    n = 0
    limit = min(len(a) - 1, len(b))  # the reference itself starts at a[0], which never survives
    while n < limit and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _substituted(pattern: re.Pattern, text: str, spans: list[Span]) -> tuple[str, list[Span]]:
    """Every match of `pattern` replaced by one space that spans what it replaced."""
    out, out_spans, last = [], [], 0
    for match in pattern.finditer(text):
        out += [text[last:match.start()], " "]
        out_spans += spans[last:match.start()] + [(spans[match.start()][0], spans[match.end() - 1][1])]
        last = match.end()
    out.append(text[last:])
    return "".join(out), out_spans + spans[last:]


@dataclass
class Reading:
    """A text as the model reads it: its input ids and, per position, the word it belongs to (-1: special)."""

    words: list[str]
    spans: list[Span]
    input_ids: list[int]
    word_of: list[int]
    text_positions: tuple[int, int]  # the text's tokens, between the special ones


def reading(model: SentimentModel, text: str) -> Reading:
    """The input ids prediction builds for `text` (same cleaning and truncation) and their words."""
    tokenizer = model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise SentituneError("explain: the model's tokenizer has no fast version (character offsets are needed).")
    seen, char_spans = cleaned_with_spans(text) if model.clean else (text, [(i, i + 1) for i in range(len(text))])
    found = list(_WORD.finditer(seen))
    words = [m.group() for m in found]
    spans = [(char_spans[m.start()][0], char_spans[m.end() - 1][1]) for m in found]
    word_at = np.full(len(seen) + 1, -1)
    for i, m in enumerate(found):
        word_at[m.start():m.end()] = i
    encoded = tokenizer(seen, add_special_tokens=False, truncation=False, verbose=False, return_offsets_mapping=True)
    prefix, suffix = special_tokens_around(tokenizer)
    kept = truncate_ids(list(range(len(encoded["input_ids"]))), model.max_length - len(prefix) - len(suffix),
                        model.truncation)
    input_ids = tokenize_function(tokenizer, model.max_length, model.truncation)({"text": [seen]})["input_ids"][0]
    if input_ids != prefix + [encoded["input_ids"][p] for p in kept] + suffix:
        raise RuntimeError("explain: tokens differ from tokenize_function's; keep reading() in step with it.")
    # A token belongs to the word holding its last character (byte-level BPE offsets may include a leading space).
    token_words = [int(word_at[end - 1]) if end > start else -1 for start, end in encoded["offset_mapping"]]
    word_of = [-1] * len(prefix) + [token_words[p] for p in kept] + [-1] * len(suffix)
    return Reading(words, spans, input_ids, word_of, (len(prefix), len(prefix) + len(kept)))


def explain(model: SentimentModel, text: str, target: str | None = None, steps: int = DEFAULT_STEPS,
            internal_batch_size: int | None = None) -> Explanation:
    """Per-word attributions of one text; see `explain_many`."""
    return explain_many(model, [text], target, steps, internal_batch_size=internal_batch_size)[0]


def explain_many(model: SentimentModel, texts: list[str], target: str | None = None, steps: int = DEFAULT_STEPS,
                 batch_size: int = 1, internal_batch_size: int | None = None) -> list[Explanation]:
    """Per-word attributions of each text for `target` (default: each text's predicted class).

    `steps`: points on the integration path (more: a smaller delta, proportionally slower). `batch_size` texts
    go through Captum together, `internal_batch_size` path points of each per forward/backward pass (default 8
    on a CPU, 32 on a GPU; Captum's own internal_batch_size is that times the texts), which bounds memory.
    Captum hooks the embedding layer meanwhile: run nothing else on `model.model` from another thread."""
    if steps < 1:
        raise SentituneError(f"--steps {steps}: must be at least 1.")
    model = explainable(model)
    probs = model.predict_proba(list(texts))
    targets = [target_index(model, target, row) for row in probs]
    readings = [reading(model, text) for text in texts]
    order = np.argsort([len(r.input_ids) for r in readings], kind="stable")
    out: list[Explanation | None] = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        chunk = [int(i) for i in order[start:start + batch_size]]
        attributions, deltas = token_attributions(model, [readings[i] for i in chunk], [targets[i] for i in chunk],
                                                  steps, internal_batch_size)
        for i, row, delta in zip(chunk, attributions, deltas):
            out[i] = explanation(model, texts[i], readings[i], row, probs[i], targets[i], float(delta))
    return out


def token_attributions(model: SentimentModel, readings: list[Reading], targets: list[int], steps: int,
                       internal_batch_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, width) attributions per token position and the convergence delta per row."""
    from captum.attr import LayerIntegratedGradients

    network = model.model
    network.eval()
    device = next(network.parameters()).device
    ids, mask, baseline = _batch(readings, model.tokenizer.pad_token_id or 0, device)

    def target_probability(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # Probabilities, not logits: a softmax is invariant to shifting all logits, so only they are comparable.
        return torch.softmax(network(input_ids=input_ids, attention_mask=attention_mask).logits.float(), -1)

    per_text = internal_batch_size or (8 if device.type == "cpu" else 32)
    lig = LayerIntegratedGradients(target_probability, network.get_input_embeddings())
    with torch.enable_grad():
        attributions, delta = lig.attribute(ids, baselines=baseline, target=targets, additional_forward_args=(mask,),
                                            n_steps=steps, internal_batch_size=per_text * len(readings),
                                            return_convergence_delta=True)
    return attributions.sum(-1).detach().float().cpu().numpy(), delta.detach().float().cpu().numpy()


def _batch(readings: list[Reading], pad_id: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Padded input ids, attention mask and the baseline: pad tokens in place of the text's, special tokens kept."""
    width = max(len(r.input_ids) for r in readings)
    ids = torch.full((len(readings), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, r in enumerate(readings):
        ids[row, :len(r.input_ids)] = torch.tensor(r.input_ids)
        mask[row, :len(r.input_ids)] = 1
    text = torch.zeros_like(ids, dtype=torch.bool)
    for row, r in enumerate(readings):
        text[row, r.text_positions[0]:r.text_positions[1]] = True
    baseline = torch.where(text, torch.full_like(ids, pad_id), ids)
    return ids.to(device), mask.to(device), baseline.to(device)


def explanation(model: SentimentModel, text: str, read: Reading, token_scores: np.ndarray, probs: np.ndarray,
                target: int, delta: float) -> Explanation:
    """Token attributions summed per word, scaled to max |score| = 1."""
    scores = np.zeros(len(read.words))
    seen = np.zeros(len(read.words), dtype=bool)
    for position, word in enumerate(read.word_of):
        if word >= 0:
            scores[word] += token_scores[position]
            seen[word] = True
    top = np.abs(scores).max() if len(scores) else 0.0
    scores = scores / top if top > 0 else scores
    names = list(model.labels.names)
    return Explanation(text, read.words, read.spans, [float(s) for s in scores], names[int(np.argmax(probs))],
                       names[target], {n: float(p) for n, p in zip(names, probs)}, delta, [bool(s) for s in seen])


def without_words(text: str, spans: list[Span]) -> str:
    """`text` with the characters of `spans` removed (the words deleted, the spaces around them kept)."""
    pieces, last = [], 0
    for start, end in sorted(spans):
        pieces.append(text[last:max(start, last)])
        last = max(last, end)
    pieces.append(text[last:])
    return "".join(pieces)


def summary(expl: Explanation) -> str:
    """One line: the prediction, the class explained and the convergence delta."""
    probability = expl.probs[expl.label]
    return (f"predicted {expl.label} ({probability:.3f}); explaining {expl.target} "
            f"(green: for, red: against); convergence delta {expl.delta:+.4f}")


def rich_text(expl: Explanation):
    """The words as a rich Text, each on its background colour; words the model did not read are dimmed."""
    from rich.text import Text

    out = Text()
    for i, (word, score, was_read) in enumerate(zip(expl.words, expl.scores, expl.read or [True] * len(expl.words))):
        if i:
            out.append(" ")
        style = "dim" if not was_read else (f"black on rgb{background(score)}" if abs(score) >= 0.05 else "")
        out.append(word, style=style)
    return out


def html_snippet(expl: Explanation) -> str:
    """A self-contained HTML fragment: the summary and the coloured words. Every piece of text is escaped."""
    words = []
    for word, score in zip(expl.words, expl.scores):
        red, green, blue = background(score)
        words.append(f'<span style="background:rgb({red},{green},{blue})" title="{score:+.3f}">'
                     f"{html.escape(word, quote=True)}</span>")
    return (f'<div class="sentitune-explanation" style="font-family:sans-serif;line-height:1.8">'
            f"<p>{html.escape(summary(expl), quote=True)}</p><p>{' '.join(words)}</p></div>\n")
