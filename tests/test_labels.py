"""sentitune.core.labels: classes, their order and ordinality, inferred from the data or given with --labels."""

from __future__ import annotations

import pandas as pd
import pytest

from sentitune.core.errors import SentituneError
from sentitune.core.labels import LabelScheme, infer_scheme


@pytest.mark.parametrize("values, names, ordinal", [
    ([0, 1, 1, 0], ("negative", "positive"), False),
    (["pos", "neg", "Positive"], ("negative", "positive"), False),
    (["positive", "neutral", "negative"], ("negative", "neutral", "positive"), True),
    (["neu", "pos", "neg"], ("neg", "neu", "pos"), True),
    (["5 stars", "1 star", "3 stars", "2 stars", "4 stars"],
     ("1 star", "2 stars", "3 stars", "4 stars", "5 stars"), True),
    (["very positive", "negative", "very negative", "neutral", "positive"],
     ("very negative", "negative", "neutral", "positive", "very positive"), True),
    ([2, 0, 1, 2], ("0", "1", "2"), False),
    (["sports", "politics", "arts"], ("arts", "politics", "sports"), False),
])
def test_inferred_order_and_ordinality(values, names, ordinal):
    scheme = infer_scheme(pd.Series(values))
    assert (scheme.names, scheme.ordinal) == (names, ordinal)
    ids = scheme.encode(pd.Series(values), "x", "label")
    same = {str(v).lower(): i for v, i in zip(values, ids)}
    assert all(same[str(v).lower()] == i for v, i in zip(values, ids)) and sorted(set(ids)) == list(range(len(names)))


def test_integer_labels_named_by_a_label_name_column():
    scheme = infer_scheme(pd.Series([0, 1, 2]), names={0: "negative", 1: "neutral", 2: "positive"})
    assert scheme.names == ("negative", "neutral", "positive") and scheme.ordinal
    assert list(scheme.encode(pd.Series([2, 0]), "x", "label")) == [2, 0]


def test_explicit_order_and_ordinal_flag():
    scheme = infer_scheme(pd.Series(["b", "a", "c"]), order="c,a,b", ordinal=True)
    assert scheme.names == ("c", "a", "b") and scheme.ordinal
    assert list(scheme.encode(pd.Series(["a", "b", "c"]), "x", "label")) == [1, 2, 0]


def test_labels_outside_the_given_classes_are_named_with_counts():
    with pytest.raises(SentituneError, match=r"'maybe' \(2\).*\['neg', 'pos'\]"):
        infer_scheme(pd.Series(["neg", "pos", "maybe", "maybe"]), order="neg,pos")


def test_ordinal_without_a_known_order_and_single_class_are_errors():
    with pytest.raises(SentituneError, match="--ordinal.*no known order"):
        infer_scheme(pd.Series(["sports", "arts"]), ordinal=True)
    with pytest.raises(SentituneError, match="single class"):
        infer_scheme(pd.Series([1, 1, 1]))


def test_round_trip_through_a_dict_and_old_runs_are_binary():
    scheme = LabelScheme(("neg", "neu", "pos"), True)
    assert LabelScheme.from_dict(scheme.to_dict()).names == scheme.names
    assert LabelScheme.from_dict(None).names == ("negative", "positive")
    assert scheme.id2label == {0: "neg", 1: "neu", 2: "pos"} and scheme.label2id["pos"] == 2
