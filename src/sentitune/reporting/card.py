"""Model card: `RUN/model/README.md` in Hugging Face format, rendered from the same facts as the report.

YAML front matter that `huggingface_hub.ModelCard` loads: license (with `license_name` and `license_link` when it
is `other`), language, datasets, Hub metric ids, tags, base_model, pipeline_tag, and a model-index whose metrics
are Hub metric ids with their averaging under `args` (the dataset's official metric first) and whose dataset
`split` says which test examples were scored (`test` only for the whole split). Then a Markdown body rendered from
`templates/model_card.md.j2`: model details, data, training, results, limitations, environment, framework
versions, how to use it and a citation. A section without data is left out rather than padded, and the card names
no local path: data, base models and teachers appear by Hub id or by name.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import yaml

from ..core.io import atomic_write_text
from ..core.labels import LabelScheme
from ..models.loading import local_copy, model_id
from .facts import dataset_of, metric_label, official_first, run_facts
from .formats import environment

# sentitune's metric keys as (Hub metric id, the `args` its value was computed with); a key missing here (such as
# qwk) has no Hub metric id and stays in the card's results table only
HUB_METRICS = {"accuracy": ("accuracy", None), "f1_macro": ("f1", {"average": "macro"}),
               "recall_macro": ("recall", {"average": "macro"}), "f1": ("f1", {"average": "binary"}),
               "roc_auc": ("roc_auc", None), "mae": ("mae", None)}
FRAMEWORKS = ("transformers", "torch", "datasets", "tokenizers", "sentitune")
LICENSE_NAME = "base-model-license"
LOCAL_LICENSE = "LICENSE"  # the file a publisher adds beside the card when the base model is not on the Hub

# the paper each family of base models asks to be cited by (templates/citation.bib.j2), by a part of its Hub id;
# the first match wins
CITATIONS = (("sentence-transformers/", "sbert"), ("distil", "distilbert"), ("roberta", "roberta"),
             ("prajjwal1/bert-", "small-bert"), ("google/bert_uncased_l-", "small-bert"), ("bert-", "bert"))


# ---------------------------------------------------------------- names a reader elsewhere can know


def is_local(name: str) -> bool:
    return name.startswith(("/", "~", ".")) or "\\" in name or Path(name).exists()


def public_name(name) -> str:
    """A model or run as a reader of the card can know it: a Hub id as it is, a local folder by its name (a run's
    `model/` folder by the run's)."""
    text = str(name)
    if not is_local(text):
        return text
    path = Path(text.rstrip("/\\"))
    return path.parent.name if path.name == "model" else path.name


def public_source(source) -> str:
    """A data source by its Hub dataset id when it is a known dataset's copy (a file of it named too), else by
    its folder or file name; a trailing ' [split]' is kept."""
    text, suffix = re.fullmatch(r"(.*?)((?:\s*\[[^\]]*\])?)", str(source)).groups()
    known = dataset_of(text).id
    if known and is_local(text):
        return known + (f" ({Path(text).name})" if Path(text).suffix else "") + suffix
    return public_name(text) + suffix


# ---------------------------------------------------------------- front matter


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
    """The model-index metrics: accuracy and the macro metrics, F1 and ROC-AUC for two classes, MAE on an ordinal
    scale; the dataset's official metric first. Only metrics with a Hub metric id."""
    keys = ["accuracy", "f1_macro", "recall_macro"]
    keys += ["f1", "roc_auc"] if labels.binary else []
    keys += ["mae"] if labels.ordinal else []
    return official_first(keys, official)


def reported_keys(facts: dict) -> list[str]:
    return [k for k in card_metric_keys(facts["labels"], facts["official"]) if facts["m"].get(k) is not None]


def hub_metric(key: str, facts: dict) -> dict:
    """One model-index metric: its Hub id, value, name, and the averaging it was computed with."""
    hub_id, args = HUB_METRICS[key]
    name = f"Test {metric_label(key, facts['labels'])}" + (" (official metric)" if key == facts["official"] else "")
    metric = {"type": hub_id, "value": round(float(facts["m"][key]), 4), "name": name}
    return metric | ({"args": args} if args else {})


def model_index(facts: dict) -> list[dict]:
    """The `model-index` block: one text-classification result with the test metrics, on the split actually
    scored (`test`, or the sample or held-out share named as a split)."""
    dataset = facts["dataset"]
    described = {"name": dataset.name, "type": dataset.id or dataset.name,
                 **({"config": dataset.config} if dataset.config else {}), "split": facts["scored"]["split"]}
    task = {"type": "text-classification", "name": "Sentiment classification"}
    metrics = [hub_metric(k, facts) for k in reported_keys(facts)]
    return [{"name": facts["name"], "results": [{"task": task, "dataset": described, "metrics": metrics}]}]


def license_link(base_model: str | None) -> str:
    """Where the terms of a card with `license: other` are: the base model's Hub page, else a LICENSE file the
    publisher adds beside the card."""
    return f"https://huggingface.co/{base_model}" if base_model else LOCAL_LICENSE


def front_matter(facts: dict, license: str | None, base_model: str | None) -> dict:
    """The card's YAML metadata."""
    dataset = facts["dataset"]
    meta = {
        "license": license or "other",
        "license_name": None if license else LICENSE_NAME,
        "license_link": None if license else license_link(base_model),
        "language": ["en"],
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["sentiment-analysis", "text-classification", "sentitune",
                 *([dataset.id.split("/")[-1]] if dataset.id else [])],
        "datasets": [dataset.id] if dataset.id else None,
        "base_model": base_model,
        "metrics": list(dict.fromkeys(HUB_METRICS[k][0] for k in reported_keys(facts))),
        "model-index": model_index(facts),
    }
    return {k: v for k, v in meta.items() if v is not None}


# ---------------------------------------------------------------- body


def framework_versions(facts: dict) -> list[tuple[str, str]]:
    """(package, version): torch as the run recorded it when it did, the others as installed at card writing."""
    hardware = facts["train"].get("hardware")
    recorded = {"torch": hardware.get("torch")} if isinstance(hardware, dict) else {}
    rows = []
    for name in FRAMEWORKS:
        try:
            version = recorded.get(name) or metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        rows.append((name, version))
    return rows


def citation(base_model: str | None) -> dict:
    """{of, bibtex}: the base model's paper when its family is known, else sentitune itself."""
    lowered = (base_model or "").lower()
    family = next((name for part, name in CITATIONS if part in lowered), None) if base_model else None
    try:
        version = metadata.version("sentitune")
    except metadata.PackageNotFoundError:
        version = None
    bibtex = environment(html=False).get_template("citation.bib.j2").render(family=family, version=version)
    return {"of": base_model if family else None, "bibtex": bibtex.strip()}


def names(facts: dict) -> dict:
    """The card's names for what the run points to on its machine: data, base model, teacher, student, transfer."""
    taught = facts["metrics"].get("distillation") or {}
    transfer = taught.get("transfer") or {}
    return {"source": public_source(facts["source"] or facts["dataset"].name),
            "model": public_name(facts["config"].get("model") or ""),
            "teacher": public_name((taught.get("teacher") or {}).get("run") or ""),
            "student": public_name((taught.get("student") or {}).get("model") or ""),
            "transfer": public_source(transfer["data"]) if transfer.get("data") else None}


def render_card(facts: dict, license: str | None = None) -> str:
    """The full README.md text: YAML front matter, then the templated body."""
    model = facts["config"].get("model") or ""
    license = license or local_card_metadata(model).get("license")
    base_model = base_model_id(model)
    meta = yaml.safe_dump(front_matter(facts, license, base_model), sort_keys=False, allow_unicode=True)
    body = environment(html=False).get_template("model_card.md.j2").render(
        **facts, base_model=base_model, license=license, license_link=license_link(base_model),
        hub_keys=reported_keys(facts), public=names(facts), versions=framework_versions(facts),
        citation=citation(base_model))
    return f"---\n{meta}---\n\n{body}"


def write_model_card(run_dir: str | Path, comparison=None, license: str | None = None) -> Path:
    """Write the run's model card (RUN/model/README.md) atomically and return its path.

    Uses the run's evaluation when it has one, else the test metrics recorded at the end of training (a card
    written right after training); lists the baseline comparison when the run has one (or `comparison`, a
    comparison.json path/folder or loaded table). `license` defaults to the base model's own license when its card
    is on disk; otherwise the card says `other` and links the base model's terms."""
    facts = run_facts(run_dir, comparison)
    return atomic_write_text(facts["run"].card_path, render_card(facts, license))
