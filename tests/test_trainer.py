"""training.trainer: the one training assembly (max_length, Trainer arguments, class weights, layer-wise rates)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from sentitune.core.errors import SentituneError
from sentitune.core.labels import LabelScheme
from sentitune.core.machine import Runtime
from sentitune.run.config import load_config
from sentitune.training.trainer import (
    LateEarlyStopping,
    class_weight_loss,
    eval_metrics,
    layer_depth,
    layerwise_optimizer,
    resolve_max_length,
    selection_metric,
    training_arguments,
)


def test_class_weights_weight_the_rare_class_for_any_number_of_classes():
    loss = class_weight_loss(np.array([0] * 90 + [1] * 10))
    logits = torch.tensor([[0.0, 0.0]])
    assert loss({"logits": logits}, torch.tensor([1])) == pytest.approx(loss({"logits": logits}, torch.tensor([0])))
    three = class_weight_loss(np.array([0] * 10 + [1] * 60 + [2] * 30), 3)
    uniform = torch.zeros((3, 3))
    per_class = [float(three({"logits": uniform[:1]}, torch.tensor([k]))) for k in range(3)]
    assert per_class == pytest.approx([math.log(3)] * 3)  # one class per batch: the weights cancel in the mean


def test_max_length_comes_from_the_data_when_not_given(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    cfg = load_config(overrides={"model": str(tiny_model)})
    report = {}
    short = resolve_max_length(cfg, ["a short tweet"] * 50 + ["a somewhat longer tweet with more words"] * 2,
                               tokenizer, report)
    assert short.max_length == 16 and "99th percentile" in report["max_length"]["source"]
    long = resolve_max_length(cfg, ["word " * 600] * 10, tokenizer, {})
    assert long.max_length == 256
    given = resolve_max_length(load_config(overrides={"model": str(tiny_model), "max_length": 64}), ["x"],
                               tokenizer, report)
    assert given.max_length == 64 and report["max_length"]["source"] == "config"
    with pytest.raises(SentituneError, match="--max-length 100000"):
        resolve_max_length(load_config(overrides={"max_length": 100000}), ["x"], tokenizer, {})


def test_gpu_base_preset_asks_for_bf16_and_long_reviews(tmp_path):
    cfg = load_config(preset="gpu-base")
    runtime = Runtime.resolve("bf16")
    args = training_arguments(cfg, tmp_path, runtime, train_size=22_416)
    assert (cfg.max_length, args.per_device_train_batch_size, args.num_train_epochs, args.bf16) == (512, 32, 3.0, True)
    assert args.eval_steps == math.ceil(22_416 / 32) // 4  # about four evaluations per epoch


def test_checkpoint_policy_keeps_the_last_weights_when_validation_is_trained_on(tmp_path):
    runtime = Runtime.resolve("fp32")
    best = load_config()
    last = load_config(overrides={"checkpoint": "last"})
    folded = load_config(overrides={"data": {"validation_in_train": True}})
    assert best.keeps_best and not last.keeps_best and not folded.keeps_best
    auto = load_config(preset="cpu-quick")
    assert auto.checkpoint == "auto" and not auto.keeps_best  # one epoch: its end
    assert load_config(preset="cpu-quick", overrides={"epochs": 3}).keeps_best  # more: the best on validation
    assert training_arguments(best, tmp_path, runtime, train_size=100).load_best_model_at_end
    for cfg in (last, folded):  # neither picks a checkpoint on validation
        assert not training_arguments(cfg, tmp_path, runtime, train_size=100).load_best_model_at_end


def test_selection_metric_and_validation_metrics_per_scheme():
    cfg = load_config()
    assert selection_metric(cfg, LabelScheme(("negative", "positive"))) == "f1"
    assert selection_metric(cfg, LabelScheme(("neg", "neu", "pos"))) == "f1_macro"
    assert selection_metric(load_config(overrides={"selection_metric": "recall_macro"}),
                            LabelScheme(("a", "b"))) == "recall_macro"
    three = eval_metrics((np.eye(3)[[0, 1, 2, 2]], np.array([0, 1, 2, 1])))
    assert three["accuracy"] == 0.75 and "f1" not in three and three["recall_macro"] == pytest.approx(5 / 6)


def test_layer_lr_decay_gives_each_depth_its_rate(tiny_model, tmp_path):
    from transformers import TrainingArguments

    from sentitune.models.loading import load_classifier

    model = load_classifier(str(tiny_model))
    cfg = load_config(overrides={"model": str(tiny_model), "learning_rate": 1e-3, "layer_lr_decay": 0.5,
                                 "weight_decay": 0.1})
    _, kwargs = layerwise_optimizer(cfg, model, TrainingArguments(output_dir=str(tmp_path), use_cpu=True))
    rates = {(g["lr"], g["weight_decay"]) for g in kwargs["params"]}
    # 2 layers: head 1e-3, layer 1 5e-4, layer 0 2.5e-4, embeddings 1.25e-4; LayerNorm and biases without decay
    assert {lr for lr, _ in rates} == {1e-3, 5e-4, 2.5e-4, 1.25e-4} and {wd for _, wd in rates} == {0.0, 0.1}
    assert sum(len(g["params"]) for g in kwargs["params"]) == len(list(model.parameters()))
    assert kwargs["params"][0]["lr"] == 1e-3  # the head's group first: Trainer logs the first group's rate
    assert layer_depth("bert.encoder.layer.1.attention.self.query.weight", 2) == 2
    assert layer_depth("bert.embeddings.word_embeddings.weight", 2) == 0 and layer_depth("classifier.bias", 2) == 3


def test_early_stopping_counts_patience_only_in_the_late_part_of_the_schedule(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), eval_strategy="steps", save_strategy="steps",
                             load_best_model_at_end=True, metric_for_best_model="f1", report_to="none")
    callback, control = LateEarlyStopping(patience=2, start=0.5), TrainerControl()
    state = TrainerState(max_steps=100, best_metric=0.9)
    stopped = {}
    for step in (10, 20, 30, 40, 50, 60, 70):  # never better than 0.9
        state.global_step = step
        callback.on_evaluate(args, state, control, {"eval_f1": 0.8})
        stopped[step] = control.should_training_stop
    assert stopped == {10: False, 20: False, 30: False, 40: False, 50: False, 60: True, 70: True}
