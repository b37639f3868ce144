"""Hypothesis against the label schemes (sentitune.core.labels): arbitrary label values (names in any script, numbers
of every kind, booleans, blanks), `--labels` orders with arbitrary names, `--ordinal`.

Property: infer_scheme gives a scheme of two or more distinct classes that encodes every label it was inferred from
into 0..K-1 (same key, same class), survives to_dict/from_dict, and matches itself; or a one-line SentituneError
naming the data or the flag. Shrunk failing examples are kept below as regular tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from case_counts import FUZZ, Counter
from hypothesis import given, settings
from hypothesis import strategies as st

from sentitune.core.errors import SentituneError
from sentitune.core.labels import LabelScheme, infer_scheme

EXAMPLES = {"infer": 400, "order": 300}
NAME = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
                 st.sampled_from(["negative", "neutral", "positive", "neg", "pos", "very negative", "1 star",
                                  "5 stars", "Positive ", "POS", "٣", "１", "²", "0", "1", "-1", "1.0", "true", "no"]))
DIGITS = st.text(st.characters(categories=["Nd"]), min_size=1, max_size=2)  # digits of any script
VALUE = st.one_of(NAME, st.integers(-5, 10), DIGITS, st.integers(-(2 ** 70), 2 ** 70), st.booleans(),
                  st.floats(allow_nan=False, allow_infinity=False, width=32))


def check_error(exc: SentituneError, *names: str) -> None:
    message = str(exc)
    assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
    assert any(name in message for name in names), message


def check_scheme(scheme: LabelScheme, labels: pd.Series) -> None:
    assert scheme.n >= 2 and len(set(scheme.names)) == scheme.n
    ids = scheme.encode(labels, "data", "label")
    assert ids.dtype.kind == "i" and set(ids) <= set(range(scheme.n))
    classes: dict[str, set] = {}
    for value, i in zip(labels, ids):  # one class per label value (plain Python: numpy drops trailing NULs)
        classes.setdefault(str(value).strip().lower(), set()).add(int(i))
    assert all(len(found) == 1 for found in classes.values())
    again = LabelScheme.from_dict(scheme.to_dict())
    assert again.names == scheme.names and again.ordinal == scheme.ordinal and scheme.matches(again)


def test_inferred_schemes_encode_their_own_labels():
    with Counter("hypothesis", "infer_scheme on arbitrary labels") as count:
        @given(values=st.lists(VALUE, min_size=1, max_size=20), ordinal=st.sampled_from([None, None, True, False]))
        @settings(max_examples=EXAMPLES["infer"], **FUZZ)
        def run(values, ordinal):
            count()
            labels = pd.Series(values, dtype=object)
            try:
                scheme = infer_scheme(labels, ordinal=ordinal, where="--data x.csv")
            except SentituneError as exc:
                check_error(exc, "--data x.csv", "--ordinal")
                assert "not among the classes" not in str(exc)  # it refused the labels it inferred the classes from
                return
            check_scheme(scheme, labels)

        run()


def test_a_labels_order_with_arbitrary_names_encodes_the_data_or_fails_in_one_line():
    with Counter("hypothesis", "infer_scheme with --labels") as count:
        @given(names=st.lists(NAME, min_size=0, max_size=6), extra=st.lists(NAME, max_size=2),
               ordinal=st.sampled_from([None, True]))
        @settings(max_examples=EXAMPLES["order"], **FUZZ)
        def run(names, extra, ordinal):
            count()
            order = ",".join(names)
            parts = [v.strip() for v in order.split(",") if v.strip()]
            labels = pd.Series(parts + extra, dtype=object)
            try:
                scheme = infer_scheme(labels, order, ordinal, where="--data x.csv")
            except SentituneError as exc:
                check_error(exc, "--labels", "--data x.csv", "--ordinal")
                assert extra or "not among the classes" not in str(exc)  # every label is one of the order's
                return
            check_scheme(scheme, labels)
            assert not order or scheme.n == len(parts)

        run()


# ---------------------------------------------------------------- shrunk examples the fuzzer found


@pytest.mark.parametrize("digits", [["٣", "٤"], ["１", "２"]])
def test_digits_of_other_scripts_are_names_not_numbers(digits):
    """'٣' (Arabic-Indic three) matched \\d and int('٣') == 3, so the class was '3' and '٣' itself did not encode."""
    labels = pd.Series(digits * 2, dtype=object)
    scheme = infer_scheme(labels)
    assert scheme.names == tuple(digits)
    np.testing.assert_array_equal(scheme.encode(labels, "data", "label"), [0, 1, 0, 1])


def test_digits_of_other_scripts_in_a_labels_order():
    scheme = infer_scheme(pd.Series(["٣", "٤"], dtype=object), "٣,٤")
    assert scheme.names == ("٣", "٤")


@pytest.mark.parametrize("values, names", [([0, False], ("0", "False")), (["1", -0.0], ("negative", "positive")),
                                           (["01", "2", "01"], ("1", "2"))])
def test_numbers_and_their_spellings_are_one_class_each(values, names):
    """[0, False]: drop_duplicates took them for one value (KeyError); -0.0 was the class '-0' beside '0';
    '01' was refused beside the class '1' it was inferred as."""
    labels = pd.Series(values, dtype=object)
    scheme = infer_scheme(labels, where="--data x.csv")
    assert scheme.names == names
    check_scheme(scheme, labels)


def test_minus_zero_and_zero_are_one_class():
    with pytest.raises(SentituneError, match=r"a single class \(0\)"):
        infer_scheme(pd.Series(["0", -0.0], dtype=object), where="--data x.csv")


def test_a_label_with_a_line_break_stays_one_line_in_the_error():
    with pytest.raises(SentituneError) as raised:
        infer_scheme(pd.Series(["0\n0"], dtype=object), where="--data x.csv")
    assert str(raised.value) == ("--data x.csv: a single class (0\\n0); sentiment needs two or more classes in the "
                                 "labelled data.")
