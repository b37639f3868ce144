"""The run folder: every path of a run and its typed reads and writes. No other module names a run's files.

```
runs/<name>/
  model/                 save_pretrained model + tokenizer (+ README.md model card, onnx/ after export)
  config.yaml            the resolved TrainConfig          -> RunFolder.config()
  metrics.json           validation/test metrics, labels, examples, training facts -> metrics()
  predictions.parquet    per-example class probabilities and logits               -> predictions()
  log.jsonl, tb/         every logged step                                         -> log()
  evaluation.json, plots/                                                          -> evaluation()
  data_stats.json, baselines/<entry>/, comparison/, report.html, report.md, presentation.html
  evaluations/<dataset>/ evaluation.json, predictions.parquet, plots/ of another dataset
```

A run is built in `<output_dir>/.<name>.partial/` (`RunFolder.work`) and renamed when complete. Run folders
written before N-class support (binary `prob`/`margin` columns, `comparison.json` at the top) still load.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import SentituneError
from ..core.io import atomic_dir, atomic_file, atomic_write_text, replace_dir
from ..core.labels import LabelScheme

CONFIG, METRICS, PREDICTIONS, EVALUATION, LOG = (
    "config.yaml", "metrics.json", "predictions.parquet", "evaluation.json", "log.jsonl")
DATA_STATS, COMPARISON, BASELINE, BUDGET = "data_stats.json", "comparison.json", "baseline.json", "budget.json"
BATCH_SWEEP = "batch_sweep.json"  # `--batch-size auto`: the sizes measured and the one chosen
MODEL, PLOTS, TB, CHECKPOINTS, BASELINES, COMPARISON_DIR, EVALUATIONS = (
    "model", "plots", "tb", "checkpoints", "baselines", "comparison", "evaluations")
REPORT_HTML, REPORT_MD, CARD = "report.html", "report.md", "README.md"
PRESENTATION, ONNX, ONNX_QUALITY = "presentation.html", "onnx", "quality.json"
ENSEMBLES = "ensembles"  # the run averaged with a baseline (`run --ensemble`), each in a baseline folder's format
PROB, LOGIT = "prob_{}", "logit_{}"
WEIGHTS = "*.safetensors"  # the only weights sentitune saves and loads
# in the work folder only: training has ended (its facts and the checkpoint holding the chosen weights), so a
# resume after a kill during the final save redoes that save instead of training again
TRAINED, TRASH = "trained.json", ".checkpoints.trash"
TEACHER = "teacher_logits"  # in a distillation's work folder only: the teacher's logits, so a resume reuses them


def read_json(path: Path) -> dict:
    """A JSON file as a dict ({} when absent); one-line error when unreadable."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SentituneError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); re-create it.") from None


def write_json(path: Path, values: dict) -> Path:
    return atomic_write_text(path, json.dumps(values, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (np.ndarray, Path)):
        return value.tolist() if isinstance(value, np.ndarray) else str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_jsonl(path: Path) -> list[dict]:
    """A JSON-lines file as dicts, skipping blank or torn lines (the file may still be growing)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


# ---------------------------------------------------------------- per-example prediction tables


def class_columns(frame: pd.DataFrame, template: str = PROB) -> list[str]:
    """The frame's `prob_0..prob_{K-1}` (or logit) columns in class order."""
    pattern = re.compile("^" + template.format(r"(\d+)") + "$")
    found = sorted((int(m.group(1)), c) for c in frame.columns if (m := pattern.match(str(c))))
    return [c for _, c in found]


def probabilities(frame: pd.DataFrame) -> np.ndarray:
    """The (n, K) class-probability matrix of a predictions table."""
    columns = class_columns(frame)
    if not columns:
        raise SentituneError("predictions: no prob_0..prob_K columns; the table should come from sentitune.")
    return frame[columns].to_numpy(float)


def logits(frame: pd.DataFrame) -> np.ndarray:
    """The (n, K) logits (log-probabilities where none were saved: softmax-equivalent)."""
    columns = class_columns(frame, LOGIT)
    if columns and frame[columns].notna().all().all():
        return frame[columns].to_numpy(float)
    return np.log(np.clip(probabilities(frame), 1e-12, 1.0))


def prediction_columns(probs: np.ndarray, logit_values: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """`pred`, `confidence`, `prob_i` (and `logit_i`) columns for a predictions table."""
    probs = np.asarray(probs, float)
    out = {"pred": probs.argmax(1), "confidence": probs.max(1)}
    out |= {PROB.format(i): probs[:, i] for i in range(probs.shape[1])}
    if logit_values is not None:
        out |= {LOGIT.format(i): np.asarray(logit_values, float)[:, i] for i in range(probs.shape[1])}
    return out


def upgrade_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    """A binary table of the first format (`prob` = P(positive), `margin`) in today's columns."""
    if class_columns(frame) or "prob" not in frame:
        return frame
    p = frame["prob"].to_numpy(float)
    margin = (frame["margin"].to_numpy(float) if "margin" in frame
              else np.log(np.clip(p, 1e-7, 1) / np.clip(1 - p, 1e-7, 1)))
    columns = prediction_columns(np.stack([1 - p, p], 1), np.stack([np.zeros_like(margin), margin], 1))
    if "pred" in frame:
        columns["pred"] = frame["pred"].to_numpy(int)
    return frame.drop(columns=[c for c in ("prob", "margin", "pred") if c in frame]).assign(**columns)


def read_predictions(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SentituneError(f"{path}: not found; "
                             "train the run first (sentitune train) or pass --data to predict afresh.")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for torn files
        raise SentituneError(f"{path}: unreadable ({type(exc).__name__}); re-run the stage that wrote it.") from None
    frame = upgrade_predictions(frame)
    missing = [c for c in ("label", "pred") if c not in frame] + ([] if class_columns(frame) else ["prob_0.."])
    if missing:
        raise SentituneError(f"{path}: missing column(s) {missing}; it should come from sentitune.")
    return frame


# ---------------------------------------------------------------- a run


@dataclass(frozen=True)
class RunFolder:
    """One run's folder. Paths are properties; reads are typed; writes are atomic."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, output_dir: str | Path, name: str) -> "RunFolder":
        """`<output_dir>/<name>`, refusing names that would leave `output_dir`."""
        if not name or name in {".", ".."} or Path(name).name != name or name.startswith("."):
            raise SentituneError(f"--name {name!r}: use a plain folder name (no '/', no leading '.').")
        return cls(Path(output_dir) / name)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def work(self) -> "RunFolder":
        """The folder this run is built in before it is renamed into place."""
        return RunFolder(self.path.with_name(f".{self.path.name}.partial"))

    @property
    def is_partial(self) -> bool:
        return self.path.name.endswith(".partial")

    # paths
    config_path = property(lambda self: self.path / CONFIG)
    metrics_path = property(lambda self: self.path / METRICS)
    predictions_path = property(lambda self: self.path / PREDICTIONS)
    evaluation_path = property(lambda self: self.path / EVALUATION)
    log_path = property(lambda self: self.path / LOG)
    data_stats_path = property(lambda self: self.path / DATA_STATS)
    budget_path = property(lambda self: self.path / BUDGET)
    batch_sweep_path = property(lambda self: self.path / BATCH_SWEEP)
    model_dir = property(lambda self: self.path / MODEL)
    card_path = property(lambda self: self.path / MODEL / CARD)
    tb_dir = property(lambda self: self.path / TB)
    checkpoints_dir = property(lambda self: self.path / CHECKPOINTS)
    teacher_dir = property(lambda self: self.path / TEACHER)
    plots_dir = property(lambda self: self.path / PLOTS)
    baselines_dir = property(lambda self: self.path / BASELINES)
    ensembles_dir = property(lambda self: self.path / ENSEMBLES)
    comparison_dir = property(lambda self: self.path / COMPARISON_DIR)
    report_html = property(lambda self: self.path / REPORT_HTML)
    report_md = property(lambda self: self.path / REPORT_MD)
    presentation_html = property(lambda self: self.path / PRESENTATION)
    onnx_quality_path = property(lambda self: self.path / MODEL / ONNX / ONNX_QUALITY)

    def evaluation_dir(self, slug: str) -> Path:
        """Where an evaluation on another dataset goes: `evaluations/<slug>/`."""
        return self.path / EVALUATIONS / slug

    def require(self) -> "RunFolder":
        """This folder if it holds a finished run; one-line error otherwise."""
        if self.is_partial:
            raise SentituneError(f"{self.path}: an unfinished run (.partial); "
                                 "finish it with `sentitune train --resume`.")
        if not self.metrics_path.is_file():
            raise SentituneError(f"{self.path}: no {METRICS}; pass a run folder made by `sentitune train`.")
        return self

    # reads
    def config(self):
        """config.yaml as a TrainConfig (fields written by older versions that no longer exist are dropped)."""
        from .config import load_config

        if not self.config_path.is_file():
            raise SentituneError(f"{self.config_path}: not found; pass a run folder made by `sentitune train`.")
        return load_config(self.config_path, lenient=True)

    def metrics(self) -> dict:
        return read_json(self.metrics_path)

    def labels(self) -> LabelScheme:
        """The run's classes: metrics.json's `labels`, else its model's id2label, else binary (first-format runs)."""
        recorded = self.metrics().get("labels")
        if recorded:
            return LabelScheme.from_dict(recorded)
        id2label = read_json(self.model_dir / "config.json").get("id2label")
        if id2label:
            return LabelScheme.from_dict({"names": [id2label[str(i)] for i in range(len(id2label))]})
        return LabelScheme.from_dict(None)

    def predictions(self, at: Path | None = None) -> pd.DataFrame:
        return read_predictions((at or self.path) / PREDICTIONS)

    def has_predictions(self) -> bool:
        return self.predictions_path.is_file()

    def has_weights(self) -> bool:
        """Whether model/ holds the model's weights (run folders copied to docs/ keep only its config)."""
        return any(self.model_dir.glob(WEIGHTS))

    def evaluation(self, at: Path | None = None) -> dict:
        """evaluation.json ({} before `sentitune evaluate`), first-format files upgraded to the N-class shape."""
        return upgrade_evaluation(read_json((at or self.path) / EVALUATION))

    def log(self) -> list[dict]:
        return read_jsonl(self.log_path)

    def data_stats(self) -> dict:
        return read_json(self.data_stats_path)

    def budget(self) -> dict:
        """The time plan the main job was sized by ({} when it ran without one)."""
        return read_json(self.budget_path)

    def batch_sweep(self) -> dict:
        """{"train": sweep, "eval": sweep} of `--batch-size auto` / `--eval-batch-size auto` ({} without)."""
        return read_json(self.batch_sweep_path)

    def comparison(self) -> dict:
        """The comparison table (`comparison/comparison.json`, or `comparison.json` in first-format runs)."""
        for path in (self.comparison_dir / COMPARISON, self.path / COMPARISON):
            if path.is_file():
                return read_json(path)
        return {}

    def onnx_quality(self) -> dict:
        """The exported backends' accuracy, agreement with torch and speed ({} before `sentitune export`)."""
        return read_json(self.onnx_quality_path)

    def comparison_chart(self) -> Path | None:
        for path in (self.comparison_dir / "comparison.png", self.path / "comparison.png"):
            if path.is_file():
                return path
        return None

    # writes
    def write_config(self, cfg) -> Path:
        import yaml

        return atomic_write_text(self.config_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    def write_metrics(self, metrics: dict) -> Path:
        return write_json(self.metrics_path, metrics)

    def write_predictions(self, frame: pd.DataFrame, at: Path | None = None) -> Path:
        path = (at or self.path) / PREDICTIONS
        with atomic_file(path) as tmp:
            frame.to_parquet(tmp, index=False)
        return path

    def write_evaluation(self, evaluation: dict, at: Path | None = None) -> Path:
        return write_json((at or self.path) / EVALUATION, evaluation)

    def write_data_stats(self, stats: dict) -> Path:
        return write_json(self.data_stats_path, stats)

    def write_budget(self, plan: dict) -> Path:
        return write_json(self.budget_path, plan)

    def write_batch_sweep(self, sweeps: dict) -> Path:
        return write_json(self.batch_sweep_path, sweeps)

    def write_comparison(self, table: dict, markdown: str, chart) -> Path:
        """comparison/{comparison.json, comparison.md, comparison.png}; `chart(path)` draws the PNG."""
        return write_comparison(self.comparison_dir, table, markdown, chart)

    def trained(self) -> dict:
        """What `write_trained` recorded ({} while training has not ended)."""
        return read_json(self.path / TRAINED)

    def write_trained(self, stats: dict, weights: Path) -> Path:
        return write_json(self.path / TRAINED, {"stats": stats, "weights": Path(weights).name})

    def trained_weights(self) -> Path | None:
        """The checkpoint holding the weights training ended with, if training has ended and it still exists."""
        name = self.trained().get("weights")
        return self.checkpoints_dir / name if name and (self.checkpoints_dir / name).is_dir() else None

    @property
    def is_complete(self) -> bool:
        """Every file of the run is written and its checkpoints are gone: the state just before the rename."""
        return (self.metrics_path.is_file() and (self.model_dir / "config.json").is_file()
                and not self.checkpoints_dir.exists())

    def discard_checkpoints(self) -> None:
        """Remove the checkpoints by a rename first, so a kill while deleting never leaves a half-deleted
        checkpoint that a resume could take for a complete one."""
        if self.checkpoints_dir.exists():
            self.checkpoints_dir.rename(self.path / TRASH)
        shutil.rmtree(self.path / TRASH, ignore_errors=True)

    def finish(self, final: "RunFolder") -> "RunFolder":
        """Rename this work folder into `final`, replacing an older run by renames (old removed last), and remove
        what an earlier killed swap left beside it."""
        self.discard_checkpoints()
        shutil.rmtree(self.teacher_dir, ignore_errors=True)
        (self.path / TRAINED).unlink(missing_ok=True)
        replace_dir(self.path, final.path)
        for stale in final.path.parent.glob(f".{final.name}.old-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return final


def write_comparison(folder: Path, table: dict, markdown: str, chart) -> Path:
    """A comparison folder: comparison.json, comparison.md and the chart `chart(path)` draws."""
    with atomic_dir(folder) as tmp:
        write_json(tmp / COMPARISON, table)
        (tmp / "comparison.md").write_text(markdown)
        chart(tmp / "comparison.png")
    return Path(folder)


def read_comparison(source) -> dict:
    """A comparison table from a comparison.json, its folder, a run folder, or an already loaded dict."""
    if isinstance(source, dict):
        return source
    path = Path(source)
    candidates = [path] if path.suffix == ".json" else [path / COMPARISON, path / COMPARISON_DIR / COMPARISON]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise SentituneError(f"--comparison {path}: no {COMPARISON}; "
                             "build it with `sentitune compare RUN BASELINES... --out DIR`.")
    table = read_json(found)
    if not isinstance(table.get("rows"), list):
        raise SentituneError(f"{found}: expected the table `sentitune compare` writes (a JSON object with 'rows').")
    return table


# ---------------------------------------------------------------- baseline folders


def is_run_folder(path: Path) -> bool:
    return (Path(path) / METRICS).is_file()


def is_baseline_folder(path: Path) -> bool:
    return (Path(path) / BASELINE).is_file()


def write_baseline(result: dict, out_dir: str | Path) -> Path:
    """`out_dir/<name>/baseline.json` and `predictions.parquet`, atomically; returns the folder."""
    target = Path(out_dir) / result["name"]
    with atomic_dir(target) as tmp:
        write_json(tmp / BASELINE, {k: v for k, v in result.items() if k != "predictions"})
        result["predictions"].to_parquet(tmp / PREDICTIONS, index=False)
    return target


def read_baseline(folder: str | Path) -> dict:
    """A folder written by `write_baseline` as a result entry (predictions included)."""
    folder = Path(folder)
    try:
        result = json.loads((folder / BASELINE).read_text())
    except (OSError, ValueError) as exc:
        raise SentituneError(f"{folder}: not a readable baseline folder ({type(exc).__name__}); "
                             "re-run `sentitune baseline`.") from None
    result["predictions"] = read_predictions(folder / PREDICTIONS)
    return result


def upgrade_evaluation(evaluation: dict) -> dict:
    """An evaluation.json of the first, binary format (false positives/negatives, P(positive) per row) in
    today's N-class shape; today's pass through unchanged."""
    if not evaluation or "labels" in evaluation:
        return evaluation
    names = ["negative", "positive"]
    out = {**evaluation, "labels": {"names": names, "ordinal": False}}
    errors = evaluation.get("errors") or {}

    def row(r: dict) -> dict:
        p = float(r.get("prob", 0.5))
        pred = int(p >= 0.5)
        return {**{k: v for k, v in r.items() if k != "prob"}, "label": names[int(r["label"])], "pred": names[pred],
                "confidence": max(p, 1 - p), "probs": {"negative": 1 - p, "positive": p}}

    if "false_positives" in errors:
        out["errors"] = {"confident": {"negative": [row(r) for r in errors["false_positives"]],
                                       "positive": [row(r) for r in errors["false_negatives"]]},
                         "least_sure": [row(r) for r in errors.get("least_sure", [])],
                         "n_errors": {"negative": errors.get("n_false_positives"),
                                      "positive": errors.get("n_false_negatives")}}
    return out
