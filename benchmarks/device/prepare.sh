#!/usr/bin/env bash
# Prepare the inputs of a GPU run on this project's lent device machine (no internet there; at most 64 MiB carried
# per call, so the model and the data travel in two calls while the machine stays warm):
#   .whl/          wheels the machine's image lacks (datasets, dill, multiprocess, captum, vaderSentiment)
#   .gpu/minilm16  all-MiniLM-L6-v2 in fp16 (45 MB; call1.sh restores fp32 into /tmp/keep/minilm)
#   .gpu/slice     a 2,400 / 1,200-review IMDB slice for benchmarks/gpu.sh
#   .gpu/imdb      the IMDB parquet folder (42 MB) for call2.sh
# Then: device run "bash .gpu/call1.sh" carrying .whl .gpu/minilm16 .gpu/slice .gpu/setup.sh .gpu/call1.sh, and at
# once (the machine goes back after 30 s idle) "bash .gpu/call2.sh" carrying .whl .gpu/imdb .gpu/setup.sh .gpu/call2.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.whl/" .git/info/exclude || echo "/.whl/" >> .git/info/exclude
grep -qx "/.gpu/" .git/info/exclude || echo "/.gpu/" >> .git/info/exclude
mkdir -p .whl .gpu/minilm16 .gpu/slice .gpu/imdb
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 captum==0.9.0 vaderSentiment==3.3.2
cp benchmarks/device/{setup,call1,call2}.sh .gpu/
cp ../shared/data/imdb/*.parquet ../shared/data/imdb/manifest.json .gpu/imdb/
python3 - <<'P'
import shutil
import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file
from sentitune.models import default_model
src = default_model()
shutil.copytree(src, ".gpu/minilm16", dirs_exist_ok=True, ignore=shutil.ignore_patterns("model.safetensors"))
weights = load_file(f"{src}/model.safetensors")
save_file({k: v.astype(np.float16) for k, v in weights.items()}, ".gpu/minilm16/model.safetensors",
          metadata={"format": "pt"})
for split, n in (("train", 1200), ("test", 600)):
    frame = pd.read_parquet(f"../shared/data/imdb/{split}.parquet")
    frame.groupby("label", group_keys=False).sample(n, random_state=0).to_parquet(f".gpu/slice/{split}.parquet")
P
du -sh .whl .gpu/*
