"""Hyperparameter search with Optuna: a resumable, shareable study whose trials are short `train` runs.

A study lives in a folder (`studies/<name>/`): the Optuna storage (`study.db`, SQLite, unless a database
URL or a journal file is given), one `trials/<n>/` per trial (config.yaml, metrics.json, log.jsonl; no
weights), and, after every session, `best.yaml` (a full TrainConfig for `sentitune train --config`),
`summary.json` and `plots/*.png`.

Objective: the best validation F1 among a trial's evaluations, i.e. the checkpoint `train` would keep
(never the test set). Every evaluation is reported to Optuna at the number of training examples seen, so
trials with different batch sizes and epochs are compared at equal data, and the pruner stops the bad ones.
The trial budget counts finished (complete + pruned) trials across sessions and workers, so re-running the
same command after a crash finishes the study instead of starting it again.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import math
import os
import shutil
import socket
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import optuna
import yaml
from rich.console import Console
from transformers import TrainerCallback

from ..core.errors import SentituneError
from ..core.io import atomic_file, atomic_write_text, read_yaml
from ..run.config import TrainConfig
from ..run.folder import RunFolder

console = Console(stderr=True)

DEFAULT_SPACE: dict[str, dict] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
    "epochs": {"type": "int", "low": 1, "high": 4},
    "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.1},
    "batch_size": {"type": "categorical", "choices": [8, 16, 32]},
}
UNTUNABLE = {"name", "output_dir", "data", "eval_steps"}
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
PRUNERS = ("median", "hyperband", "none")
EVALS_PER_EPOCH = 4  # as `train` does when eval_steps is 0


# ---------------------------------------------------------------- search space


def check_space(space: dict, where: str = "search space") -> dict:
    """The space if every entry is `field: {type: float|int, low, high[, log]}` or `{type: categorical, choices}`."""
    if not isinstance(space, dict) or not space:
        raise SentituneError(f"{where}: expected a non-empty mapping of TrainConfig field: "
                             f"{{type, low, high}} or {{type: categorical, choices}}.")
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - UNTUNABLE
    for name, spec in space.items():
        if name not in fields:
            raise SentituneError(f"{where}: '{name}' is not a tunable TrainConfig field; "
                                 f"use one of {', '.join(sorted(fields))}.")
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise SentituneError(f"{where}: {name} is categorical but has no list of choices; "
                                     "add choices: [a, b, ...].")
        elif kind in ("float", "int"):
            low, high = spec["low"], spec["high"] = _number(spec.get("low")), _number(spec.get("high"))
            if low is None or high is None or low > high:
                raise SentituneError(f"{where}: {name} needs numeric low <= high (got low={spec.get('low')}, "
                                     f"high={spec.get('high')}).")
            if spec.get("log") and low <= 0:
                raise SentituneError(f"{where}: {name} is log-scaled, so low must be > 0 (got {low}).")
        else:
            raise SentituneError(f"{where}: {name} needs type: float, int or categorical (got {kind!r}).")
        _check_values(name, [spec["low"], spec["high"]] if kind != "categorical" else spec["choices"], where)
    return space


def _number(value) -> float | None:
    """A YAML bound as a number (PyYAML reads `1e-5` as a string), None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        return float(value) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        return None


def _check_values(name: str, values: list, where: str) -> None:
    """Every value a trial may draw must make a valid config (so no trial crashes on it later)."""
    from ..run.config import load_config

    for value in values:
        try:
            load_config(overrides={name: value})
        except SentituneError as exc:
            raise SentituneError(f"{where}: {name} may draw {value!r}, which is invalid ({exc}).") from None


def load_space(path: str | Path | None) -> dict:
    """The search space from a YAML file (`field: spec` at the top level, or under `search_space:`);
    None: the default."""
    if path is None:
        return copy.deepcopy(DEFAULT_SPACE)
    loaded = read_yaml(path, "--space")
    if isinstance(loaded, dict) and "search_space" in loaded:
        loaded = loaded["search_space"]
    return check_space(loaded, f"--space {path}")


def suggested_params(trial: optuna.Trial, space: dict) -> dict:
    """One value per searched field, drawn by the study's sampler."""
    params = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            params[name] = trial.suggest_categorical(name, spec["choices"])
        elif spec["type"] == "int":
            params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return params


def with_params(base: TrainConfig, params: dict, **fields) -> TrainConfig:
    """`base` with the searched values (and any extra fields, e.g. name) replaced."""
    return dataclasses.replace(base, **params, **fields)


# ---------------------------------------------------------------- storage, sampler, pruner


def storage_url(study_dir: Path, storage: str | None) -> str:
    """The storage as given, or an SQLite file inside the study folder."""
    return storage or f"sqlite:///{(Path(study_dir) / 'study.db').resolve()}"


def open_storage(url: str, heartbeat_s: int = 30) -> optuna.storages.BaseStorage:
    """A database URL (sqlite:///, postgresql://, mysql://) or a journal file path (*.log, *.journal, *.jsonl).

    Databases get a heartbeat: a trial whose process died (kill -9, lost machine) is failed after two missed
    heartbeats and re-queued once with the same parameters."""
    if "://" in url:
        engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        for attempt in range(5):
            try:
                return _rdb_storage(url, engine_kwargs, heartbeat_s)
            except (ImportError, ModuleNotFoundError) as exc:
                raise SentituneError(f"--storage {redacted(url)}: missing database driver ({exc.name}); "
                                     "pip install it.") from None
            except Exception as exc:  # sqlalchemy raises many types for bad URLs or unreachable servers
                # workers that start together race to create the schema: the loser fails once, then finds it made
                if type(exc).__name__ not in {"IntegrityError", "OperationalError"} or attempt == 4:
                    raise SentituneError(f"--storage {redacted(url)}: cannot open ({type(exc).__name__}: "
                                         f"{str(exc).splitlines()[0]}).") from None
                time.sleep(0.5 * (attempt + 1))
    if Path(url).suffix in {".log", ".journal", ".jsonl"}:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(url)
        return optuna.storages.JournalStorage(backend)
    raise SentituneError(f"--storage {url}: use a database URL (sqlite:///path.db, postgresql://..., mysql://...) "
                         "or a journal file ending in .log.")


def _rdb_storage(url: str, engine_kwargs: dict, heartbeat_s: int) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s, grace_period=2 * heartbeat_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))


def redacted(url: str) -> str:
    """The storage URL without its password (for summaries and messages)."""
    if "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: say only which kind it is
        return url.split("://", 1)[0] + "://..."


def make_sampler(seed: int, n_trials: int, trials_so_far: int) -> optuna.samplers.TPESampler:
    """TPE after a few random trials; the seed is offset by the trials already run so a resumed session
    does not replay the first session's random draws."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed + trials_so_far, n_startup_trials=max(2, min(10, n_trials // 3)),
                                          multivariate=True, constant_liar=True)


def make_pruner(pruner: str | optuna.pruners.BasePruner, eval_every: int,
                max_examples: int) -> optuna.pruners.BasePruner:
    """Median: stop a trial below the median of finished ones at the same number of examples, from its
    second evaluation on. Hyperband: successive halving from one evaluation up to the longest trial."""
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2 * eval_every)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=eval_every, max_resource=max(max_examples, eval_every),
                                              reduction_factor=3)
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise SentituneError(f"--pruner {pruner}: use one of {', '.join(PRUNERS)}.")


def open_study(name: str, url: str, direction: str = "maximize", heartbeat_s: int = 30) -> optuna.Study:
    """Create the study, or load it when it exists (a crashed session, or another worker)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=name, storage=open_storage(url, heartbeat_s), direction=direction,
                               load_if_exists=True)


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_budget(study: optuna.Study, objective, n_trials: int, timeout_s: float | None = None) -> None:
    """Run trials until the study holds `n_trials` finished ones (all sessions and workers together) or
    this session has run `timeout_s` seconds (checked between trials)."""
    remaining = n_trials - finished_trials(study)
    if remaining <= 0:
        return
    study.optimize(objective, n_trials=remaining, timeout=timeout_s, gc_after_trial=True,
                   callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)])


# ---------------------------------------------------------------- trials


class ReportToOptuna(TrainerCallback):
    """Report each validation F1 at the number of training examples seen; raise TrialPruned when told."""

    def __init__(self, trial: optuna.Trial, examples_per_step: int, metric: str = "f1"):
        self.trial, self.examples_per_step, self.key = trial, examples_per_step, f"eval_{metric}"

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics or self.key not in metrics:
            return
        seen = state.global_step * self.examples_per_step
        self.trial.report(metrics[self.key], seen)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"validation {self.key[5:]} {metrics[self.key]:.4f} after {seen} examples")


def rss_mb() -> float:
    """Resident memory of this process in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def lcm_of(values) -> int:
    return math.lcm(*[int(v) for v in values])


def examples_per_step_values(base: TrainConfig, space: dict) -> list[int]:
    """Every examples-per-optimizer-step a trial may use (batch size x accumulation)."""
    def values(name):
        spec = space.get(name)
        if spec and spec["type"] == "categorical":
            return spec["choices"]
        if spec and spec["type"] == "int" and spec["high"] - spec["low"] <= 64:
            return range(int(spec["low"]), int(spec["high"]) + 1)
        return [getattr(base, name)]

    return [b * a for b in values("batch_size") for a in values("gradient_accumulation")]


def eval_every_examples(base: TrainConfig, space: dict, train_size: int) -> int:
    """Evaluate every this many training examples in every trial: about a quarter epoch (or the base
    config's eval_steps), rounded to a multiple of every possible step size, so all trials report at the
    same examples-seen values and the pruner can compare them."""
    unit = lcm_of(examples_per_step_values(base, space))
    target = (base.eval_steps * base.batch_size * base.gradient_accumulation if base.eval_steps
              else train_size / EVALS_PER_EPOCH)
    return max(unit, round(target / unit) * unit)


def max_examples(base: TrainConfig, space: dict, train_size: int) -> int:
    """Training examples seen by the longest possible trial (Hyperband's maximum resource)."""
    if base.max_steps > 0:
        return base.max_steps * max(examples_per_step_values(base, space))
    spec = space.get("epochs")
    epochs = base.epochs if not spec else max(spec["choices"]) if spec["type"] == "categorical" else spec["high"]
    return math.ceil(epochs * train_size)


class TrialRunner:
    """The objective: data, labels and tokenizer are prepared once per session (`trainer.prepare`); each call
    trains one config through the same assembly, config validation and seeding as `sentitune train`."""

    def __init__(self, base: TrainConfig, space: dict, study_dir: Path, study_name: str):
        from .autobatch import tuned
        from .trainer import prepare, selection_metric, train_shares

        self.prepared = tuned(prepare(base))  # --batch-size auto: one sweep for the study, at the base's batch
        self.base, self.space, self.study_dir, self.study_name = base, space, Path(study_dir), study_name
        self.metric = selection_metric(self.base, self.prepared.labels, train_shares(self.prepared))
        self.train_size = len(self.prepared.splits["train"])
        self.eval_every = eval_every_examples(self.base, space, self.train_size)

    def trial_config(self, trial: optuna.Trial) -> TrainConfig:
        """The base config with the trial's values, validated like a run's; evaluation every `eval_every` examples."""
        from ..run.config import load_config
        from .autobatch import split_batch

        params = suggested_params(trial, self.space)
        batch = (params.get("batch_size", self.base.batch_size)
                 * params.get("gradient_accumulation", self.base.gradient_accumulation))
        values = {**self.prepared.cfg.to_dict(), **params, "name": f"{self.study_name}-trial-{trial.number}",
                  "output_dir": str(self.study_dir / "trials"), "eval_steps": max(1, self.eval_every // batch)}
        if "train" in self.prepared.sweeps:  # the trial's effective batch, in micro-batches as fast as measured
            values["batch_size"], values["gradient_accumulation"] = split_batch(
                batch, self.prepared.sweeps["train"].chosen)
        return load_config(overrides=values)

    def __call__(self, trial: optuna.Trial) -> float:
        trial_dir = self.study_dir / "trials" / str(trial.number)
        trial_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.trial_config(trial)
        trial_run = RunFolder(trial_dir)
        trial_run.write_config(cfg)
        console.print(f"trial {trial.number}: {trial.params}")
        outcome = self.train_one(cfg, trial, trial_dir / "work")
        gc.collect()  # the trainer, model and optimizer of this trial are unreachable now
        outcome |= {"trial": trial.number, "params": trial.params, "rss_mb": round(rss_mb(), 1)}
        trial.set_user_attr("rss_mb", outcome["rss_mb"])
        trial.set_user_attr("best_step", outcome["best_step"])
        trial_run.write_metrics(outcome)
        console.print(f"trial {trial.number}: {outcome['state']}, best validation {self.metric} "
                      f"{outcome['best_value'] or 0:.4f}, {outcome['wall_time_s']:.0f} s", markup=False)
        if outcome["state"] == "pruned":
            raise optuna.TrialPruned(outcome["pruned_because"])
        return outcome["best_value"]

    def train_one(self, cfg: TrainConfig, trial: optuna.Trial, work_dir: Path) -> dict:
        """Train one config in a scratch folder (checkpoints only) and return its validation record."""
        from .trainer import examples_per_step, make_trainer, new_model

        per_step = examples_per_step(cfg)
        trainer = make_trainer(cfg, self.prepared, new_model(cfg, self.prepared), work_dir,
                               [ReportToOptuna(trial, per_step, self.metric)])
        started, pruned_because = time.perf_counter(), None
        try:
            trainer.train()
        except optuna.TrialPruned as exc:
            pruned_because = str(exc)  # leaving the except block drops the traceback that holds the model
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        history = trainer.state.log_history
        key = f"eval_{self.metric}"
        evals = [{"examples": h["step"] * per_step, "step": h["step"], "epoch": h.get("epoch"), "value": h[key],
                  "accuracy": h["eval_accuracy"], "loss": h["eval_loss"]} for h in history if key in h]
        best = max(evals, key=lambda e: e["value"], default=None)
        atomic_write_text(RunFolder(work_dir.parent).log_path, "".join(json.dumps(h) + "\n" for h in history))
        return {"state": "pruned" if pruned_because else "complete", "pruned_because": pruned_because,
                "metric": self.metric, "best_value": best["value"] if best else None,
                "best_step": best["step"] if best else None,
                "validation_at_best": best, "evaluations": evals, "steps": trainer.state.global_step,
                "wall_time_s": round(time.perf_counter() - started, 1), "train_samples": self.train_size,
                "validation_samples": len(self.prepared.splits["validation"])}


# ---------------------------------------------------------------- outputs


def best_config(study: optuna.Study, study_dir: Path, base: TrainConfig) -> TrainConfig:
    """The best trial's config as a final fit, named `<study>-best`, writing into base.output_dir: it trains on
    train + validation for the trial's fixed schedule and keeps its last checkpoint (validation is in-sample then, so
    it can neither pick a checkpoint nor stop the run)."""
    saved = RunFolder(Path(study_dir) / "trials" / str(study.best_trial.number))
    trial_cfg = saved.config() if saved.config_path.is_file() else with_params(base, study.best_trial.params)
    return dataclasses.replace(trial_cfg, name=f"{study.study_name}-best", output_dir=base.output_dir,
                               early_stopping_patience=0, checkpoint="last",
                               data=dataclasses.replace(trial_cfg.data, validation_in_train=True))


def best_config_yaml(study: optuna.Study, study_dir: str | Path, base: TrainConfig) -> Path | None:
    """Write `best.yaml` (a full TrainConfig for `sentitune train --config`); None before any trial completed."""
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return None
    path = Path(study_dir) / "best.yaml"
    atomic_write_text(path, yaml.safe_dump(best_config(study, study_dir, base).to_dict(), sort_keys=False))
    return path


AXIS_LABELS = {"history": (None, "validation F1"), "slice": (None, "validation F1"),
               "intermediate": ("training examples seen", "validation F1")}


def write_plots(study: optuna.Study, plots_dir: Path) -> dict[str, str]:
    """Optuna's matplotlib figures as PNG: history, importances, slice, intermediate values.
    Figures that need more finished trials than the study has are skipped with the reason."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    from optuna.visualization import matplotlib as ovm

    plots_dir.mkdir(parents=True, exist_ok=True)
    makers = {"history": ovm.plot_optimization_history, "importances": ovm.plot_param_importances,
              "slice": ovm.plot_slice, "intermediate": ovm.plot_intermediate_values}
    written = {}
    for name, make in makers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = make(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            written[name] = f"skipped: {exc}"
            continue
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        xlabel, ylabel = AXIS_LABELS.get(name, (None, None))
        if xlabel:
            first.set_xlabel(xlabel)
        if ylabel:
            first.set_ylabel(ylabel)
        panels = list(axes.flat) if hasattr(axes, "flat") else [axes]
        for ax in panels:
            if ax.get_xscale() == "log":  # minor tick labels of a log axis overlap in narrow panels
                ax.xaxis.set_minor_formatter(NullFormatter())
        figure = first.figure
        figure.set_size_inches(max(figure.get_size_inches()[0], 6.4, 2.8 * len(panels)),
                               max(figure.get_size_inches()[1], 4.0))
        with atomic_file(plots_dir / f"{name}.png") as tmp:  # workers sharing a study write the same plots
            figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        written[name] = f"plots/{name}.png"
    return written


def trial_record(trial: optuna.trial.FrozenTrial) -> dict:
    retried = trial.system_attrs.get("failed_trial")
    return {"number": trial.number, "state": trial.state.name.lower(), "value": trial.value, "params": trial.params,
            "last_examples": trial.last_step, "duration_s": trial.duration.total_seconds() if trial.duration else None,
            "rss_mb": trial.user_attrs.get("rss_mb"), "retry_of": retried}


def study_summary(study: optuna.Study, url: str, base: TrainConfig, space: dict, plots: dict) -> dict:
    """summary.json: counts per state, the best trial against the default config's values, every trial, sessions."""
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name.lower() for t in trials]
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial if completed else None
    return {
        "study": study.study_name, "storage": redacted(url), "direction": "maximize",
        "objective": "validation F1 (best evaluation of each trial; the test set is never used)",
        "counts": {s: states.count(s) for s in sorted(set(states))},
        "best": ({"number": best.number, "validation_f1": best.value, "params": best.params, "config": "best.yaml"}
                 if best else None),
        "default": {k: getattr(base, k) for k in space},
        "space": space, "trials": [trial_record(t) for t in trials],
        "sessions": sorted((v for k, v in study.user_attrs.items() if k.startswith("session:")),
                           key=lambda s: s["started"]),
        "plots": plots,
    }


def write_outputs(study: optuna.Study, study_dir: Path, url: str, base: TrainConfig, space: dict) -> dict:
    """best.yaml, plots/ and summary.json from the storage (so any worker can refresh them)."""
    best_config_yaml(study, study_dir, base)
    summary = study_summary(study, url, base, space, write_plots(study, study_dir / "plots"))
    atomic_write_text(study_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


def comparable(cfg: TrainConfig) -> dict:
    """The part of a config that must match to continue a study (run names and folders may differ)."""
    return json.loads(json.dumps({k: v for k, v in cfg.to_dict().items() if k not in {"name", "output_dir"}}))


def check_same_study(study: optuna.Study, base: TrainConfig, space: dict, study_dir: Path) -> None:
    """Record the base config and space on first use; refuse to mix trials of another setup into the study."""
    setup = {"base": comparable(base), "space": json.loads(json.dumps(space))}
    known = study.user_attrs.get("setup")
    if known is None:
        study.set_user_attr("setup", setup)
    elif known != setup:
        what = "search space" if known["space"] != setup["space"] else "base config"
        raise SentituneError(f"{study_dir}: this study was started with a different {what}; "
                             "use a new study folder or the original settings.")


def tune(study_dir: str | Path, base_cfg: TrainConfig, space: dict | None = None, n_trials: int = 8,
         timeout_s: float | None = None, storage: str | None = None, pruner: str | optuna.pruners.BasePruner = "median",
         seed: int = 42, heartbeat_s: int = 30) -> optuna.Study:
    """Run (or resume, or join) the study in `study_dir` until it has `n_trials` finished trials or this
    session has used `timeout_s`; then write best.yaml, summary.json and plots/. Returns the study."""
    study_dir = Path(study_dir)
    space = check_space(copy.deepcopy(space) if space else copy.deepcopy(DEFAULT_SPACE))
    if n_trials < 1:
        raise SentituneError(f"--n-trials {n_trials}: must be at least 1.")
    if isinstance(pruner, str) and pruner not in PRUNERS:  # checked before the study folder is made
        raise SentituneError(f"--pruner {pruner}: use one of {', '.join(PRUNERS)}.")
    if storage and not storage.startswith(("sqlite://", "postgresql", "mysql")) \
            and Path(storage).suffix not in {".log", ".journal", ".jsonl"}:
        raise SentituneError(f"--storage {redacted(storage)}: use a database URL (sqlite:///path.db, postgresql://..., "
                             "mysql://...) or a journal file ending in .log.")
    study_dir.mkdir(parents=True, exist_ok=True)
    url = storage_url(study_dir, storage)
    study = open_study(study_dir.resolve().name, url, heartbeat_s=heartbeat_s)
    check_same_study(study, base_cfg, space, study_dir)
    session = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": socket.gethostname(),
               "pid": os.getpid(), "trials_before": len(study.trials), "finished_before": finished_trials(study)}
    key = f"session:{session['started']}:{session['host']}:{session['pid']}"
    study.set_user_attr(key, session)
    if session["finished_before"] < n_trials:  # a finished study only refreshes its outputs
        runner = TrialRunner(base_cfg, space, study_dir, study.study_name)
        study.sampler = make_sampler(seed, n_trials, session["trials_before"])
        study.pruner = make_pruner(pruner, runner.eval_every, max_examples(base_cfg, space, runner.train_size))
        run_budget(study, runner, n_trials, timeout_s)
    study.set_user_attr(key, session | {"ended": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                        "trials_after": len(study.trials), "finished_after": finished_trials(study)})
    sweep_scratch(study, study_dir)
    write_outputs(study, study_dir, url, base_cfg, space)
    return study


def sweep_scratch(study: optuna.Study, study_dir: Path) -> None:
    """Remove checkpoint folders left by trials that are no longer running (a killed session's)."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    for work in (study_dir / "trials").glob("*/work"):
        if work.parent.name.isdigit() and int(work.parent.name) not in running:
            shutil.rmtree(work, ignore_errors=True)
