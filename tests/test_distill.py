"""Distillation on tiny random BERTs: a 4-layer three-class teacher run, students of K of its layers or another model,
the soft-label loss, the cached teacher pass (reused by a resume after kill -9), and one-line errors for bad input."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import synthetic_reviews
from test_train import kill_at, tiny_config

from sentitune.core.errors import SentituneError
from sentitune.core.machine import Runtime
from sentitune.run.config import DistillConfig, load_distill_config
from sentitune.run.folder import RunFolder
from sentitune.training.distill import (
    cached_logits,
    chosen_layers,
    distill,
    distillation_loss,
    from_probabilities,
    layer_student,
    run_teacher,
    tfidf_ensemble,
)
from sentitune.training.train import train

NAMES = ["negative", "neutral", "positive"]


def tiny_deep_bert(path: Path, layers: int = 4, extra_tokens: tuple[str, ...] = ()) -> Path:
    """A randomly initialised BERT of `layers` small layers with the default model's tokenizer (plus `extra_tokens`,
    which make it another tokenizer)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from sentitune.models.loading import default_model

    tokenizer = AutoTokenizer.from_pretrained(default_model())
    tokenizer.add_tokens(list(extra_tokens))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=3,
                        id2label=dict(enumerate(NAMES)), architectures=["BertForSequenceClassification"])
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def three_class_reviews(n_per_class: int, seed: int) -> pd.DataFrame:
    """The toy reviews of conftest with a third, neutral class of lukewarm ones."""
    rng = random.Random(seed + 100)
    words = ["okay", "average", "fine", "mixed", "middling", "so-so"]
    filler = ["the", "plot", "actors", "film", "scene", "story", "and", "was", "really", "quite"]
    neutral = [{"text": " ".join(rng.choice(filler + words) for _ in range(rng.randint(8, 40))) + " okay.",
                "label": "neutral", "rating": rng.choice([5, 6]), "movie": f"tt{i % 12:07d}"}
               for i in range(n_per_class)]
    polar = synthetic_reviews(n_per_class, seed).assign(label=lambda d: d.label.map({0: "negative", 1: "positive"}))
    return pd.concat([polar, pd.DataFrame(neutral)], ignore_index=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data3")
    three_class_reviews(60, 0).to_parquet(folder / "train.parquet")
    three_class_reviews(30, 1).to_parquet(folder / "test.parquet")
    return folder


@pytest.fixture(scope="module")
def transfer(data, tmp_path_factory) -> Path:
    """Unlabelled texts under another column name, three of them test texts (which distillation must drop)."""
    texts = three_class_reviews(20, 7)["text"].tolist() + pd.read_parquet(data / "test.parquet")["text"][:3].tolist()
    path = tmp_path_factory.mktemp("transfer") / "unlabelled.parquet"
    pd.DataFrame({"review": texts, "label": -1}).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory) -> Path:
    model = tiny_deep_bert(tmp_path_factory.mktemp("deep-bert"))
    return train(tiny_config(model, data, tmp_path_factory.mktemp("runs"), name="teacher"))


def student_settings(transfer: Path, **values) -> DistillConfig:
    return load_distill_config({"student_layers": 2, "transfer_data": str(transfer), "transfer_text_column": "review",
                                **values})


@pytest.fixture(scope="module")
def student(teacher, transfer) -> Path:
    from sentitune.app.workflow import distill_student

    return distill_student(teacher, student_settings(transfer), {"name": "student"})


# ---------------------------------------------------------------- pieces


def test_chosen_layers_are_evenly_spaced_and_keep_the_last():
    assert chosen_layers(6, 3) == [0, 3, 5]
    assert chosen_layers(12, 6) == [0, 2, 4, 7, 9, 11]
    assert chosen_layers(4, 4) == [0, 1, 2, 3]
    assert chosen_layers(4, 1) == [3]


def test_distillation_loss_mixes_soft_and_hard_terms():
    import torch.nn.functional as F

    student = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    teacher = torch.tensor([[1.0, 1.0, 0.0], [0.0, 3.0, 0.0]])
    labels = torch.tensor([0, -1])  # the second row is a transfer text: no hard label
    ce = F.cross_entropy(student[:1], labels[:1])
    assert distillation_loss(student, teacher, labels, 2.0, 0.0) == pytest.approx(ce.item() / 2)
    assert distillation_loss(teacher, teacher, labels, 3.0, 1.0).item() == pytest.approx(0.0, abs=1e-7)
    t = 2.0
    p = torch.softmax(teacher / t, -1)
    kl = (p * (p.log() - torch.log_softmax(student / t, -1))).sum(-1)
    expected = (0.7 * t * t * kl + 0.3 * torch.stack([ce, torch.tensor(0.0)])).mean()
    assert distillation_loss(student, teacher, labels, t, 0.7).item() == pytest.approx(expected.item(), rel=1e-5)


def test_layer_student_copies_the_chosen_teacher_layers(teacher):
    from sentitune.models.loading import load_classifier

    cfg = RunFolder(teacher).config()
    student = layer_student(RunFolder(teacher), [0, 3], cfg).state_dict()
    source = load_classifier(str(teacher / "model")).state_dict()
    assert sum(1 for k in student if k.endswith("attention.self.query.weight")) == 2
    for name, value in student.items():
        origin = name.replace("layer.1.", "layer.3.")
        assert torch.equal(value, source[origin]), name
    for name in ("classifier.weight", "bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight"):
        assert torch.equal(student[name], source[name])


def test_teacher_logits_are_cached_by_chunk_and_keyed(tmp_path):
    calls = []

    def uniform(texts):
        calls.append(len(texts))
        return np.full((len(texts), 3), 1 / 3)

    teacher = from_probabilities("uniform", uniform)
    texts = [f"text {i}" for i in range(5)]
    first = cached_logits(teacher, texts, tmp_path / "cache", 3)
    assert first.shape == (5, 3) and np.allclose(first, np.log(1 / 3)) and calls == [5]
    boom = dataclasses.replace(teacher, logits=lambda texts: pytest.fail("recomputed"))
    assert np.array_equal(cached_logits(boom, texts, tmp_path / "cache", 3), first)
    cached_logits(teacher, texts[:4], tmp_path / "cache", 3)  # other texts: started over
    assert calls == [5, 4]
    wrong = from_probabilities("two classes", lambda texts: np.full((len(texts), 2), 0.5))
    with pytest.raises(SentituneError, match=r"must give \(5, 3\)"):
        cached_logits(wrong, texts, tmp_path / "other", 3)


def test_the_tfidf_ensemble_teaches_the_mean_of_both_probabilities():
    """Three classes: the ensemble's logits are the log of the mean of the run's softmax and TF-IDF + LR's; the
    TF-IDF model is fitted once, at the first call, on the train split."""
    from sentitune.core.labels import LabelScheme
    from sentitune.evaluation.baselines import fit_tfidf

    train = three_class_reviews(30, seed=1).assign(idx=range(90), label=lambda d: d.label.map(NAMES.index))
    labels = LabelScheme(tuple(NAMES))
    run_logits = np.tile(np.array([[2.0, 0.0, -1.0]]), (4, 1))
    teacher = from_probabilities("run", lambda texts: np.exp(run_logits[: len(texts)]) / np.exp(run_logits[0]).sum())
    ensemble = tfidf_ensemble(teacher, train, labels)
    assert ensemble.name == "run+tfidf" and "tfidf" not in ensemble.facts  # nothing fitted yet
    texts = list(train.text[:4])
    words = fit_tfidf({"train": train}, labels).score(pd.DataFrame({"text": texts}))["tfidf-lr"].probs
    expected = (np.exp(run_logits) / np.exp(run_logits).sum(1, keepdims=True) + words) / 2
    assert np.allclose(np.exp(ensemble.logits(texts)), expected, atol=1e-6)
    assert ensemble.facts["tfidf"]["train_size"] == 90 and ensemble.facts["ensemble"].startswith("mean")


# ---------------------------------------------------------------- a distilled run


def test_the_student_is_a_complete_run_with_k_layers(student, teacher):
    run = RunFolder(student)
    assert {p.name for p in student.iterdir()} >= {"model", "config.yaml", "metrics.json", "predictions.parquet",
                                                   "log.jsonl", "tb", "evaluation.json"}
    assert not [p for p in student.parent.iterdir() if p.name.startswith(".student")]  # no .partial, no lock
    assert not run.teacher_dir.exists() and not run.checkpoints_dir.exists()
    assert json.loads((student / "model" / "config.json").read_text())["num_hidden_layers"] == 2
    metrics, taught = run.metrics(), run.metrics()["distillation"]
    assert metrics["labels"]["names"] == NAMES and metrics["test"]["n"] == 90
    assert metrics["examples"]["test"] == RunFolder(teacher).metrics()["examples"]["test"]  # same test examples
    assert taught["student"] == {"layers": 2, "teacher_layers": [0, 3], "model": None,
                                 "parameters": taught["student"]["parameters"]}
    assert taught["teacher"]["run"] == str(teacher) and taught["teacher"]["layers"] == 4
    assert taught["student"]["parameters"] < taught["teacher"]["parameters"]
    assert (taught["temperature"], taught["alpha"], taught["same_tokenizer"]) == (2.0, 0.5, True)
    assert taught["transfer"] == {"data": taught["transfer"]["data"], "text_column": "review", "rows": 63,
                                  "dropped_test": 3, "dropped_validation": 0, "used": 60}
    assert metrics["train"]["train_samples"] == taught["soft_labels"]["labelled"] + 60
    assert run.config().model == str(teacher / "model") and run.config().data == RunFolder(teacher).config().data
    card = run.card_path.read_text()
    assert "## Distillation" in card and "layers 0, 3" in card and "temperature T = 2.0" in card


def test_the_student_loads_with_sentiment_model_and_pipeline(student):
    from transformers import pipeline

    from sentitune.inference.predict import SentimentModel

    preds = pd.read_parquet(student / "predictions.parquet").query("split == 'test' and not truncated")
    texts = preds["text"].tolist()[:12]
    piped = pipeline("text-classification", model=str(student / "model"), top_k=None)(texts)
    piped = np.array([[{d["label"]: d["score"] for d in row}[n] for n in NAMES] for row in piped])
    ours = SentimentModel.from_pretrained(student, runtime=Runtime.resolve("fp32")).predict_proba(texts)
    assert np.allclose(piped, ours, atol=1e-5)


def test_kill_9_then_resume_reuses_the_teacher_logits(student, teacher, transfer, monkeypatch):
    """Killed right after checkpoint 4 (teacher pass cached); the resume must not call the teacher and must end
    where the uninterrupted student did."""
    args = ("distill", str(teacher), "--student-layers", "2", "--transfer-data", str(transfer),
            "--transfer-text-column", "review", "--name", "resumed")
    killed = kill_at("saved:4", *args)
    assert killed.returncode == -9, killed.stderr[-2000:]
    work = RunFolder(teacher.parent / "resumed").work
    assert list(work.teacher_dir.glob("part-*.npy")) and not (teacher.parent / "resumed").exists()
    silent = dataclasses.replace(run_teacher(RunFolder(teacher)), logits=lambda texts: pytest.fail("recomputed"))
    resumed = distill(teacher, student_settings(transfer), {"name": "resumed"}, resume=True, teacher=silent)
    got, expected = RunFolder(resumed).metrics(), RunFolder(student).metrics()
    assert got["train"]["resumed_from"] == "checkpoint-4" and got["train"]["steps"] == expected["train"]["steps"]
    for split in ("validation", "test"):
        assert got[split] == expected[split]


def test_another_student_model_with_another_tokenizer(teacher, tmp_path, caplog, monkeypatch):
    """A student of another tokenizer trains on the soft labels (the teacher read the texts with its own)."""
    import sentitune.training.distill as module

    soft, plain = [], module.distillation_loss
    monkeypatch.setattr(module, "distillation_loss", lambda s, t, *rest: soft.append(t.shape) or plain(s, t, *rest))
    other = tiny_deep_bert(tmp_path / "other", layers=1, extra_tokens=("<spoiler>",))
    run = distill(teacher, load_distill_config({"student": str(other)}),
                  {"name": "other", "output_dir": str(tmp_path / "runs"), "max_steps": 2, "eval_steps": 2})
    assert len(soft) == 2 and all(shape[-1] == 3 for shape in soft)  # every training step, never validation
    taught = RunFolder(run).metrics()["distillation"]
    assert taught["same_tokenizer"] is False and taught["student"]["model"] == str(other)
    assert taught["transfer"] is None and taught["soft_labels"]["transfer"] == 0
    assert "re-tokenises every text with the teacher's own tokenizer" in caplog.text


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("case, flags, message", [
    ("unfinished", ("--student-layers", "1"), "the run is not finished"),
    ("teacher", ("--student-layers", "5"), "the teacher has 4 layers; pass 1 to 4"),
    ("teacher", ("--student-layers", "0"), "student-layers = 0 is out of range"),
    ("teacher", (), "pass either --student-layers K"),
    ("teacher", ("--student-layers", "1", "--student", "x"), "not both or neither"),
    ("teacher", ("--student-layers", "1", "--transfer-data", "TRANSFER"), "no text column 'text'"),
    ("teacher", ("--student-layers", "1", "--transfer-data", "TEST"), "never distil on the test split"),
    ("teacher", ("--student-layers", "1", "--alpha", "1.5"), "alpha = 1.5 is out of range"),
    ("teacher", ("--student-layers", "1", "--teacher-ensemble", "bm25"), "--teacher-ensemble bm25: use one of tfidf"),
    ("teacher", ("--student-layers", "1", "--model", "x"), "No such option: --model"),
    ("teacher", ("--student-layers", "1", "--self-distill", "tfidf"), "a student teaches no further student"),
])
def test_bad_input_is_one_line_and_writes_nothing(teacher, transfer, data, case, flags, message):
    from test_cli import sentitune

    source = teacher
    if case == "unfinished":
        source = teacher.parent / "half"
        (teacher.parent / ".half.partial").mkdir(exist_ok=True)
    flags = tuple({"TRANSFER": str(transfer), "TEST": str(data / "test.parquet")}.get(f, f) for f in flags)
    before = sorted(p.name for p in teacher.parent.iterdir())
    result = sentitune("distill", str(source), *flags, "--name", "bad")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(p.name for p in teacher.parent.iterdir()) == before


def test_a_student_of_a_self_distilled_run_is_not_chained_itself(teacher, transfer, tmp_path):
    """A teacher trained with --self-distill (its config says so) or the cpu-best preset: the student's config
    must say self_distill none, or `train --config` of it would chain a second student."""
    chained = tmp_path / "chained"
    shutil.copytree(teacher, chained)
    cfg = RunFolder(chained).config()
    (chained / "config.yaml").write_text(__import__("yaml").safe_dump(
        dataclasses.replace(cfg, self_distill="tfidf").to_dict(), sort_keys=False))
    from sentitune.training.distill import student_config

    assert student_config(RunFolder(chained), student_settings(transfer)).self_distill == "none"
    assert student_config(RunFolder(teacher), student_settings(transfer), preset="cpu-best").self_distill == "none"


def test_a_teacher_with_other_classes_is_refused(teacher, tmp_path):
    two_class = tmp_path / "binary"
    two_class.mkdir()
    synthetic_reviews(20, 0).to_parquet(two_class / "train.parquet")
    synthetic_reviews(10, 1).to_parquet(two_class / "test.parquet")
    with pytest.raises(SentituneError, match="its classes"):
        distill(teacher, load_distill_config({"student_layers": 1}),
                {"name": "x", "output_dir": str(tmp_path), "data": {"data": str(two_class)}})
    assert not list(tmp_path.glob("*x*"))
