set -x
. .gpu/setup.sh
mkdir -p /tmp/keep && python3 - <<'P'
import shutil
from safetensors.torch import load_file, save_file
shutil.copytree(".gpu/minilm16", "/tmp/keep/minilm", dirs_exist_ok=True)
t = load_file(".gpu/minilm16/model.safetensors")
save_file({k: v.float() for k, v in t.items()}, "/tmp/keep/minilm/model.safetensors", metadata={"format": "pt"})
P
nvidia-smi -L; nproc; python3 -m pip list 2>/dev/null | grep -iE "^(torch|transformers|accelerate|pyarrow|datasets|pandas|tokenizers|scikit-learn|sentence-transformers) "
python3 -c "import sentitune.cli, sentitune.train, sentitune.adapt; print('imports ok')"
SENTITUNE_DATA=.gpu/slice timeout 300 bash benchmarks/gpu.sh 2>&1 | tee $OUT/gpu_sh.txt | grep -v "it/s\]" | tail -40
