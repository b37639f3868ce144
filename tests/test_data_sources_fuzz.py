"""Hypothesis against the readers (sentitune.data.sources: read_source/read_table) and, on what they read, the split
preparation (sentitune.data.splits.prepare_frames): CSV/TSV/JSON/JSONL/parquet files with arbitrary unicode, empty
and huge fields, mixed label types, BOMs, CRLF, quoted newlines and duplicate columns, and arbitrary bytes.

Property: a correct result (the texts as written, every label present, splits that hold every class) or a
SentituneError of one line naming the file or field; never another exception, and nothing written beside the input.
A subset goes through the CLI: exit code 2, one stderr line, no traceback, no run folder. Shrunk failing examples are
kept below as regular tests."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from case_counts import FUZZ, Counter
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st
from pandas._libs.parsers import STR_NA_VALUES

from sentitune.core.errors import SentituneError
from sentitune.data import DataConfig, prepare_frames, read_source

EXAMPLES = {"csv": 120, "tsv": 40, "jsonl": 100, "json": 40, "parquet": 60, "bytes": 100, "prepare": 120, "cli": 12}

# Texts: any character a UTF-8 file can hold (no lone surrogates), CR/LF/quotes/delimiters on purpose, sometimes
# empty or whitespace, sometimes huge.
CHARS = st.characters(blacklist_categories=("Cs",))
PLAIN_TEXT = st.text(st.one_of(CHARS, st.sampled_from(list("\r\n\t,\"' \\;|\ufeff\x85\u2028"))), max_size=40)
HUGE_TEXT = st.builds(lambda char, n: char * n, st.sampled_from(["a", "é", "語", "😀 ", "x\n"]),
                      st.integers(20_000, 120_000))
TEXT = st.one_of(PLAIN_TEXT, st.sampled_from(["", " ", "NA", "null", "None", "nan", "N/A", "#N/A", "0", "1.5",
                                             "True", "-"]), HUGE_TEXT.filter(lambda _: True))
LABEL = st.one_of(st.integers(-2, 6), st.sampled_from(["pos", "neg", "neutral", "positive", "negative", "1 star",
                                                       "2 stars", "NA", "", " ", "nan", "٣", "１", "Pos", "yes"]),
                  st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(), st.text(CHARS, max_size=6),
                  st.integers(-(2 ** 70), 2 ** 70))
WORDS = ["good", "bad", "film", "plot", "語", "😀", "très", "<br />", "&amp;", "\n"]
EXTRA_NAMES = st.sampled_from(["rating", "movie", "id", "label_name", "review", "text", "label", "", "Unnamed: 0"])


@st.composite
def tables(draw, label=LABEL, text=TEXT):
    """(column names, rows): text and label columns (sometimes duplicated or missing) among extra columns."""
    names = ["text", "label"] + draw(st.lists(st.one_of(EXTRA_NAMES, st.text(CHARS, max_size=8)), max_size=3))
    if draw(st.booleans()):
        names = draw(st.permutations(names))
    if draw(st.integers(0, 9)) == 0:
        names = [n for n in names if n != draw(st.sampled_from(["text", "label"]))]
    n_rows = draw(st.integers(0, 12))
    values = {"text": text, "label": label}
    rows = [[draw(values.get(name, st.one_of(TEXT, LABEL))) for name in names] for _ in range(n_rows)]
    return names, rows


@st.composite
def class_tables(draw):
    """Tables of mostly valid texts whose labels come from a few classes (most of the time a learnable task)."""
    usual = st.sampled_from([["neg", "pos"], [0, 1], ["negative", "neutral", "positive"], [1, 2, 3, 4, 5],
                             ["1 star", "2 stars", "3 stars"], [True, False], ["a", "b"]])
    pool = draw(usual if draw(st.integers(0, 3)) else st.lists(LABEL, min_size=2, max_size=4, unique_by=str))
    n_rows = draw(st.integers(4, 40))
    words = st.builds(" ".join, st.lists(st.one_of(st.sampled_from(WORDS), PLAIN_TEXT), min_size=1, max_size=6))
    text = words.filter(str.strip) if draw(st.integers(0, 5)) else st.one_of(words, TEXT)
    extras = draw(st.lists(st.sampled_from(["movie", "rating", "id"]), max_size=2, unique=True))
    names = ["text", "label", *extras]
    extra = {"movie": st.sampled_from(["tt1", "tt2", "tt3", "tt4", "tt5", None]), "rating": st.integers(1, 10),
             "id": st.integers(0, 5)}
    rows = [[draw(text), draw(st.sampled_from(pool)), *(draw(extra[e]) for e in extras)] for _ in range(n_rows)]
    return names, rows


def cell(value) -> str:
    return "" if value is None else str(value)


def write_csv(path: Path, names, rows, delimiter: str, newline: str, quoting: int, bom: bool) -> None:
    """The table as CSV/TSV. Python's csv module leaves a lone CR unquoted under QUOTE_MINIMAL when the line end is
    LF, which every CSV reader takes for a line end: such tables are written with every field quoted."""
    if any("\r" in cell(v) for row in [names, *rows] for v in row):
        quoting = csv.QUOTE_ALL
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    writer.writerow(names)
    writer.writerows([[cell(v) for v in row] for row in rows])
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))


def json_value(value):
    return None if isinstance(value, float) and value in {float("inf"), float("-inf")} or value != value else value


def looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip().lower() in {"true", "false"}
    return True


def surely_valid(names, rows) -> bool:
    """Whether the table must read: one text and one label column, every text a non-blank string, some text not
    a number (an all-number column is refused as not text), every label present."""
    if names.count("text") != 1 or names.count("label") != 1 or not rows:
        return False
    texts = [row[names.index("text")] for row in rows]
    labels = [row[names.index("label")] for row in rows]
    return (all(isinstance(t, str) and t.strip() for t in texts) and not all(looks_numeric(t) for t in texts)
            and all(map(present, labels)))


def present(label) -> bool:
    """A label value every format writes as a class: not missing, blank, infinite or a list/object."""
    if label is None or isinstance(label, (list, dict)) or isinstance(label, float) and not abs(label) < float("inf"):
        return False
    return bool(str(label).strip()) and str(label) not in STR_NA_VALUES  # a CSV's "NA" label is a missing one


def write_jsonl(path: Path, names, rows, newline: str, bom: bool, array: bool = False) -> None:
    """One object per line (duplicate keys written as they are), or one array of objects."""
    objects = ["{" + ", ".join(f"{json.dumps(k)}: {json.dumps(json_value(v), allow_nan=False)}"
                               for k, v in zip(names, row)) + "}" for row in rows]
    body = ("[" + ",".join(objects) + "]") if array else "".join(o + newline for o in objects)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body.encode("utf-8"))


def write_parquet(path: Path, names, rows) -> None:
    columns = []
    for i, _ in enumerate(names):
        values = [row[i] for row in rows]
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 or kinds & {int} and any(isinstance(v, int) and abs(v) >= 2 ** 63 for v in values):
            values = [None if v is None else str(v) for v in values]  # parquet columns hold one type
        columns.append(pa.array(values, type=pa.string() if not kinds else None))
    pq.write_table(pa.Table.from_arrays(columns, names=list(names)), path)


def expected_texts(names, rows) -> list | None:
    """The texts a reader must return: the first column named text."""
    return [row[names.index("text")] for row in rows] if "text" in names else None


def check_error(exc: SentituneError, *names: str) -> str:
    message = str(exc)
    assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
    assert any(name in message for name in names), (message, names)
    return message


def read_checked(path: Path, cfg: DataConfig, written: list | None = None, valid: bool = False):
    """read_source's frames, or None after checking its error; `written`: the texts the file holds; `valid`: it
    must read."""
    before = set(path.parent.iterdir())
    try:
        frames = read_source(str(path), cfg)
    except SentituneError as exc:
        check_error(exc, path.name, "--data")
        assert not valid, f"a valid file was refused: {exc}"
        frames = None
    assert set(path.parent.iterdir()) == before  # a reader writes nothing
    if frames is None:
        return None
    for split, frame in frames.items():
        assert {"text", "label"} <= set(frame.columns) and frame.columns.is_unique
        assert frame["text"].map(lambda t: isinstance(t, str) and bool(t.strip())).all()
        assert not frame["label"].isna().any()
    if written is not None:
        assert frames["train"]["text"].tolist() == written
    return frames


def in_folder(fn):
    with tempfile.TemporaryDirectory() as folder:
        return fn(Path(folder))


@pytest.mark.parametrize("kind", ["csv", "tsv"])
def test_delimited_files_read_back_what_was_written_or_fail_in_one_line(kind):
    with Counter("hypothesis", f"read_source {kind}") as count:
        @given(table=tables(), newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans(),
               quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
        @settings(max_examples=EXAMPLES[kind], **FUZZ)
        def run(table, newline, bom, quoting):
            count()
            names, rows = table
            note(f"names={names!r} rows={rows!r}"[:3000])

            def body(folder: Path):
                path = folder / f"data.{kind}"
                write_csv(path, names, rows, "\t" if kind == "tsv" else ",", newline, quoting, bom)
                texts = expected_texts(names, rows)
                frames = read_checked(path, DataConfig(data=str(path)), valid=surely_valid(names, rows))
                if frames is not None and texts is not None:
                    assert frames["train"]["text"].tolist() == [str(t) for t in texts]

            in_folder(body)

        run()


@pytest.mark.parametrize("kind", ["jsonl", "json"])
def test_json_files_read_back_what_was_written_or_fail_in_one_line(kind):
    with Counter("hypothesis", f"read_source {kind}") as count:
        @given(table=tables(label=st.one_of(LABEL, st.lists(st.integers(), max_size=2),
                                             st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))),
               newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans())
        @settings(max_examples=EXAMPLES[kind], **FUZZ)
        def run(table, newline, bom):
            count()
            names, rows = table
            note(f"names={names!r} rows={rows!r}"[:3000])

            def body(folder: Path):
                path = folder / f"data.{kind}"
                write_jsonl(path, names, rows, newline, bom, array=kind == "json")
                frames = read_checked(path, DataConfig(data=str(path)), valid=surely_valid(names, rows))
                texts = expected_texts(names, rows)
                if frames is not None and texts is not None and names.count("text") == 1:
                    assert frames["train"]["text"].tolist() == texts

            in_folder(body)

        run()


def test_parquet_files_read_back_what_was_written_or_fail_in_one_line():
    with Counter("hypothesis", "read_source parquet") as count:
        @given(table=tables())
        @settings(max_examples=EXAMPLES["parquet"], **FUZZ)
        def run(table):
            count()
            names, rows = table
            note(f"names={names!r} rows={rows!r}"[:3000])

            def body(folder: Path):
                path = folder / "data.parquet"
                write_parquet(path, names, rows)
                frames = read_checked(path, DataConfig(data=str(path)), valid=surely_valid(names, rows))
                texts = expected_texts(names, rows)
                if frames is not None and texts is not None and names.count("text") == 1:
                    assert frames["train"]["text"].tolist() == texts

            in_folder(body)

        run()


def test_arbitrary_bytes_in_any_format_fail_in_one_line_or_read():
    with Counter("hypothesis", "read_source arbitrary bytes") as count:
        @given(raw=st.one_of(st.binary(max_size=300),
                             st.builds(lambda b, t: b + t.encode("utf-8", "surrogatepass"),
                                       st.sampled_from([b"text,label\n", b'{"text": ', b"PAR1", b"\xef\xbb\xbf"]),
                                       st.text(max_size=60))),
               suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".parquet", ".tar.gz", ".txt"]))
        @settings(max_examples=EXAMPLES["bytes"], **FUZZ)
        def run(raw, suffix):
            count()

            def body(folder: Path):
                path = folder / f"data{suffix}"
                path.write_bytes(raw)
                read_checked(path, DataConfig(data=str(path)))

            in_folder(body)

        run()


def test_what_the_readers_accept_prepares_into_splits_or_fails_in_one_line():
    """prepare_frames on read tables: every split non-empty with every class, labels encoded 0..K-1."""
    outcomes = []
    with Counter("hypothesis", "prepare_frames on read CSV") as count:
        @given(table=class_tables(),
               validation_size=st.sampled_from([0.1, 0.2, 0.5, 0.9]), per_class=st.sampled_from([None, 1, 2, 5]),
               labels=st.sampled_from([None] * 5 + ["neg,pos", "0,1", "a,b,c"]),
               ordinal=st.sampled_from([None] * 3 + [True]))
        @settings(max_examples=EXAMPLES["prepare"], **FUZZ)
        def run(table, validation_size, per_class, labels, ordinal):
            count()
            names, rows = table
            note(f"names={names!r} rows={rows!r}"[:3000])
            assume(len(rows) >= 2)

            def body(folder: Path):
                path = folder / "data.csv"
                write_csv(path, names, rows, ",", "\n", csv.QUOTE_MINIMAL, False)
                cfg = DataConfig(data=str(path), validation_size=validation_size, train_per_class=per_class,
                                 labels=labels, ordinal=ordinal)
                try:
                    out, report = prepare_frames(cfg)
                except SentituneError as exc:
                    check_error(exc, path.name, "--labels", "--ordinal", "validation_size", "test_size")
                    outcomes.append(str(exc)[len(str(path)):][:40])
                    return
                outcomes.append("prepared")
                n = len(report["labels"]["names"])
                assert n >= 2 and len(set(report["labels"]["names"])) == n
                for split in ("train", "validation", "test"):
                    frame = out[split]
                    assert len(frame) and set(frame["label"]) <= set(range(n))
                assert sum(map(len, out.values())) <= len(rows)

            in_folder(body)

        run()
    assert "prepared" in outcomes  # the generated tables are not all refused


def test_a_subset_through_the_cli_exits_2_with_one_line_and_writes_nothing():
    """`sentitune train --data FILE --model MISSING`: bad data is named, good data gets as far as the model."""
    from test_cli import sentitune

    with Counter("hypothesis", "CLI train --data (exit 2, one line)") as count:
        @given(table=tables(), kind=st.sampled_from(["csv", "jsonl", "parquet"]))
        @settings(max_examples=EXAMPLES["cli"], **FUZZ)
        def run(table, kind):
            count()
            names, rows = table
            note(f"names={names!r} rows={rows!r}"[:3000])

            def body(folder: Path):
                path = folder / f"data.{kind}"
                {"csv": lambda: write_csv(path, names, rows, ",", "\r\n", csv.QUOTE_MINIMAL, True),
                 "jsonl": lambda: write_jsonl(path, names, rows, "\n", False),
                 "parquet": lambda: write_parquet(path, names, rows)}[kind]()
                result = sentitune("train", "--data", str(path), "--model", str(folder / "no-model"),
                                   "--output-dir", str(folder / "runs"), cwd=folder)
                lines = [line for line in result.stderr.splitlines() if line.strip()]
                assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
                assert "Traceback" not in result.stderr and ("data." in lines[0] or "--model" in lines[0])
                assert not (folder / "runs").exists() or not any((folder / "runs").iterdir())

            in_folder(body)

        run()


# ---------------------------------------------------------------- shrunk examples the fuzzer found


def read_one(tmp_path, name: str, content: str | bytes, **cfg):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return read_source(str(path), DataConfig(data=str(path), **cfg))["train"]


def test_a_csv_text_reading_na_or_null_is_a_text_not_a_missing_one(tmp_path):
    frame = read_one(tmp_path, "x.csv", "text,label,rating\nNA,1,NA\nnull,0,3\nNone,1,\n")
    assert frame["text"].tolist() == ["NA", "null", "None"] and frame["rating"].isna().tolist() == [True, False, True]
    with pytest.raises(SentituneError, match=r"x.csv \[train\]: missing label at row 0"):
        read_one(tmp_path, "x.csv", "text,label\nfine,NA\n")


@pytest.mark.parametrize("name, content", [("x.jsonl", '\ufeff{"text": "a", "label": 1}\n'),
                                           ("x.json", '\ufeff[{"text": "a", "label": 1}]'),
                                           ("x.tsv", "\ufefftext\tlabel\na\t1\n")])
def test_a_byte_order_mark_is_not_part_of_the_data(tmp_path, name, content):
    assert read_one(tmp_path, name, content)[["text", "label"]].values.tolist() == [["a", 1]]


@pytest.mark.parametrize("name, content", [("x.jsonl", '{"text": ":", "rating": -9223372036854775809, "label": 0}\n'),
                                           ("x.json", '[{"text": ":", "rating": 18446744073709551616, "label": 0}]')])
def test_an_integer_beyond_64_bits_in_another_column_still_reads(tmp_path, name, content):
    frame = read_one(tmp_path, name, content)  # pandas' JSON parser refuses it: "Value is too small"
    assert frame[["text", "label"]].values.tolist() == [[":", 0]] and abs(frame["rating"][0]) > 2**63


def test_parquet_with_a_repeated_column_name_reads_like_a_csv(tmp_path):
    table = pa.Table.from_arrays([pa.array(["a", "b"]), pa.array([1, 0]), pa.array([1, 2]), pa.array([3, 4])],
                                 names=["text", "label", "rating", "rating"])
    pq.write_table(table, tmp_path / "x.parquet")
    frame = read_source(str(tmp_path / "x.parquet"))["train"]
    assert frame["text"].tolist() == ["a", "b"] and frame["rating"].tolist() == [1, 2]


def test_a_chosen_text_column_replaces_a_column_called_text(tmp_path):
    frame = read_one(tmp_path, "x.csv", "text,review,label\nignored,kept,1\n", text_column="review")
    assert list(frame.columns) == ["text", "label"] and frame["text"].tolist() == ["kept"]
    frame = read_one(tmp_path, "y.csv", "label,stars,x\nthe text,5,1\n", text_column="label", label_column="stars")
    assert frame[["text", "label"]].values.tolist() == [["the text", 5]]
    with pytest.raises(SentituneError, match="--text-column and --label-column both name 'label'"):
        read_one(tmp_path, "z.csv", "label,x\na,1\n", text_column="label")


@pytest.mark.parametrize("label, message", [("[1]", "is a list, not a class"), ('{"a": 1}', "is a dict, not a class"),
                                            ('"  "', "missing label at row 0")])
def test_a_label_that_is_a_list_an_object_or_blank_is_named(tmp_path, label, message):
    with pytest.raises(SentituneError, match=message):
        read_one(tmp_path, "x.jsonl", f'{{"text": "a", "label": {label}}}\n')


def test_too_few_examples_to_hold_out_are_one_line_errors(tmp_path):
    rows = "text,label\n" + "".join(f"text {i},{'a' if i < 3 else 'b'}\n" for i in range(5))
    (tmp_path / "x.csv").write_text(rows)
    with pytest.raises(SentituneError, match=r"x.csv: cannot hold out test_size 0.2 of 5 rows .*--test-size"):
        prepare_frames(DataConfig(data=str(tmp_path / "x.csv")))
    cfg = DataConfig(data=str(tmp_path / "x.csv"), test_size=0.4, validation_size=0.5)
    with pytest.raises(SentituneError, match=r"x.csv: cannot hold out validation_size 0.5 .*--validation-size"):
        prepare_frames(cfg)


def test_too_few_train_examples_for_the_classes_is_a_one_line_error(tmp_path):
    rows = "text,label\n" + "".join(f"text {i},{'abc'[i % 3]}\n" for i in range(30))
    (tmp_path / "x.csv").write_text(rows)
    with pytest.raises(SentituneError, match=r"--train-examples 2: cannot keep every class's share"):
        prepare_frames(DataConfig(data=str(tmp_path / "x.csv"), train_examples=2))
