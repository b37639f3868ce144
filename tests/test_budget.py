"""sentitune.app.budget: durations, sizing the main job to a budget from measured rates, and the measurement itself."""

from __future__ import annotations

import dataclasses

import pytest

from sentitune.app.budget import Rates, measure, parse_duration, plan, seconds_for
from sentitune.core.errors import SentituneError
from sentitune.run.config import load_config

SLOW = Rates(train=5.0, predict=20.0, overhead_s=20.0, cpu="AVX2 test CPU", precision="fp32")


def test_durations():
    assert [parse_duration(t) for t in ("90s", "10m", "1.5h", "42", None, "none")] == [90, 600, 5400, 42, None, None]
    with pytest.raises(SentituneError, match="--time-budget ten"):
        parse_duration("ten")


def test_a_budget_shrinks_evaluation_then_training_to_fit():
    cfg = load_config(preset="cpu-quick")
    job = plan(cfg, SLOW, 600)
    d = job.cfg.data
    assert job.total_s <= 600 * 1.01 and job.shrunk
    assert d.test_per_class < 1000 and d.train_per_class < 2500 and d.train_per_class >= 100
    assert "about 9 minutes on this CPU (AVX2 test CPU, fp32)" in job.sentence() and "sized down" in job.sentence()
    assert job.to_dict()["train_per_class"] == d.train_per_class


def test_a_generous_budget_or_none_keeps_the_preset():
    cfg = load_config(preset="cpu-quick")
    fast = Rates(train=200.0, predict=2000.0, overhead_s=5.0, cpu="fast", precision="bf16")
    assert plan(cfg, fast, 600).cfg == cfg and not plan(cfg, fast, 600).shrunk
    estimate = plan(cfg, SLOW, None)
    assert estimate.cfg == cfg and estimate.total_s > 1000 and "budget" not in estimate.sentence()


def test_time_left_grows_the_training_set_up_to_the_data_there_is():
    cfg = load_config(preset="cpu-quick")
    pool = {"train": {0: 11_000, 1: 12_000}, "validation": {0: 1_200, 1: 1_300}, "test": {0: 12_500, 1: 12_500}}
    rates = Rates(train=25.0, predict=70.0, overhead_s=10.0, cpu="c", precision="bf16", available=pool)
    job = plan(cfg, rates, 600)
    per_class = job.cfg.data.train_per_class
    assert 2500 < per_class < 11_000 and job.total_s <= 0.85 * 600 and "grown to fill it" in job.sentence()
    bigger = plan(cfg, rates, 600, probe_per_class=500)
    assert bigger.cfg.data.train_per_class == per_class  # the same inputs size the same job
    # one example more per class would not fit
    grown = dataclasses.replace(cfg.data, train_per_class=per_class + 1, test_per_class=job.cfg.data.test_per_class,
                                validation_per_class=job.cfg.data.validation_per_class)
    assert sum(seconds_for(dataclasses.replace(cfg, data=grown), job.probe_per_class, rates, 2,
                           ("majority", "tfidf", "vader", "base")).values()) > 0.85 * 600
    # an hour takes every row of the largest class (the smaller class gives all it has)
    assert plan(cfg, rates, 3600).cfg.data.train_per_class == 12_000


def test_time_left_after_all_the_data_goes_to_more_epochs():
    small = {"train": {0: 700, 1: 400, 2: 100}, "validation": {0: 80, 1: 40, 2: 10}, "test": {0: 300, 1: 200, 2: 50}}
    rates = Rates(train=25.0, predict=70.0, overhead_s=10.0, cpu="c", precision="bf16", available=small)
    job = plan(load_config(preset="cpu-quick"), rates, 600, n_classes=3)
    assert job.cfg.data.train_per_class == 700 and 1.0 < job.cfg.epochs <= 10.0
    assert f"1,200 training examples for {job.cfg.epochs:g} epochs" in job.sentence(3)
    assert "every training row" in job.sentence(3)
    assert job.total_s <= 0.85 * 600
    longer = dataclasses.replace(job.cfg, epochs=job.cfg.epochs + 0.5)
    assert sum(seconds_for(longer, job.probe_per_class, rates, 3, ("majority", "tfidf", "vader", "base")).values()) \
        > 0.85 * 600 or job.cfg.epochs == 10.0
    big = plan(load_config(preset="cpu-quick"), rates_for_imdb(), 600)
    assert big.cfg.epochs == 1.0  # data left over: more data, not more epochs


def rates_for_imdb() -> Rates:
    pool = {"train": {0: 11_000, 1: 12_000}, "validation": {0: 1_200, 1: 1_300}, "test": {0: 12_500, 1: 12_500}}
    return Rates(train=25.0, predict=70.0, overhead_s=10.0, cpu="c", precision="bf16", available=pool)


def test_short_classes_count_only_the_rows_they_have():
    pool = {"train": {0: 2_900, 1: 1_400, 2: 600}}
    rates = Rates(train=25.0, predict=70.0, overhead_s=10.0, cpu="c", precision="bf16", available=pool)
    cfg = load_config(preset="cpu-quick")
    parts = seconds_for(cfg, 500, rates, 3, ("majority",))
    assert parts["train"] == pytest.approx((2_500 + 1_400 + 600) / 25.0)


def test_an_impossible_budget_is_one_line():
    with pytest.raises(SentituneError, match="--time-budget 1m: this CPU trains 5.0 examples/s"):
        plan(load_config(preset="cpu-quick"), SLOW, 60)


def test_measure_times_real_steps(tiny_model, parquet_folder):
    cfg = load_config(overrides={"model": str(tiny_model), "max_length": 32, "batch_size": 4,
                                 "data": {"data": str(parquet_folder), "validation_size": 0.2}})
    rates = measure(cfg, steps=3)
    assert rates.train > 0 and rates.predict > 0 and rates.precision in {"fp32", "bf16"} and rates.cpu


def test_whole_splits_shrink_only_the_training_set():
    cfg = load_config(preset="tweets")
    rates = Rates(train=30.0, predict=200.0, overhead_s=10.0, cpu="c", precision="fp32",
                  rows={"train": 16000, "validation": 2000, "test": 12284})
    job = plan(cfg, rates, 600, n_classes=3)
    assert job.shrunk and job.cfg.data.train_examples < 16000 and job.total_s <= 600 * 1.01
    assert "12,284 test examples" in job.sentence(3)
    with pytest.raises(SentituneError, match="evaluating this data alone"):
        plan(cfg, rates, 120, n_classes=3)


def test_self_distill_adds_the_teacher_pass_and_one_student_epoch():
    cfg = load_config(preset="cpu-quick")
    taught = load_config(preset="cpu-quick", overrides={"self_distill": "tfidf", "self_distill_texts": 1000})
    plain, extra = plan(cfg, SLOW, None).seconds, plan(taught, SLOW, None).seconds
    texts = 2 * 2500 + 1000  # the train split once plus the unlabelled texts
    assert extra["self-distill"] == pytest.approx(texts / 20.0 + texts / 5.0 + plain["validation"] + plain["test"])
    assert {k: v for k, v in extra.items() if k != "self-distill"} == plain
