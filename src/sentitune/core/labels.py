"""Label schemes: the classes of a task (2..N), their order, and whether the scale is ordinal.

Classes come from the data. Their order is `--labels a,b,c` when given, else inferred: known sentiment names
in their natural order (negative < neutral < positive, very negative < ... < very positive, "1 star" < ... <
"5 stars"), integers ascending (named by a `label_name` column when the source has one), other strings
alphabetically. A scale is ordinal when its names say so (any known sentiment scale of three or more classes)
or `--ordinal` is given. Binary 0/1 and pos/neg data keep the names `negative`/`positive`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import SentituneError

BINARY = ("negative", "positive")
NEGATIVE_WORDS = {"0", "neg", "negative", "false", "no", "bad"}
POSITIVE_WORDS = {"1", "pos", "positive", "true", "yes", "good"}
# Known scales, lowest first; a data label matches a rung when its lower-cased, stripped text is in the set.
SCALES: tuple[tuple[set[str], ...], ...] = (
    ({"very negative", "very_negative", "very neg", "strongly negative"}, {"negative", "neg"},
     {"neutral", "neu", "mixed"}, {"positive", "pos"},
     {"very positive", "very_positive", "very pos", "strongly positive"}),
    ({"negative", "neg"}, {"neutral", "neu", "mixed"}, {"positive", "pos"}),
)
_STARS = re.compile(r"^\s*([0-9]+)\s*stars?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class LabelScheme:
    """Class names in class-id order and whether their order is meaningful (an ordinal scale)."""

    names: tuple[str, ...]
    ordinal: bool = False
    raw: tuple[str, ...] = ()  # the data's own label values, class-id order (what `encode` matches)

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def binary(self) -> bool:
        return self.n == 2

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def to_dict(self) -> dict:
        return {"names": list(self.names), "ordinal": self.ordinal}

    @classmethod
    def from_dict(cls, values: dict | None) -> "LabelScheme":
        """A scheme as recorded in metrics.json / config.json; runs from before schemes existed are binary."""
        if not values:
            return cls(BINARY, False, ("0", "1"))
        names = tuple(str(n) for n in values["names"])
        return cls(names, bool(values.get("ordinal", False)), names)

    @classmethod
    def from_model_config(cls, config) -> "LabelScheme":
        """The scheme a saved model was trained with (its id2label and sentitune settings)."""
        id2label = getattr(config, "id2label", None) or {}
        names = tuple(str(id2label[i] if i in id2label else id2label.get(str(i))) for i in range(len(id2label)))
        settings = getattr(config, "sentitune", None) or {}
        return cls(names or BINARY, bool(settings.get("ordinal", False)), names or ("0", "1"))

    def matches(self, other: "LabelScheme") -> bool:
        """Same classes in the same order, allowing another spelling of a known name (neg for negative)."""
        if self.n != other.n:
            return False
        return all(_key(a) == _key(b) or any(_key(a) in rung and _key(b) in rung for scale in SCALES for rung in scale)
                   for a, b in zip(self.names, other.names))

    def encode(self, labels: pd.Series, where: str, column: str) -> np.ndarray:
        """Class ids of raw labels; one-line error naming the unknown values and their counts."""
        key = labels.map(_key)
        lookup = {_key(r): i for i, r in enumerate(self.raw or self.names)}
        lookup |= {_key(n): i for i, n in enumerate(self.names)}
        if self.names == BINARY:
            lookup |= {w: 0 for w in NEGATIVE_WORDS} | {w: 1 for w in POSITIVE_WORDS}
        ids = key.map(lookup)
        if ids.isna().any():
            counts = key[ids.isna()].value_counts()
            shown = ", ".join(f"'{k}' ({v})" for k, v in counts.head(5).items())
            raise SentituneError(f"{where}: label(s) {shown} in column '{column}' are not among the classes "
                                 f"{list(self.names)}; fix the data or list every class with --labels.")
        return ids.astype(int).to_numpy()


def _key(value) -> str:
    """What a label is matched by: its text, stripped and lower-cased; a whole number in one spelling (1, 1.0, 01,
    -0 and 0 are each the same class)."""
    text = str(value).strip().lower()
    number = re.fullmatch(r"(-?[0-9]+)(\.0)?", text)
    return str(int(number.group(1))) if number else text


def _known_order(keys: list[str]) -> list[str] | None:
    """`keys` sorted along a known scale when every key sits on one (None otherwise)."""
    stars = [_STARS.match(k) for k in keys]
    if all(stars):
        return sorted(keys, key=lambda k: int(_STARS.match(k).group(1)))
    for scale in SCALES:
        rung = {k: next((i for i, words in enumerate(scale) if k in words), None) for k in keys}
        if None not in rung.values() and len(set(rung.values())) == len(keys):
            return sorted(keys, key=rung.get)
    return None


def _integer_names(values: list[int], names: dict[int, str] | None) -> tuple[str, ...]:
    if names and all(v in names for v in values):
        return tuple(str(names[v]) for v in values)
    if values == [0, 1]:
        return BINARY
    return tuple(str(v) for v in values)


def infer_scheme(labels: pd.Series, order: str | None = None, ordinal: bool | None = None,
                 names: dict[int, str] | None = None, where: str = "--data", flag: str = "--labels") -> LabelScheme:
    """The scheme of the labelled rows in `labels` (all splits together).

    `order`: `--labels` as "a,b,c" (the data's values, in class order). `names`: integer label -> name
    (from a `label_name` column). `ordinal`: `--ordinal` (None: inferred from the names)."""
    labels = labels.dropna()
    if order:
        raw = tuple(v.strip() for v in str(order).split(",") if v.strip())
        if len(raw) < 2 or len({_key(r) for r in raw}) != len(raw):
            raise SentituneError(f"{flag} {order}: give two or more distinct classes, comma-separated, lowest first.")
        display = tuple(names.get(int(r), r) if names and re.fullmatch(r"-?[0-9]+", r) else r for r in raw)
        named_scale = _known_order([_key(d) for d in display]) is not None and len(display) >= 3
        scheme = LabelScheme(display, named_scale if ordinal is None else bool(ordinal), raw)
        scheme.encode(labels, where, "label")
        return scheme
    keys = sorted({_key(v) for v in labels})
    numeric = all(re.fullmatch(r"-?[0-9]+", k) for k in keys)
    words = [k for k in keys if not re.fullmatch(r"-?[0-9]+", k)]
    if not numeric and len(words) < len(keys) and not set(keys) <= NEGATIVE_WORDS | POSITIVE_WORDS:
        raise SentituneError(f"{where}: labels mix numbers and names ({keys[:6]}); use one kind, or list the classes "
                             "with --labels.")
    if numeric:
        values = sorted(int(k) for k in keys)
        display = _integer_names(values, names)
        raw = tuple(str(v) for v in values)
    elif set(keys) <= NEGATIVE_WORDS | POSITIVE_WORDS and set(keys) & NEGATIVE_WORDS and set(keys) & POSITIVE_WORDS:
        display, raw = BINARY, ("0", "1")
    else:
        known = _known_order(keys)
        # the first spelling of each class (not labels.drop_duplicates(): it takes 0 and False for one value)
        spelled = pd.DataFrame({"key": labels.map(_key), "text": labels.map(lambda v: str(v).strip())})
        originals = dict(spelled.drop_duplicates("key").itertuples(index=False))
        raw = tuple(known or keys)
        display = tuple(originals[k] for k in raw)
    if len(raw) < 2:
        raise SentituneError(f"{where}: a single class ({display[0] if display else 'none'}); "
                             "sentiment needs two or more classes in the labelled data.")
    named_scale = _known_order([_key(d) for d in display]) is not None and len(display) >= 3
    if ordinal and not (numeric or named_scale):
        raise SentituneError(f"--ordinal: the classes {list(display)} have no known order; "
                             f"give it with {flag} lowest,...,highest.")
    return LabelScheme(display, named_scale if ordinal is None else bool(ordinal), raw)
