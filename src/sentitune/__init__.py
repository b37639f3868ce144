"""sentitune: fine-tune transformers for sentiment classification and measure them against baselines.

The public API, one name per stage (imported lazily, so `import sentitune` stays light):

    from sentitune import load_config, train, SentimentModel
    run_dir = train(load_config(preset="cpu-quick", overrides={"data": {"data": "../shared/data/imdb"}}))
    SentimentModel.from_pretrained(run_dir / "model").predict(["What a film!"])
"""

from importlib import import_module

__version__ = "0.1.0"

_API = {
    "DataConfig": "data", "prepare_splits": "data",
    "TrainConfig": "config", "load_config": "config", "PRESETS": "config",
    "train": "train",
    "SentimentModel": "predict", "predict_proba": "predict",
    "evaluate_run": "evaluate", "classification_metrics": "evaluate",
    "run_baseline": "baselines", "compare": "compare",
    "tune": "tune",
    "write_report": "report", "write_model_card": "card",
    "run_main_job": "workflow", "create_app": "serve",
    "SentituneError": "errors",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'sentitune' has no attribute {name!r}")
    return getattr(import_module(f".{_API[name]}", __name__), name)
