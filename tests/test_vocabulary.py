"""One vocabulary across every command (docs/cli.md): --output-dir for folders written, --output for files written,
--baselines, --seed (training) and --data-seed (the data sample) with one meaning each, durations as 90s/10m/1.5h,
predict --input, export --backend; the old spellings hidden, working, and warning in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer.main
from test_cli import sentitune
from typer.testing import CliRunner

from sentitune.app import cli
from sentitune.app.cli import DATA_SEED_HELP, DURATION, SEED_HELP, app
from sentitune.core.errors import SentituneError

OLD_SPELLINGS = {"--out", "--html", "--names", "--file", "--quantize", "--no-quantize", "--openvino", "--no-openvino"}
DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def commands() -> dict:
    """Every command of the CLI by its name as typed (`data stats` for a group's command)."""
    def walk(group, prefix):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", command

    return dict(walk(typer.main.get_command(app), ""))


def options(command, hidden: bool = False) -> dict[str, object]:
    """flag -> option: the visible options (or the hidden ones) of a command, each of its spellings a key."""
    return {flag: p for p in command.params if p.param_type_name == "option" and bool(p.hidden) == hidden
            for flag in [*p.opts, *p.secondary_opts]}


COMMANDS = commands()


def test_the_tree_has_every_command():
    assert set(COMMANDS) == {"train", "distill", "adapt", "data stats", "predict", "explain", "run", "evaluate",
                             "report", "present", "baseline", "compare", "tune", "serve", "export"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_the_vocabulary_and_hides_the_old_spellings(name):
    text = CliRunner().invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"}).output
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
    visible = set(options(COMMANDS[name]))
    assert visible <= shown | {"--help"}, visible - shown
    assert not shown & OLD_SPELLINGS and not visible & OLD_SPELLINGS, shown & OLD_SPELLINGS
    assert "a local a " not in text


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_folders_written_are_output_dir_and_files_written_output(name):
    for flag, option in options(COMMANDS[name]).items():
        help_text = option.help or ""
        if any(word.startswith("out") for word in flag[2:].split("-")):  # --out, --out-dir, --output-file...
            assert flag in {"--output-dir", "--output"}, (name, flag)
        if re.match(r"(Folder (for|that holds)|File for|Also write)", help_text):
            assert flag in {"--output-dir", "--output"}, (name, flag, help_text)
        if flag == "--output-dir":
            assert help_text.startswith("Folder"), (name, help_text)
        if flag == "--output":
            assert "file" in help_text.lower() and "folder" not in help_text.lower(), (name, help_text)


def test_seed_and_data_seed_mean_the_same_everywhere():
    seeds = {name: options(c)["--seed"].help for name, c in COMMANDS.items() if "--seed" in options(c)}
    data_seeds = {name: options(c)["--data-seed"].help for name, c in COMMANDS.items() if "--data-seed" in options(c)}
    assert set(seeds) == {"train", "distill", "adapt", "run", "tune"}
    assert set(data_seeds) == set(seeds) | {"baseline"}
    assert set(seeds.values()) == {SEED_HELP} and set(data_seeds.values()) == {DATA_SEED_HELP}
    assert "--data-seed" in SEED_HELP and "initialisation" in SEED_HELP and "examples" in DATA_SEED_HELP


def test_baselines_is_one_flag():
    have = {name for name, c in COMMANDS.items() if "--baselines" in options(c)}
    assert have == {"run", "baseline"}
    assert options(COMMANDS["run"])["--baselines"].help == options(COMMANDS["baseline"])["--baselines"].help


def test_durations_read_units_everywhere():
    durations = {(name, flag): option for name, c in COMMANDS.items() for flag, option in options(c).items()
                 if re.search(r"timeout|budget|duration|(?<!per )seconds?\b", f"{flag} {option.help}", re.I)}
    assert set(durations) == {("run", "--time-budget"), ("tune", "--timeout")}
    for (name, flag), option in durations.items():
        assert DURATION in option.help, (name, flag)
        text = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"}).output
        assert re.search(rf"{flag} <str>", text), (name, flag)  # text to parse, not a bare number of seconds


@pytest.mark.parametrize("args, flag", [(["tune", "--timeout", "10x"], "--timeout 10x"),
                                        (["run", "--time-budget", "ten"], "--time-budget ten")])
def test_a_bad_duration_is_one_line_naming_the_flag(args, flag, tmp_path):
    result = sentitune(*args, cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0] == f"error: {flag}: use a duration such as 600s, 10m or 1.5h (or none)."
    assert not list(tmp_path.iterdir())


def test_predict_reads_files_with_input_and_export_names_backends():
    predict, export = options(COMMANDS["predict"]), options(COMMANDS["export"])
    assert "--input" in predict and "--output" in predict and "--file" in options(COMMANDS["predict"], hidden=True)
    assert "--backend" in export and {"--quantize", "--openvino"} <= set(options(COMMANDS["export"], hidden=True))


def test_docs_table_lists_each_flag_with_the_commands_that_have_it():
    rows = [line for line in DOCS.read_text().splitlines() if re.match(r"\| `--", line)]
    assert rows
    listed = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        flag = re.match(r"`(--[a-z-]+)[^`]*`", cells[0]).group(1)
        listed[flag] = set(re.findall(r"`([a-z ]+)`", cells[1]))
    for flag, names in listed.items():
        have = {name for name, c in COMMANDS.items() if flag in options(c)}
        assert have == names, (flag, have ^ names)
    assert {"--output-dir", "--output", "--seed", "--data-seed", "--baselines", "--input", "--backend",
            "--time-budget", "--timeout"} <= set(listed)


# ---------------------------------------------------------------- export --backend


@pytest.mark.parametrize("given, quantize, openvino, expected", [
    (None, None, None, {"onnx", "onnx-int8", "openvino"}),
    (["onnx"], None, None, {"onnx"}),
    (["onnx-int8,openvino"], None, None, {"onnx-int8", "openvino"}),
    (["onnx", "openvino"], None, None, {"onnx", "openvino"}),
    (None, False, None, {"onnx", "openvino"}),
    (None, None, False, {"onnx", "onnx-int8"}),
    (["onnx"], True, True, {"onnx", "onnx-int8", "openvino"}),
])
def test_export_backends(given, quantize, openvino, expected, monkeypatch, capsys):
    monkeypatch.setattr("sentitune.core.extras.installed", lambda *modules: True)
    assert cli._export_backends(given, quantize, openvino) == expected
    warned = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(warned) == (quantize is not None) + (openvino is not None)
    assert all("is deprecated; use --backend" in line for line in warned)


def test_export_default_leaves_openvino_out_where_it_is_not_installed(monkeypatch):
    monkeypatch.setattr("sentitune.core.extras.installed", lambda *modules: "openvino" not in modules)
    assert cli._export_backends(None, None, None) == {"onnx", "onnx-int8"}


@pytest.mark.parametrize("given, quantize, match", [
    (["tflite"], None, r"--backend tflite: use onnx, onnx-int8, openvino"),
    ([","], None, r"--backend ',': use onnx"),
    (["openvino"], None, None),
    (["onnx-int8"], False, r"--backend: nothing left to export"),
])
def test_export_backend_errors(given, quantize, match):
    if match is None:
        assert cli._export_backends(given, quantize, None) == {"openvino"}
        return
    with pytest.raises(SentituneError, match=match):
        cli._export_backends(given, quantize, None)


def test_export_passes_the_backends_on(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr("sentitune.inference.export.export_onnx", lambda m, q: calls.append(("onnx", q)) or [])
    monkeypatch.setattr("sentitune.inference.export.export_openvino", lambda m: calls.append(("openvino",)) or [])
    monkeypatch.setattr("sentitune.evaluation.backends.backend_quality", lambda m, n: None)
    for args, expected in ((["--backend", "onnx"], [("onnx", False)]),
                           (["--backend", "openvino"], [("openvino",)]),
                           (["--backend", "onnx-int8", "--backend", "openvino"], [("onnx", True), ("openvino",)])):
        calls.clear()
        result = sentitune("export", str(tmp_path), *args)
        assert result.returncode == 0 and calls == expected and not result.stderr, (args, result.stderr)
    calls.clear()
    result = sentitune("export", str(tmp_path), "--no-openvino", "--no-quantize")
    assert result.returncode == 0 and calls == [("onnx", False)]
    assert result.stderr.splitlines() == [
        "warning: --no-quantize is deprecated; use --backend (onnx, onnx-int8, openvino).",
        "warning: --no-openvino is deprecated; use --backend (onnx, onnx-int8, openvino)."]


# ---------------------------------------------------------------- the old spellings: hidden, working, one warning


@pytest.fixture
def recorded(monkeypatch):
    """Stand-ins for what the commands call, recording the folder or file each was given."""
    seen = {}

    def splits(cfg):
        seen["data_seed"] = cfg.seed
        return {"test": None}, {"labels": {"names": ["neg", "pos"]}}

    monkeypatch.setattr("sentitune.reporting.report.write_report",
                        lambda run, out_dir, **kw: seen.setdefault("report", out_dir) or "report.html")
    monkeypatch.setattr("sentitune.reporting.present.write_presentation",
                        lambda run, out: seen.setdefault("present", out) or "deck.html")
    monkeypatch.setattr("sentitune.evaluation.compare.compare",
                        lambda entries, out, allow: seen.setdefault("compare", out) and [])
    monkeypatch.setattr("sentitune.evaluation.compare.markdown", lambda table: "table")
    monkeypatch.setattr("sentitune.data.prepare_splits", splits)
    monkeypatch.setattr("sentitune.data.examples_descriptor", lambda *a: {})
    monkeypatch.setattr("sentitune.app.workflow.score_baselines",
                        lambda splits, labels, examples, names, out, options: seen.update(baselines=names, out=out))
    monkeypatch.setattr("sentitune.models.loading.default_model", lambda: "tokenizer")
    monkeypatch.setattr("sentitune.models.loading.load_tokenizer", lambda name: None)
    monkeypatch.setattr("sentitune.data.stats.dataset_stats", lambda cfg, tokenizer: {})
    monkeypatch.setattr("sentitune.data.stats.stats_for_json", lambda stats: {})
    monkeypatch.setattr("sentitune.data.stats.stats_table", lambda stats: "")
    monkeypatch.setattr("sentitune.evaluation.plots.plot_lengths", lambda stats, path: path)
    return seen


@pytest.mark.parametrize("args, old, new, key", [
    (["report", "RUN", "--out", "X"], "--out", "--output-dir", "report"),
    (["present", "RUN", "--out", "X"], "--out", "--output", "present"),
    (["compare", "RUN", "--out", "X"], "--out", "--output-dir", "compare"),
    (["baseline", "--out", "X"], "--out", "--output-dir", "out"),
    (["data", "stats", "--out", "X"], "--out", "--output-dir", None),
])
def test_old_folder_and_file_spellings_still_work_and_warn(args, old, new, key, recorded, tmp_path):
    args = [str(tmp_path / a) if a in {"RUN", "X"} else a for a in args]
    result = sentitune(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"warning: {old} is deprecated; use {new}."]
    if key is None:  # data stats writes its folder itself
        assert (tmp_path / "X" / "stats.json").is_file()
    else:
        assert Path(recorded[key]) == tmp_path / "X"
    both = sentitune(*args, new, str(tmp_path / "Y"), cwd=tmp_path)
    assert both.returncode == 2 and both.stderr.strip() == f"error: {old}: the old spelling of {new}; pass {new} only."


def test_new_spellings_need_no_warning(recorded, tmp_path):
    for args, key in ((["report", "RUN", "--output-dir", "X"], "report"), (["present", "RUN", "--output", "X"],
                      "present"), (["compare", "RUN", "--output-dir", "X"], "compare")):
        result = sentitune(*[str(tmp_path / a) if a in {"RUN", "X"} else a for a in args], cwd=tmp_path)
        assert result.returncode == 0 and not result.stderr and Path(recorded[key]) == tmp_path / "X"


def test_baseline_names_and_seed_still_work_and_warn(recorded, tmp_path):
    result = sentitune("baseline", "--names", "tfidf,vader", "--seed", "7", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert recorded["baselines"] == ["tfidf", "vader"] and recorded["data_seed"] == 7
    assert result.stderr.splitlines() == ["warning: --names is deprecated; use --baselines.",
                                          "warning: --seed is deprecated; use --data-seed."]
    recorded.clear()
    result = sentitune("baseline", "--baselines", "majority", "--data-seed", "9", cwd=tmp_path)
    assert result.returncode == 0 and not result.stderr
    assert recorded["baselines"] == ["majority"] and recorded["data_seed"] == 9


def test_explain_html_still_works_and_warns(monkeypatch, tmp_path):
    from sentitune.inference.explain import Explanation

    found = Explanation("a fine film", ["a", "fine", "film"], [(0, 1), (2, 6), (7, 11)], [0.0, 1.0, 0.1], "pos",
                        "pos", {"neg": 0.2, "pos": 0.8}, 0.0)
    monkeypatch.setattr("sentitune.inference.explain.explain", lambda *a: found)
    monkeypatch.setattr("sentitune.inference.predict.SentimentModel.from_pretrained",
                        classmethod(lambda cls, *a, **k: SimpleNamespace()))
    for flag, warned in (("--html", ["warning: --html is deprecated; use --output."]), ("--output", [])):
        out = tmp_path / flag[2:] / "why.html"
        result = sentitune("explain", str(tmp_path), "a fine film", flag, str(out))
        assert result.returncode == 0 and result.stderr.splitlines() == warned, result.stderr
        assert "fine" in out.read_text()


def test_predict_file_still_works_and_warns(tiny_model, tmp_path):
    (tmp_path / "t.txt").write_text("first review\x85 still the first\nsecond\n\n", encoding="utf-8")
    result = sentitune("predict", str(tiny_model), "--file", str(tmp_path / "t.txt"))
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 2
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == ["first review\x85 still the first",
                                                                                "second"]
    assert result.stderr.splitlines() == ["warning: --file is deprecated; use --input FILE --output - "
                                          "(JSON lines on stdout)."]
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\n")
    result = sentitune("predict", str(tiny_model), "--file", str(tmp_path / "bad.txt"))
    assert result.returncode == 2 and "invalid UTF-8" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 2 and f"--file {tmp_path / 'bad.txt'}" in result.stderr


def test_predict_without_texts_names_input():
    result = sentitune("predict", "nowhere")
    assert result.returncode == 2 and "--input FILE --output FILE" in result.stderr and "--file" not in result.stderr
