"""sentitune: fine-tune transformers for sentiment classification and measure them against baselines.

The public API, one name per stage (imported lazily, so `import sentitune` stays light):

    from sentitune import load_config, fine_tune, SentimentModel
    run_dir = fine_tune(load_config(preset="cpu-quick", overrides={"data": {"data": "../shared/data/imdb"}}))
    SentimentModel.from_pretrained(run_dir / "model").predict(["What a film!"])
"""

from importlib import import_module

# Names that equal a submodule's (train, compare, tune) get another public name: once `sentitune.train` is
# imported, Python binds the package attribute `train` to that module, so a lazy function of that name would flip.
__version__ = "0.1.0"

_API = {
    "DataConfig": "data", "prepare_splits": "data", "LabelScheme": "labels",
    "TrainConfig": "config", "load_config": "config", "PRESETS": "config",
    "fine_tune": "workflow", "distill_student": "workflow", "DistillConfig": "config",
    "RunFolder": "run", "Runtime": "machine",
    "SentimentModel": "predict", "predict_proba": "predict",
    "evaluate_run": "evaluate", "classification_metrics": "metrics",
    "run_baseline": "baselines", "compare_results": ("compare", "compare"),
    "tune_hyperparameters": ("tune", "tune"),
    "write_report": "report", "write_model_card": "card", "export_onnx": "export",
    "run_main_job": "workflow", "create_app": "serve",
    "SentituneError": "errors",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'sentitune' has no attribute {name!r}")
    module, attr = _API[name] if isinstance(_API[name], tuple) else (_API[name], name)
    return getattr(import_module(f".{module}", __name__), attr)
