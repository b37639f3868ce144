"""Test helper: `python killer.py STEP train ARGS...` runs the sentitune CLI and SIGKILLs itself right after the
checkpoint of step STEP is written (a real `kill -9`), through the callbacks `train()` accepts."""

from __future__ import annotations

import os
import signal
import sys

from transformers import TrainerCallback


class KillAfterCheckpoint(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    import sentitune.train as train_module

    step, argv = int(sys.argv[1]), sys.argv[2:]
    plain = train_module.train
    train_module.train = lambda cfg, **kw: plain(cfg, **{**kw, "callbacks": [KillAfterCheckpoint(step)]})
    from sentitune.cli import main

    sys.argv = ["sentitune", *argv]
    main()
