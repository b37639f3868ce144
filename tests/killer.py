"""Test helper: `python killer.py POINT ARGS...` runs the sentitune CLI with ARGS and SIGKILLs itself (a real
`kill -9`) at POINT; with KILLER_SIGNAL=TERM it sends itself SIGTERM there instead (what a spot instance or Slurm
sends before SIGKILL), goes on, and writes the time it did to the file $KILLER_STAMP when set:

    prepare     while tokenizing (data preparation)
    step:N      in the middle of step N+1: after its backward pass, before its optimizer step
    save:N      while checkpoint N is written: weights, optimizer and RNG written, trainer state not yet
    saved:N     right after checkpoint N is written
    end         after training has ended, before anything of the final save
    final       during the final save: predictions and metrics written, the model not yet
    swap        while the finished run is renamed into place: an older run moved aside, the new one not yet in
    test        during the test pass: validation predicted, the test split not yet
    chunk:N     batch scoring (predict --input): while chunk N+1 is scored, N chunks written
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from transformers import Trainer, TrainerCallback

SIGNAL = getattr(signal, f"SIG{os.environ.get('KILLER_SIGNAL', 'KILL')}")


def die(*args, **kwargs):
    if os.environ.get("KILLER_STAMP"):
        Path(os.environ["KILLER_STAMP"]).write_text(repr(time.time()))
    os.kill(os.getpid(), SIGNAL)


class KillAt(TrainerCallback):
    def __init__(self, event: str, step: int):
        self.event, self.step = event, step

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.event == "step" and state.global_step == self.step:
            die()

    def on_save(self, args, state, control, **kwargs):
        if self.event == "saved" and state.global_step >= self.step:
            die()

    def on_train_end(self, args, state, control, **kwargs):
        if self.event == "end":
            die()


def arm(point: str) -> None:
    """Install the kill for POINT by wrapping the function that runs there."""
    import sentitune.data.tokenize as tokenize
    import sentitune.inference.batch as batch
    import sentitune.run.folder as run
    import sentitune.training.train as train_module

    event, _, step = point.partition(":")
    if event == "prepare":
        tokenize.tokenize_function = lambda *a, **k: die
    elif event == "save":
        save_rng = Trainer._save_rng_state

        def save_then_die(self, output_dir):
            save_rng(self, output_dir)
            if self.state.global_step == int(step):
                die()

        Trainer._save_rng_state = save_then_die
    elif event == "final":
        train_module.save_model = die
    elif event == "swap":
        def half_swap(source: Path, target: Path):
            if target.exists():
                target.rename(target.with_name(f".{target.name}.old-{os.getpid()}"))
            die()

        run.replace_dir = half_swap
    elif event == "test":
        predict = train_module.logits_for_ids

        def die_before_test(model, ids, *args, **kwargs):
            if die_before_test.calls == 1:  # validation predicted
                die()
            die_before_test.calls += 1
            return predict(model, ids, *args, **kwargs)

        die_before_test.calls = 0
        train_module.logits_for_ids = die_before_test
    elif event == "chunk":
        score = batch.Scorer.__call__

        def die_while_scoring(self, table, job):
            if die_while_scoring.calls == int(step):
                die()
            die_while_scoring.calls += 1
            return score(self, table, job)

        die_while_scoring.calls = 0
        batch.Scorer.__call__ = die_while_scoring
    if event in {"step", "saved", "end"}:
        plain = train_module.train
        callback = KillAt(event, int(step or 0))
        train_module.train = lambda cfg, **kw: plain(cfg, **{**kw, "callbacks": [callback]})


if __name__ == "__main__":
    arm(sys.argv[1])
    from sentitune.app.cli import main

    sys.argv = ["sentitune", *sys.argv[2:]]
    main()
