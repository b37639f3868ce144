"""Hypothesis against the config validator (sentitune.run.config: load_config/_build): YAML files whose values are
anything YAML can hold (nulls, booleans, huge and negative numbers, .inf/.nan, dates, text with any character,
lists, mappings), with known and unknown keys of any type, alone or over a preset; and files of arbitrary text.

Property: a TrainConfig whose every field has its type and passes validation, whose seeds seed numpy, and which
saved and loaded again (as a run folder does) is the same config; or a one-line SentituneError naming the file.
A subset goes through the CLI: exit code 2, one stderr line, no traceback, nothing written. Shrunk failing examples
are kept below as regular tests."""

from __future__ import annotations

import dataclasses
import datetime
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from case_counts import FUZZ, Counter
from hypothesis import given, settings
from hypothesis import strategies as st

from sentitune.core.errors import SentituneError
from sentitune.data import DataConfig
from sentitune.run.config import PRESETS, TrainConfig, load_config, validate

EXAMPLES = {"values": 300, "text": 150, "cli": 12}
TRAIN_FIELDS = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "data"]
DATA_FIELDS = [f.name for f in dataclasses.fields(DataConfig)]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.integers(-(2 ** 80), 2 ** 80),
                   st.floats(), st.sampled_from([1e-4, 0.5, 16, 2.0, "1e-4", "auto", "16", "yes", "", "best"]),
                   TEXT, st.dates(), st.datetimes())
VALUE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(TEXT, inner, max_size=3)), max_leaves=6)
KEY = st.one_of(st.sampled_from(TRAIN_FIELDS), TEXT, st.integers(), st.booleans(), st.none(), st.floats())


DEFAULTS = {**TrainConfig().to_dict(), **{f"data.{k}": v for k, v in DataConfig().__dict__.items()}}


def plausible(name: str):
    """Values a user might write for `name`: its default, written another way, or nearby."""
    default = DEFAULTS[name]
    near = [default]
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        near += [default * 2, default / 2, -default, str(default), 0, 1]
    if isinstance(default, str):
        near += [default.upper(), f" {default} ", "ok-name", "auto"]
    if isinstance(default, bool) or default is None:
        near += ["yes", "no", True, False, None, 0.5, 3]
    return st.sampled_from(near)


@st.composite
def configs(draw) -> dict:
    """Known fields with plausible or arbitrary values (one in four), sometimes an unknown key of any type."""
    def value(name):
        return draw(VALUE if draw(st.integers(0, 3)) == 0 else plausible(name))

    values = {name: value(name) for name in draw(st.lists(st.sampled_from(TRAIN_FIELDS), max_size=6, unique=True))}
    if draw(st.integers(0, 4)) == 0:
        values[draw(KEY)] = draw(VALUE)
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from(DATA_FIELDS), max_size=4, unique=True))
        values["data"] = {name: value(f"data.{name}") for name in names}
        if draw(st.integers(0, 4)) == 0:
            values["data"] = draw(VALUE)
    return values


def check_error(exc: SentituneError, *names: str) -> None:
    message = str(exc)
    assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
    assert any(name in message for name in names), (message, names)


def check_config(cfg: TrainConfig, folder: Path) -> None:
    """Every field of its type, valid, seeds numpy accepts, and the same after a save and a load."""
    assert validate(cfg) is cfg
    for obj in (cfg, cfg.data):
        for f in dataclasses.fields(obj):
            value, kind = getattr(obj, f.name), str(f.type)
            if f.name == "data":
                continue
            if value is None:
                assert "None" in kind, f.name
            else:
                expected = {"int": int, "float": float, "bool": bool, "str": str}[kind.replace(" | None", "")]
                assert type(value) is expected or expected is float and type(value) is int, (f.name, value)
    np.random.RandomState(cfg.seed), np.random.RandomState(cfg.data.seed)
    saved = folder / "saved.yaml"
    saved.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    assert load_config(saved) == cfg


def load_checked(values, preset: str | None, folder: Path):
    path = folder / "c.yaml"
    path.write_text(values if isinstance(values, str) else yaml.safe_dump(values, allow_unicode=True))
    try:
        cfg = load_config(path, preset=preset)
    except SentituneError as exc:
        check_error(exc, path.name, "--batch-size", "--eval-batch-size")
        return None
    check_config(cfg, folder)
    return cfg


def test_configs_with_any_yaml_values_load_valid_or_fail_in_one_line():
    with Counter("hypothesis", "load_config on arbitrary YAML values") as count:
        @given(values=configs(), preset=st.sampled_from([None, None, *PRESETS]))
        @settings(max_examples=EXAMPLES["values"], **FUZZ)
        def run(values, preset):
            count()
            with tempfile.TemporaryDirectory() as folder:
                load_checked(values, preset, Path(folder))

        run()


def test_config_files_of_arbitrary_text_load_or_fail_in_one_line():
    with Counter("hypothesis", "load_config on arbitrary text") as count:
        @given(text=st.one_of(st.text(max_size=80), st.builds(lambda k, v: f"{k}: {v}\n", st.sampled_from(
            TRAIN_FIELDS), st.text(st.characters(blacklist_categories=("Cs",)), max_size=15))),
            raw=st.binary(max_size=40))
        @settings(max_examples=EXAMPLES["text"], **FUZZ)
        def run(text, raw):
            count()
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "c.yaml"
                path.write_bytes(text.encode("utf-8", "surrogatepass") + raw)
                try:
                    cfg = load_config(path)
                except SentituneError as exc:
                    check_error(exc, path.name, "--batch-size", "--eval-batch-size")
                    return
                check_config(cfg, Path(folder))

        run()


def test_a_subset_through_the_cli_exits_2_with_one_line_and_writes_nothing():
    """`sentitune train --config FILE --data MISSING`: a bad config is named, a good one gets as far as the data."""
    from test_cli import sentitune

    with Counter("hypothesis", "CLI train --config (exit 2, one line)") as count:
        @given(values=configs())
        @settings(max_examples=EXAMPLES["cli"], **FUZZ)
        def run(values):
            count()
            with tempfile.TemporaryDirectory() as name:
                folder = Path(name)
                (folder / "c.yaml").write_text(yaml.safe_dump(values, allow_unicode=True))
                result = sentitune("train", "--config", str(folder / "c.yaml"), "--data", str(folder / "none.csv"),
                                   "--output-dir", str(folder / "runs"), cwd=folder)
                lines = [line for line in result.stderr.splitlines() if line.strip()]
                assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
                assert "Traceback" not in result.stderr
                assert sorted(p.name for p in folder.iterdir()) == ["c.yaml"]

        run()


# ---------------------------------------------------------------- shrunk examples the fuzzer found


@pytest.mark.parametrize("text, field", [("batch_size: .inf", "batch_size"), ("seed: .inf", "seed"),
                                         ("data:\n  seed: .inf", "data.seed"),
                                         (f"learning_rate: {10 ** 400}", "learning_rate")])
def test_infinite_or_huge_numbers_are_one_line_errors(tmp_path, text, field):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(SentituneError, match=f"c.yaml: {field} = .* is not an? (int|float)"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize("text, field", [(f"batch_size: {10 ** 100}", "batch-size"), (f"seed: {2 ** 32}", "seed"),
                                         ("seed: -1", "seed"), ("data:\n  seed: -5", "data.seed"),
                                         ("epochs: 1e400", "epochs")])
def test_whole_numbers_out_of_range_are_named(tmp_path, text, field):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(SentituneError, match=f"c.yaml: {field} = .* is out of range"):
        load_config(tmp_path / "c.yaml")


def test_keys_that_are_not_text_are_unknown_fields(tmp_path):
    (tmp_path / "c.yaml").write_text("1: 2\ncolour: 3\n~: 4\n2.5: 5\n")
    with pytest.raises(SentituneError, match=r"unknown field\(s\) \['1', '2.5', 'None', 'colour'\]"):
        load_config(tmp_path / "c.yaml")


def test_a_mapping_over_a_preset_number_is_a_type_error(tmp_path):
    (tmp_path / "c.yaml").write_text("learning_rate: {a: 1}\n")
    with pytest.raises(SentituneError, match=r"learning_rate = \{'a': 1\} is not a float"):
        load_config(tmp_path / "c.yaml", preset="cpu-quick")


@pytest.mark.parametrize("text", ["name: \"a\\0b\"", "output_dir: \"runs\\0x\"", "data:\n  data: \"x\\0.csv\""])
def test_a_nul_in_a_name_or_path_is_refused(tmp_path, text):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(SentituneError, match="holds a NUL character"):
        load_config(tmp_path / "c.yaml")


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SentituneError, match=r"c.yaml: invalid UTF-8 at byte offset 9"):
        load_config(tmp_path / "c.yaml")


def test_a_date_where_text_goes_is_kept_as_its_text(tmp_path):
    (tmp_path / "c.yaml").write_text("name: 2020-01-02\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.name == "2020-01-02" and isinstance(datetime.date.fromisoformat(cfg.name), datetime.date)
