"""How the reporting shows values: the number, p-value and Markdown-cell filters, the Jinja environments, figures as
data URIs, and explained texts cut into pieces shaded by their words' attributions.

Shared by the report, the slide deck and the model card; no renderer imports another.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2

from ..core.colours import background

FAINT = 0.05  # a word whose |score| is below this share of the text's strongest is left unshaded on a slide


def f_number(spec: str):
    return lambda x: "n/a" if x is None else format(x, spec)


def p_value(test: dict | None) -> str:
    """A paired test's p-value with two significant digits ("<0.0001" below that; blank without a test)."""
    p = (test or {}).get("p_value")
    return "" if p is None else "<0.0001" if p < 1e-4 else f"{p:.2g}"


def points(a: float, b: float) -> str:
    """A difference of two rates in percentage points, signed."""
    return f"{100 * (a - b):+.1f} points"


def markdown_cell(value) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, line breaks flattened."""
    return " ".join(str(value).split()).replace("|", "\\|")


def kept_weights(train: dict) -> str:
    """Which step's weights a run kept: the best on validation, or the last (`--checkpoint last`)."""
    step = train.get("best_step")
    if step is None:
        return "n/a"
    which = "the last" if train.get("checkpoint") == "last" else "the best on validation"
    return f"weights of step {step:,}, {which}"


FILTERS = {
    "f3": f_number(".3f"), "f4": f_number(".4f"),
    "pct": lambda x: "n/a" if x is None else f"{100 * x:.1f}%",
    "ci": lambda c: "n/a" if not c else f"[{c[0]:.3f}, {c[1]:.3f}]",
    "pvalue": p_value,
    "duration": lambda s: "n/a" if s is None else (f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"),
    "probs": lambda probs: ", ".join(f"{name} {p:.2f}" for name, p in (probs or {}).items()),
    "cell": markdown_cell,
    "kept": kept_weights,
}


def environment(html: bool) -> jinja2.Environment:
    """The package templates' environment: every value HTML-escaped when `html`, raw for Markdown."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("sentitune.reporting", "templates"), autoescape=html,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    env.filters.update(FILTERS)
    return env


def data_uri(path: Path) -> str:
    """A PNG as a base64 data URI, so an HTML file needs no files beside it."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


# ---------------------------------------------------------------- explained texts


def scored(word) -> bool:
    return isinstance(word, dict) and isinstance(word.get("score"), (int, float))


def usable_words(text: str, words: list) -> list[dict]:
    """The scored words whose character span lies inside `text`, in text order; a span overlapping the one before
    it (a hand-edited file) is dropped, so no character is shown twice."""
    inside = sorted((w for w in words if scored(w) and isinstance(w.get("start"), int)
                     and isinstance(w.get("end"), int) and 0 <= w["start"] < w["end"] <= len(text)),
                    key=lambda w: w["start"])
    kept, end = [], 0
    for word in inside:
        if word["start"] >= end:
            kept.append(word)
            end = word["end"]
    return kept


def strongest(words: list[dict], n: int = 3) -> list[dict]:
    """The `n` words of largest |score|, as {word, score}."""
    top = sorted(words, key=lambda w: -abs(w["score"]))[:n]
    return [{"word": str(w.get("word", "")), "score": float(w["score"])} for w in top]


def slide_shade(text: str, score: float | None, scale: float) -> dict:
    """A piece shaded by its share of the text's strongest score: `sign` for or against the predicted class."""
    weight = 0.0 if score is None else min(abs(score) / scale, 1.0)
    sign = None if score is None or weight < FAINT else ("for" if score > 0 else "against")
    return {"text": text, "sign": sign, "weight": weight}


def colour_shade(text: str, score: float | None, scale: float) -> dict:
    """A piece coloured by its raw score, as the terminal and the served page colour explanations."""
    if score is None:
        return {"text": text}
    return {"text": text, "colour": "rgb({},{},{})".format(*background(score)), "score": score}


def highlighted(item: dict, chars: int | None = None, shade=slide_shade, top: int = 3) -> dict:
    """{segments, top, cut_before, cut_after} of an explained error (`text`, `words`: [{word, start, end, score}]).

    Each word is a segment shaded by `shade(text, score, scale)` and the characters between words are unshaded
    segments. `chars` cuts a window of about that many characters around the strongest word (None: the whole
    text); `top` lists the strongest words. Without usable spans the scored words are listed alone."""
    text = str(item["text"])
    words = usable = usable_words(text, item["words"])
    if not words:
        listed = [w for w in item["words"] if scored(w)]
        scale = max((abs(w["score"]) for w in listed), default=0.0) or 1.0
        shown = listed if chars is None else listed[:chars // 6]
        return {"segments": [shade(f"{w.get('word', '')} ", w["score"], scale) for w in shown],
                "top": strongest(listed, top), "cut_before": False, "cut_after": len(shown) < len(listed)}
    scale = max(abs(w["score"]) for w in words) or 1.0
    lo, hi = 0, len(text)
    if chars is not None:
        peak = max(words, key=lambda w: abs(w["score"]))
        lo = max(0, min(peak["start"] - chars // 3, len(text) - chars))
        hi = min(len(text), lo + chars)
        words = [w for w in words if w["start"] >= lo and w["end"] <= hi]
        lo, hi = (words[0]["start"], words[-1]["end"]) if words else (lo, hi)
    segments, at = [], lo
    for w in words:
        if w["start"] > at:
            segments.append(shade(text[at:w["start"]], None, scale))
        segments.append(shade(text[w["start"]:w["end"]], w["score"], scale))
        at = w["end"]
    if at < hi:
        segments.append(shade(text[at:hi], None, scale))
    return {"segments": segments, "top": strongest(usable, top), "cut_before": lo > 0,
            "cut_after": hi < len(text)}
