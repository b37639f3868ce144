"""`sentitune adapt`'s loss from the masked positions only, against the model's own loss (every position projected
onto the vocabulary): tokens/s of whole MLM training steps (forward, backward, AdamW) on IMDB pieces of 256 tokens,
the same masked batches for every arm, A B C A B C in one process, at the runtime's precision. The third arm,
the encoder alone with a stand-in loss, is the floor: what a step costs without any vocabulary projection.

    python benchmarks/adapt_speed.py [--steps 16] [--batch-size 32] [--texts 600]

$SENTITUNE_DATA: the IMDB parquet folder (default /work/shared/data/imdb); the model is sentitune's offline default
(all-MiniLM-L6-v2, given a fresh MLM head as `sentitune adapt` gives it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from transformers import Trainer, TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from sentitune.core.machine import Runtime
from sentitune.training.adapt import (
    AdaptConfig,
    MaskedPositionsTrainer,
    WholeWordMasking,
    mlm_model,
    mlm_tokenizer,
    pieces,
)


def masked_batches(cfg: AdaptConfig, tokenizer, texts: list[str], size: int, count: int) -> list[dict]:
    """`count` batches of `size` pieces, masked once (seeded), longest pieces first as length grouping makes most."""
    data = pieces(texts, tokenizer, cfg.max_length)
    rows = sorted(range(len(data)), key=lambda i: -len(data[i]["input_ids"]))[:size * count]
    collator = WholeWordMasking(tokenizer, cfg.mlm_probability, seed=cfg.seed)
    return [collator([data[i] for i in rows[start:start + size]]) for start in range(0, len(rows), size)]


def tokens_per_s(loss_of, model, batches: list[dict], runtime: Runtime) -> tuple[float, float]:
    """Training steps over `batches`: tokens (padding excluded) per second, and the first batch's loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    first, tokens, started = None, 0, time.perf_counter()
    for batch in batches:
        with runtime.autocast():
            loss = loss_of(model, {key: value for key, value in batch.items() if key != "special_tokens_mask"})
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        first = loss.item() if first is None else first
        tokens += int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - started), first


def encoder_only(model, batch: dict):
    """A stand-in loss on the encoder's output: what a step costs without any vocabulary projection."""
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return hidden.float().pow(2).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16, help="Timed steps per arm and round.")
    parser.add_argument("--batch-size", type=int, default=32, help="Pieces per step (adapt's default).")
    parser.add_argument("--texts", type=int, default=600, help="IMDB train reviews cut into pieces.")
    args = parser.parse_args()
    print(machine(), flush=True)
    cfg = AdaptConfig()
    runtime = Runtime.resolve(cfg.precision, cfg.attention)
    tokenizer = mlm_tokenizer(cfg)
    model, _ = mlm_model(cfg, runtime)
    data = Path(os.environ.get("SENTITUNE_DATA", "/work/shared/data/imdb"))
    texts = pd.read_parquet(data / "train.parquet")["text"].head(args.texts).tolist()
    batches = masked_batches(cfg, tokenizer, texts, args.batch_size, args.steps + 2)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = MaskedPositionsTrainer(model=model, args=TrainingArguments(output_dir=tmp, report_to="none"))
        arms = {"every position (the model's own loss)": lambda m, b: Trainer.compute_loss(trainer, m, b),
                "masked positions only (sentitune adapt)": lambda m, b: trainer.compute_loss(m, b),
                "encoder alone (no MLM head: the floor)": encoder_only}
        model.train()
        for loss_of in arms.values():  # warm-up: kernels for these shapes
            tokens_per_s(loss_of, model, batches[:2], runtime)
        rates = {name: [] for name in arms}
        for _ in range(2):  # A B C A B C
            for name, loss_of in arms.items():
                rate, first = tokens_per_s(loss_of, model, batches[2:], runtime)
                rates[name].append(rate)
                print(f"{name}: {rate:,.0f} tokens/s (first batch loss {first:.4f})", flush=True)
    full, masked, floor = (sum(r) / len(r) for r in rates.values())
    print(f"\nprecision {runtime.precision}, {args.batch_size} pieces of <= {cfg.max_length} tokens a step, "
          f"{args.steps} steps an arm, 2 rounds")
    print(f"| loss over | tokens/s |\n|---|---|\n| every position | {full:,.0f} |\n| masked positions only | "
          f"{masked:,.0f} ({masked / full:.2f}x) |\n| encoder alone, no head | {floor:,.0f} ({floor / full:.2f}x) |")


if __name__ == "__main__":
    main()
