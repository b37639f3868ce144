"""sentitune: fine-tune transformers for sentiment classification and measure them against baselines.

The public API, one name per stage (imported lazily, so `import sentitune` stays light):

    from sentitune import load_config, fine_tune, SentimentModel
    run_dir = fine_tune(load_config(preset="cpu-quick", overrides={"data": {"data": "../shared/data/imdb"}}))
    SentimentModel.from_pretrained(run_dir / "model").predict(["What a film!"])
"""

from importlib import import_module

# Names that equal a submodule's (train, compare, tune) get another public name: once `sentitune.training.train` is
# imported, Python binds the package attribute `train` to that module, so a lazy function of that name would flip.
__version__ = "0.1.0"

_API = {
    "DataConfig": "data", "prepare_splits": "data", "LabelScheme": "core.labels",
    "TrainConfig": "run.config", "load_config": "run.config", "PRESETS": "run.config",
    "fine_tune": "app.workflow", "distill_student": "app.workflow", "DistillConfig": "run.config",
    "RunFolder": "run.folder", "Runtime": "core.machine",
    "SentimentModel": "inference.predict", "predict_proba": "inference.predict",
    "evaluate_run": "evaluation.evaluate", "classification_metrics": "core.metrics",
    "run_baseline": "evaluation.baselines", "compare_results": ("evaluation.compare", "compare"),
    "tune_hyperparameters": ("training.tune", "tune"),
    "write_report": "reporting.report", "write_model_card": "reporting.card", "export_onnx": "inference.export",
    "run_main_job": "app.workflow", "create_app": "inference.serve",
    "SentituneError": "core.errors",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'sentitune' has no attribute {name!r}")
    module, attr = _API[name] if isinstance(_API[name], tuple) else (_API[name], name)
    return getattr(import_module(f".{module}", __name__), attr)
