"""Finish a trained run like the main job's stages 2, 4 and 5: baselines on the same test examples, evaluate,
compare, model card, report (the same as `sentitune baseline --data D --out RUN/baselines`, `sentitune evaluate
RUN`, `sentitune compare RUN RUN/baselines --out RUN/comparison`, `sentitune report RUN`).

    flock /tmp/sentitune-cpu.lock python benchmarks/finish_run.py runs/tweeteval [majority,tfidf,vader,base] [500]
"""
import shutil
import sys
import time
from pathlib import Path

from sentitune.app.workflow import score_baselines
from sentitune.core.labels import LabelScheme
from sentitune.data import examples_descriptor, prepare_splits
from sentitune.evaluation.compare import compare, markdown
from sentitune.evaluation.evaluate import evaluate_run
from sentitune.reporting.card import write_model_card
from sentitune.reporting.report import write_report
from sentitune.run.folder import RunFolder

run = RunFolder(Path(sys.argv[1]))
names = sys.argv[2].split(",") if len(sys.argv) > 2 else ["majority", "tfidf", "vader", "base"]
probe = int(sys.argv[3]) if len(sys.argv) > 3 else 500
cfg = run.config()
t = time.time()
splits, report = prepare_splits(cfg.data)
labels = LabelScheme.from_dict(report["labels"])
shutil.rmtree(run.baselines_dir, ignore_errors=True)
dirs = score_baselines(splits, labels, examples_descriptor(splits["test"], "test", cfg.data), names, run.baselines_dir,
                       {"base": {"probe_per_class": probe, "max_length": cfg.max_length}})
print("baselines", time.time() - t, flush=True)
evaluate_run(run.path)
table = compare([run.path, *dirs], run.comparison_dir)
print(markdown(table))
write_model_card(run.path, comparison=run.comparison_dir)
print(write_report(run.path, comparison=run.comparison_dir), time.time() - t)
