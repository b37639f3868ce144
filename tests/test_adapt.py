"""`sentitune adapt` on a tiny random BERT: continued MLM training on the task's texts (never its test split) into
a model folder that `sentitune train --model` takes; resume; one-line errors that leave nothing behind."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import synthetic_reviews
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, TrainerCallback, TrainingArguments

from sentitune.core.errors import SentituneError
from sentitune.core.machine import Runtime
from sentitune.data import clean_text, prepare_frames
from sentitune.models.loading import default_model
from sentitune.run.config import load_config
from sentitune.training.adapt import (
    AdaptConfig,
    MaskedPositionsTrainer,
    WholeWordMasking,
    adapt,
    adapt_texts,
    load_adapt_config,
    mlm_model,
    piece_bounds,
    piece_function,
    read_adapt_config,
    unplaced_weights,
)


@pytest.fixture(scope="module")
def imdb_like(tmp_path_factory) -> Path:
    """train/test/unsupervised parquet files like the IMDB copy; two unlabelled texts are copies of test texts."""
    folder = tmp_path_factory.mktemp("data")
    synthetic_reviews(20, seed=0).to_parquet(folder / "train.parquet")
    test = synthetic_reviews(10, seed=1)
    test.to_parquet(folder / "test.parquet")
    pd.concat([synthetic_reviews(8, seed=2)[["text"]], test[["text"]].head(2)]).to_parquet(
        folder / "unsupervised.parquet")
    return folder


def tiny_adapt(model: Path, data: Path, out: Path, name: str = "adapted", **overrides) -> AdaptConfig:
    values = {"model": str(model), "output_dir": str(out), "name": name, "max_steps": 4, "batch_size": 8,
              "max_length": 32, "learning_rate": 1e-3, "save_steps": 2, "logging_steps": 1, "eval_texts": 4,
              "data": {"data": str(data), "validation_size": 0.2}}
    return load_adapt_config({**values, **overrides})


@pytest.fixture(scope="module")
def adapted(tiny_model, imdb_like, tmp_path_factory):
    cfg = tiny_adapt(tiny_model, imdb_like, tmp_path_factory.mktemp("runs"))
    return adapt(cfg), cfg


def test_the_result_is_a_model_folder_with_its_facts_and_config(adapted):
    folder, cfg = adapted
    assert {"model.safetensors", "config.json", "tokenizer.json", "adapt.json", "adapt.yaml"} <= {
        p.name for p in folder.iterdir()}
    assert not (folder / "checkpoints").exists()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no work folder, lock or old copy left
    facts = json.loads((folder / "adapt.json").read_text())
    assert facts["steps"] == 4 and facts["tokens_seen"] > 0 and facts["tokens_per_s"] > 0
    assert facts["whole_word_mask"] and facts["precision"] in {"bf16", "fp32"}
    assert math.isfinite(facts["train_loss"]) and math.isclose(facts["eval_perplexity"], math.exp(facts["eval_loss"]))
    assert facts["fresh_head"] and all(k.startswith("cls.") for k in facts["fresh_head"])  # a classifier checkpoint
    assert facts["kept_from_original"] == ["bert.pooler.dense.bias", "bert.pooler.dense.weight"]
    assert facts["data"]["held_out"] == 4 and facts["data"]["dropped_test_overlap"] == 2
    assert read_adapt_config(folder) == cfg


def test_sentitune_train_takes_the_adapted_folder(adapted, tiny_model, imdb_like, tmp_path):
    from transformers import AutoModelForMaskedLM

    from sentitune.core.labels import LabelScheme
    from sentitune.models.loading import load_classifier
    from sentitune.training.train import train

    folder, _ = adapted
    cfg = load_config(overrides={"model": str(folder), "output_dir": str(tmp_path), "name": "on-adapted",
                                 "max_steps": 4, "batch_size": 8, "eval_steps": 2, "max_length": 32,
                                 "data": {"data": str(imdb_like), "validation_size": 0.2}})
    metrics = json.loads((train(cfg) / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 4 and 0 <= metrics["test"]["accuracy"] <= 1

    classifier = load_classifier(str(folder), LabelScheme.from_dict(None))
    original = load_classifier(str(tiny_model), LabelScheme.from_dict(None))
    mlm, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"]  # the trained MLM head is saved too
    assert torch.equal(classifier.bert.pooler.dense.weight, original.bert.pooler.dense.weight)
    adapted_embeddings = classifier.bert.embeddings.word_embeddings.weight
    assert torch.equal(adapted_embeddings, mlm.bert.embeddings.word_embeddings.weight)
    assert not torch.equal(adapted_embeddings, original.bert.embeddings.word_embeddings.weight)


def test_batch_size_auto_times_the_adaptation_steps_and_keeps_the_effective_batch(tiny_model, imdb_like, tmp_path):
    cfg = tiny_adapt(tiny_model, imdb_like, tmp_path, batch_size="auto")
    assert cfg.auto_batch_size and cfg.batch_size == 32  # adapt's default batch is the effective one kept
    folder = adapt(cfg)
    sweep = json.loads((folder / "batch_sweep.json").read_text())["train"]
    assert [r["batch_size"] for r in sweep["rows"]] == [2, 4, 8, 16, 32]
    saved = read_adapt_config(folder)
    assert saved.batch_size == sweep["chosen"] and saved.batch_size * saved.gradient_accumulation == 32


def test_no_test_text_is_read(imdb_like, tmp_path):
    cfg = tiny_adapt(Path("unused"), imdb_like, tmp_path)
    texts = adapt_texts(cfg)
    test = set(synthetic_reviews(10, seed=1)["text"].map(clean_text))
    assert not test & set(texts.train + texts.held_out)
    assert texts.report["dropped_test_overlap"] == 2 and texts.report["texts"]["unsupervised"] == 16


def test_the_test_rows_carved_from_a_single_file_are_not_read(tmp_path):
    synthetic_reviews(30, seed=3).to_csv(tmp_path / "reviews.csv", index=False)
    cfg = tiny_adapt(Path("unused"), tmp_path / "reviews.csv", tmp_path, eval_texts=0)
    frames, _ = prepare_frames(cfg.data)
    texts = adapt_texts(cfg)
    assert len(frames["test"]) > 0 and not set(frames["test"]["text"]) & set(texts.train)
    assert set(texts.train) == set(frames["train"]["text"]) | set(frames["validation"]["text"])


class Interrupted(Exception):
    pass


class InterruptAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Interrupted


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tiny_model, imdb_like, tmp_path):
    cfg = tiny_adapt(tiny_model, imdb_like, tmp_path, name="cut")
    with pytest.raises(Interrupted):
        adapt(cfg, callbacks=[InterruptAt(3)])
    work = tmp_path / ".cut.partial"
    assert (work / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file() and not (tmp_path / "cut").exists()
    with pytest.raises(SentituneError, match="an interrupted run exists; pass --resume"):
        adapt(cfg)
    folder = adapt(cfg, resume=True)
    facts = json.loads((folder / "adapt.json").read_text())
    assert facts["resumed_from"] == "checkpoint-2" and facts["steps"] == 4 and math.isfinite(facts["eval_loss"])
    logged = [json.loads(line)["step"] for line in (folder / "log.jsonl").read_text().splitlines()]
    assert 1 in logged and 4 in logged and not work.exists()
    with pytest.raises(SentituneError, match="already exists"):
        adapt(cfg, resume=True)


def bad_data(kind: str, folder: Path) -> Path:
    """A data folder that adapt must refuse."""
    folder.mkdir()
    reviews = synthetic_reviews(10, seed=4)
    if kind == "no text column":
        reviews = reviews.rename(columns={"text": "review"})
    elif kind == "empty":
        reviews = reviews.head(0)
    reviews.to_parquet(folder / "train.parquet")
    reviews.to_parquet(folder / "test.parquet")  # "only test texts": every train text is a test text
    return folder


@pytest.mark.parametrize("kind, message", [
    ("no text column", "missing column(s) ['text']"),
    ("empty", "the train split has no rows"),
    ("only test texts", "no texts left to adapt on"),
])
def test_bad_data_is_one_line_and_leaves_nothing(tiny_model, tmp_path, kind, message):
    cfg = tiny_adapt(tiny_model, bad_data(kind, tmp_path / "data"), tmp_path / "runs")
    with pytest.raises(SentituneError) as caught:
        adapt(cfg)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("field, value, message", [
    ("max_length", 4, "max-length = 4 is out of range"),
    ("mlm_probability", 0.0, "mlm-probability = 0.0 is out of range (0, 1)"),
    ("mlm_probability", 1.0, "mlm-probability = 1.0 is out of range (0, 1)"),
    ("mlm_probability", 1.5, "mlm-probability = 1.5 is out of range (0, 1)"),
    ("splits", "train,test", "adapt never reads the test split"),
    ("splits", "validation", "use train and/or unsupervised"),
])
def test_bad_settings_are_one_line_and_leave_nothing(tiny_model, imdb_like, tmp_path, field, value, message):
    with pytest.raises(SentituneError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tiny_adapt(tiny_model, imdb_like, tmp_path / "runs", **{field: value})
    cfg = dataclasses.replace(tiny_adapt(tiny_model, imdb_like, tmp_path / "runs"), **{field: value})
    with pytest.raises(SentituneError) as caught:  # a config built in Python is checked alike
        adapt(cfg)
    assert "\n" not in str(caught.value) and not (tmp_path / "runs").exists()


def test_the_command_line(tiny_model, imdb_like, tmp_path, caplog):
    from test_cli import sentitune

    args = ("adapt", "--model", str(tiny_model), "--data", str(imdb_like), "--validation-size", "0.2",
            "--output-dir", str(tmp_path), "--max-steps", "2", "--batch-size", "8", "--max-length", "32",
            "--eval-texts", "4")
    result = sentitune(*args)
    assert result.returncode == 0, result.stderr
    assert f"sentitune train --model {tmp_path / 'adapted'}" in " ".join(result.stdout.split())
    assert "the test split is never read" in caplog.text  # a warning: printed on stderr outside pytest
    bad = sentitune(*args, "--name", "bad", "--mlm-probability", "1.5")
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "mlm-probability" in lines[0]
    assert not (tmp_path / "bad").exists()


def test_the_default_sentence_encoder_gets_a_fresh_head_and_keeps_its_pooler(caplog):
    cfg = AdaptConfig(model=default_model())
    with caplog.at_level("WARNING", logger="sentitune"):
        model, fresh = mlm_model(cfg, Runtime.resolve("fp32"))
    assert "cls.predictions.transform.dense.weight" in fresh and "no trained MLM head" in caplog.text
    assert {"bert.pooler.dense.weight", "bert.pooler.dense.bias"} == set(unplaced_weights(cfg, model))


def test_pieces_end_at_word_starts_and_masks_take_whole_words():
    tokenizer = AutoTokenizer.from_pretrained(default_model())
    offsets = [(0, 3), (4, 6), (6, 9), (9, 12), (13, 17)]  # the | un ##bel ##ievable | film
    assert piece_bounds(offsets, 3) == [(0, 1), (1, 4), (4, 5)]
    assert piece_bounds([(0, 2), (2, 4), (4, 6)], 2) == [(0, 2), (2, 3)]  # one long word: cut where it must be
    text = "the unbelievably mesmerizing film was unwatchable " * 6
    batch = piece_function(tokenizer, 24)({"text": [text, "short one"]})
    assert max(map(len, batch["input_ids"])) <= 24 and len(batch["input_ids"]) > 3
    examples = [dict(zip(batch, row)) for row in zip(*batch.values())]
    torch.manual_seed(0)
    collated = WholeWordMasking(tokenizer, mlm_probability=0.5)(examples)
    masked, mask = collated["labels"] != -100, collated["attention_mask"].bool()
    assert masked.any() and not (masked & ~mask).any()  # padding never masked
    for row, piece in enumerate(examples):
        word, words = 0, {}
        for i, (start, end) in enumerate(piece["offset_mapping"]):
            if piece["special_tokens_mask"][i]:
                assert not masked[row, i]
                continue
            word += i == 0 or start != piece["offset_mapping"][i - 1][1] or piece["special_tokens_mask"][i - 1]
            words.setdefault(word, set()).add(bool(masked[row, i]))
        assert all(len(flags) == 1 for flags in words.values())  # every token of a word alike
        assert (collated["input_ids"][row][masked[row]] == tokenizer.mask_token_id).all()


def test_the_loss_projects_only_the_masked_positions_and_equals_the_models_own(tmp_path):
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=32)).eval()
    trainer = MaskedPositionsTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none"))
    input_ids = torch.randint(5, 50, (3, 12))
    labels = torch.full_like(input_ids, -100)
    labels[0, 2], labels[1, 5], labels[1, 6], labels[2, 11] = 7, 8, 9, 10
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    rows = []
    model.get_output_embeddings().register_forward_hook(lambda _, args, out: rows.append(args[0].shape[:-1]))

    loss = trainer.compute_loss(model, dict(batch))

    assert rows == [torch.Size([4])]  # the four masked tokens, not 3 x 12 positions
    assert torch.allclose(loss, model(**batch).loss, atol=1e-6)
