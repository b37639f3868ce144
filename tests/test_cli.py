"""The command line: thin over the API, one-line errors with exit code 2, flags from the config dataclasses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from sentitune.app.cli import app

runner = CliRunner()


def sentitune(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """The real entry point (`sentitune.app.cli.main`) in this process: exit code, stdout and stderr as a subprocess
    would give them, without paying torch's import for every call (the subprocess form is tested once below)."""
    import contextlib
    import io

    from sentitune.app.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.chdir(cwd or Path.cwd()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        argv, sys.argv = sys.argv, ["sentitune", *args]
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.argv = argv
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_the_installed_entry_point_exits_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sentitune", "train", "--data", str(tmp_path / "none.csv")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2 and len([x for x in result.stderr.splitlines() if x.strip()]) == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_bad_data_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "x.csv").write_text("review,label\nfine,1\n")
    result = sentitune("train", "--data", str(tmp_path / "x.csv"), "--output-dir", str(tmp_path))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing column(s) ['text']" in lines[0] and "--text-column" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_preset_and_missing_inputs_leave_nothing_behind(tmp_path, parquet_folder):
    assert "--preset nope: unknown" in sentitune("train", "--preset", "nope", cwd=tmp_path).stderr
    result = sentitune("train", "--data", str(tmp_path / "none.csv"), cwd=tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = sentitune("train", "--model", str(tmp_path / "no-model"), "--data", str(parquet_folder), cwd=tmp_path)
    assert result.returncode == 2 and "--model" in result.stderr and "local model folder" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_every_config_field_is_a_flag_with_help():
    import dataclasses

    import typer.main

    from sentitune.app.cli import SET_BY_AUTO
    from sentitune.run.config import TrainConfig

    text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output
    for field in dataclasses.fields(TrainConfig):
        if field.name != "data" and field.name not in SET_BY_AUTO:
            assert "--" + field.name.replace("_", "-") in text
    helps = {o: p.help for p in typer.main.get_command(app).commands["train"].params for o in p.opts}
    for field in SET_BY_AUTO:  # auto_batch_size is `--batch-size auto`
        assert "A number, or auto" in helps["--" + field.removeprefix("auto_").replace("_", "-")]
    for flag in ("--data ", "--train-per-class", "--data-seed", "--label-threshold", "--resume", "--preset"):
        assert flag in text


def test_data_stats_prints_counts_and_writes_a_histogram(parquet_folder, tiny_model, tmp_path):
    result = runner.invoke(app, ["data", "stats", "--data", str(parquet_folder), "--model", str(tiny_model),
                                 "--output-dir", str(tmp_path / "s")],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "s" / "stats.json").read_text())
    assert stats["splits"]["train"]["rows"] == 120 and stats["splits"]["train"]["labels"] == {"0": 60, "1": 60}
    assert 0 < stats["tokens"]["train"]["p50"] <= stats["tokens"]["train"]["p99"]
    assert (tmp_path / "s" / "token_lengths.png").stat().st_size > 5000


def test_predict_prints_json_lines(tiny_model):
    result = runner.invoke(app, ["predict", str(tiny_model), "a fine film", "a bad film"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["text"] for r in rows] == ["a fine film", "a bad film"]
    assert all(set(r["scores"]) == {"LABEL_0", "LABEL_1"} and r["label"] in r["scores"]
               for r in rows)  # the model's names


def test_predict_input_splits_on_newlines_only_and_refuses_bad_bytes(tiny_model, tmp_path):
    (tmp_path / "t.txt").write_text("first review\x85 still the first\nsecond\n\n", encoding="utf-8")
    result = sentitune("predict", str(tiny_model), "--input", str(tmp_path / "t.txt"), "--output", "-")
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 2, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["first review\x85 still the first", "second"]
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\n")
    result = sentitune("predict", str(tiny_model), "--input", str(tmp_path / "bad.txt"), "--output", "-")
    assert result.returncode == 2 and "invalid UTF-8" in result.stderr and "Traceback" not in result.stderr
    assert f"--input {tmp_path / 'bad.txt'}" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_error_lines_keep_brackets(tmp_path):
    result = sentitune("train", "--data", str(tmp_path / "[x]" / "none.csv"), "--output-dir", str(tmp_path))
    assert result.returncode == 2 and "[x]" in result.stderr and "Traceback" not in result.stderr


def test_invalid_values_stop_before_anything_is_created(tmp_path, parquet_folder):
    for flags, match in ((["--learning-rate", "-0.1"], "learning-rate = -0.1"),
                         (["--batch-size", "0"], "batch-size = 0"),
                         (["--scheduler", "zigzag"], "scheduler = 'zigzag'"), (["--max-steps", "0"], "max-steps = 0"),
                         (["--name", "../x"], "--name|name = '../x'"),
                         (["--self-distill", "ensemble"], "self_distill = 'ensemble'; use one of none, model, tfidf")):
        result = sentitune("train", "--data", str(parquet_folder), "--output-dir", str(tmp_path / "runs"), *flags)
        assert result.returncode == 2 and __import__("re").search(match, result.stderr), (flags, result.stderr)
    (tmp_path / "c.yaml").write_text("learning_rate: 1e-4\nbatch_size: sixteen\n")
    result = sentitune("train", "--config", str(tmp_path / "c.yaml"), "--data", str(parquet_folder))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--batch-size sixteen: use a positive whole number of examples, or auto" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_tune_command_runs_a_small_study(tiny_model, parquet_folder, tmp_path):
    (tmp_path / "space.yaml").write_text("learning_rate: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}\n")
    args = ["tune", "--model", str(tiny_model), "--data", str(parquet_folder), "--validation-size", "0.2",
            "--max-steps", "4", "--batch-size", "8", "--max-length", "32", "--study", str(tmp_path / "study"),
            "--n-trials", "2", "--space", str(tmp_path / "space.yaml"), "--pruner", "none"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "study" / "best.yaml").is_file() and len(list((tmp_path / "study" / "trials").iterdir())) == 2


def test_train_with_self_distill_prints_the_teacher_and_the_student(tiny_model, parquet_folder, tmp_path):
    args = ["train", "--model", str(tiny_model), "--data", str(parquet_folder), "--validation-size", "0.2",
            "--max-steps", "4", "--batch-size", "8", "--max-length", "32", "--output-dir", str(tmp_path / "runs"),
            "--name", "t", "--self-distill", "model", "--self-distill-texts", "0"]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    teacher = f"teacher {tmp_path / 'runs' / 't'}: test accuracy"
    assert teacher in result.output and "(soft labels: run:" in result.output
    assert str(tmp_path / "runs" / "t-taught") in result.output


def test_public_api_names_resolve():
    import sentitune
    import sentitune.app.workflow
    import sentitune.evaluation.compare
    import sentitune.training.train
    import sentitune.training.tune  # importing the submodules must not change what the public names are

    assert (sentitune.fine_tune is sentitune.app.workflow.fine_tune
            and sentitune.compare_results is sentitune.evaluation.compare.compare)
    assert all(callable(getattr(sentitune, name)) or isinstance(getattr(sentitune, name), dict)
               for name in sentitune.__all__)


def test_help_at_80_columns_keeps_every_flag_whole():
    text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "80"}).output
    assert "…" not in text and "--gradient-accumulation" in text and "--early-stopping-patience" in text
    assert "--no-trust-remote-code" in text and "--help <bool>" not in text


def test_a_scalar_data_section_in_yaml_is_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text("data: somewhere\n")
    result = sentitune("train", "--config", str(tmp_path / "c.yaml"), "--output-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "data must be a mapping" in result.stderr and "Traceback" not in result.stderr


def test_usage_errors_are_one_line():
    result = sentitune("train", "--bogus")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "--bogus" in lines[0] and "sentitune train --help" in lines[0]
