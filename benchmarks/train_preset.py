"""Train one preset on one dataset in a fresh process, as `sentitune train --preset P --data D --name N --output-dir O`
would (plus optional overrides as a Python dict literal), and print the run folder and wall seconds.

    flock /tmp/sentitune-cpu.lock python benchmarks/train_preset.py tweets ../shared/data/tweeteval tweeteval runs \
        "{'learning_rate': 5e-5}"
"""
import ast
import sys
import time

from sentitune.run.config import load_config
from sentitune.training.train import train

preset, data, name, out = sys.argv[1:5]
extra = ast.literal_eval(sys.argv[5]) if len(sys.argv) > 5 else {}
cfg = load_config(preset=preset, overrides={"name": name, "output_dir": out, "data": {"data": data}, **extra})
started = time.time()
print(train(cfg, overwrite=True), time.time() - started, flush=True)
