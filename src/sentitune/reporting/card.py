"""Model card: `RUN/model/README.md` in Hugging Face format, rendered from the same facts as the report.

YAML front matter (license, language, datasets, metrics, tags, base_model, pipeline_tag, and a model-index whose
metrics are named for the run's label scheme, the dataset's official metric first) followed by a Markdown body
rendered from `templates/model_card.md.j2`. A section without data is left out rather than padded.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..core.io import atomic_write_text
from ..core.labels import LabelScheme
from ..models.loading import local_copy, model_id
from ..run.folder import RunFolder
from .facts import metric_label, official_first, run_facts
from .formats import environment

# sentitune's metric keys as the Hub's metric ids (for the `metrics:` list; model-index keeps sentitune's keys)
HUB_METRICS = {"accuracy": "accuracy", "f1_macro": "f1", "recall_macro": "recall", "f1": "f1", "roc_auc": "roc_auc",
               "mae": "mae"}


def local_card_metadata(model: str) -> dict:
    """Front matter of a local base model's README.md ({} when there is none)."""
    readme = Path(local_copy(model)) / "README.md"
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
    if model_id(model) != model:
        return model_id(model)
    if Path(model).exists():
        declared = local_card_metadata(model).get("base_model")
        return declared if isinstance(declared, str) else None
    return None if model.startswith((".", "/", "~")) or not model else model


def card_metric_keys(labels: LabelScheme, official: str | None) -> list[str]:
    """The model-index metrics: accuracy and the macro metrics, F1 and ROC-AUC for two classes, MAE and QWK on an
    ordinal scale; the dataset's official metric first."""
    keys = ["accuracy", "f1_macro", "recall_macro"]
    keys += ["f1", "roc_auc"] if labels.binary else []
    keys += ["mae", "qwk"] if labels.ordinal else []
    return official_first(keys, official)


def reported_keys(facts: dict) -> list[str]:
    return [k for k in card_metric_keys(facts["labels"], facts["official"]) if facts["m"].get(k) is not None]


def model_index(facts: dict) -> list[dict]:
    """The `model-index` block: one text-classification result with the test metrics."""
    dataset, m, labels = facts["dataset"], facts["m"], facts["labels"]
    described = {"name": dataset.name, "type": dataset.id or dataset.name,
                 **({"config": dataset.config} if dataset.config else {}),
                 "split": facts["evaluation"].get("split", "test")}
    metrics = [{"type": k, "value": round(float(m[k]), 4),
                "name": f"Test {metric_label(k, labels)}" + (" (official metric)" if k == facts["official"] else "")}
               for k in reported_keys(facts)]
    task = {"type": "text-classification", "name": "Sentiment classification"}
    return [{"name": facts["name"], "results": [{"task": task, "dataset": described, "metrics": metrics}]}]


def front_matter(facts: dict, license: str | None) -> dict:
    """The card's YAML metadata."""
    dataset = facts["dataset"]
    meta = {
        "license": license or "other",
        "license_name": None if license else "base-model-license",
        "language": ["en"],
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["sentiment-analysis", "text-classification", "sentitune",
                 *([dataset.id.split("/")[-1]] if dataset.id else [])],
        "datasets": [dataset.id] if dataset.id else None,
        "base_model": base_model_id(facts["config"].get("model") or ""),
        "metrics": list(dict.fromkeys(HUB_METRICS[k] for k in reported_keys(facts) if k in HUB_METRICS)),
        "model-index": model_index(facts),
    }
    return {k: v for k, v in meta.items() if v is not None}


def model_path(facts: dict) -> str:
    """Where the model folder lives for someone who trained the run: <output_dir>/<run>/model."""
    return str(RunFolder(Path(facts["config"].get("output_dir") or ".") / facts["run"].name).model_dir)


def render_card(facts: dict, license: str | None = None) -> str:
    """The full README.md text: YAML front matter, then the templated body."""
    license = license or local_card_metadata(facts["config"].get("model") or "").get("license")
    meta = yaml.safe_dump(front_matter(facts, license), sort_keys=False, allow_unicode=True)
    body = environment(html=False).get_template("model_card.md.j2").render(
        **facts, base_model=base_model_id(facts["config"].get("model") or ""), license=license,
        model_path=model_path(facts))
    return f"---\n{meta}---\n\n{body}"


def write_model_card(run_dir: str | Path, comparison=None, license: str | None = None) -> Path:
    """Write the run's model card (RUN/model/README.md) atomically and return its path.

    Uses the run's evaluation when it has one, else its recorded test metrics (a card written right after training,
    which evaluates nothing); lists the baseline comparison when the run has one
    (or `comparison`, a comparison.json path/folder or loaded table). `license` defaults to the base model's own
    license when its card is on disk; otherwise the card says `other` and points to the base model's terms."""
    facts = run_facts(run_dir, comparison)
    return atomic_write_text(facts["run"].card_path, render_card(facts, license))
