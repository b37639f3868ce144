"""sentitune.data.tokenize: head/tail/head+tail truncation, special tokens kept, no padding."""

from __future__ import annotations

from sentitune.data import (
    DataConfig,
    prepare_splits,
    tokenize_splits,
    truncate_ids,
)


def test_truncation_strategies():
    ids = list(range(100))
    assert truncate_ids(ids, 8, "head") == list(range(8))
    assert truncate_ids(ids, 8, "tail") == list(range(92, 100))
    assert truncate_ids(ids, 8, "head+tail") == [0, 1] + list(range(94, 100))
    assert truncate_ids(ids[:5], 8, "head+tail") == ids[:5]


def test_tokenize_keeps_special_tokens_and_no_padding(parquet_folder, tiny_model, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    splits, _ = prepare_splits(DataConfig(data=str(parquet_folder), validation_size=0.2))
    out = tokenize_splits(splits, tok, max_length=16, truncation="head+tail", cache_dir=str(tmp_path))
    lengths = [len(x) for x in out["train"]["input_ids"]]
    assert max(lengths) == 16 and min(lengths) < 16  # truncated to 16, never padded
    row = out["train"][0]
    assert row["input_ids"][0] == tok.cls_token_id and row["input_ids"][-1] == tok.sep_token_id
    assert row["truncated"] == (row["n_tokens"] > 16)


