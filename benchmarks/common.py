"""Shared pieces of the benchmarks: the IMDB sample, the machine, FLOP counts, peak RSS and result tables.

The scripts import this file as `common` (they put `benchmarks/` on sys.path by being run from it).
Every heavy script is meant to run under `flock /tmp/sentitune-cpu.lock python benchmarks/<script>.py`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
IMDB = Path(os.environ.get("SENTITUNE_DATA", "/work/shared/data/imdb"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
NO_BF16 = "n/a: no native bf16 on this CPU"  # what a skipped bf16 figure reads


def imdb_splits(train_per_class: int, test_per_class: int, validation_per_class: int = 8, seed: int = 42):
    """Balanced IMDB train/validation/test samples through sentitune's own data layer (cleaned, seeded)."""
    from sentitune.data import DataConfig, prepare_splits

    cfg = DataConfig(data=str(IMDB), train_per_class=train_per_class, validation_per_class=validation_per_class,
                     test_per_class=test_per_class, seed=seed)
    splits, _ = prepare_splits(cfg)
    return splits, cfg


def imdb_prepared(cfg, train_per_class: int, test_per_class: int, validation_per_class: int = 8):
    """`sentitune.training.trainer.prepare` on a balanced IMDB sample: what `sentitune train` would build for `cfg`."""
    import dataclasses

    from sentitune.training.trainer import prepare

    data = dataclasses.replace(cfg.data, data=str(IMDB), train_per_class=train_per_class,
                               validation_per_class=validation_per_class, test_per_class=test_per_class)
    return prepare(dataclasses.replace(cfg, data=data))


def machine() -> str:
    """One line naming the CPU (core.machine, the policy's own reading), threads and software versions."""
    import transformers

    from sentitune.core.machine import cpu_info

    return (f"{cpu_info().summary()}, torch {torch.__version__} on {torch.get_num_threads()} threads, "
            f"transformers {transformers.__version__}, load average {os.getloadavg()[0]:.2f}")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB: VmHWM, which starts afresh at exec (ru_maxrss does not:
    Linux carries the parent's peak into a child started by fork + exec, so a big parent would mask its children)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def exported_copy(folder: Path, dest: Path | None = None, onnx: bool = True, openvino: bool = False) -> Path:
    """A copy of a model folder (`dest`, else a temporary one) with what `sentitune export` writes: its ONNX graphs
    and, with `openvino` (when the package is installed), its OpenVINO model; the original left as it is."""
    import shutil
    import tempfile

    from sentitune.inference.export import export_onnx, export_openvino
    from sentitune.models.exported import openvino_installed

    copy = dest or Path(tempfile.mkdtemp(prefix="sentitune-export-")) / "model"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("onnx", "openvino"), dirs_exist_ok=True)
    if onnx:
        export_onnx(copy)
    if openvino and openvino_installed():
        export_openvino(copy)
    return copy


def backend_files(model_dir: Path, backend: str) -> list[Path]:
    """The files `backend` loads from a model folder (the OpenVINO model is its folder: graph and weights)."""
    from sentitune.models.exported import onnx_path

    if backend == "torch":
        return [model_dir / "model.safetensors"]
    path = onnx_path(model_dir, backend)
    return [path.parent if backend == "openvino" else path]


def files_mb(paths: list[Path]) -> float:
    """Total size of `paths` (files, and every file under folders) in MiB."""
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return sum(f.stat().st_size for f in files) / 2**20


def native_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively (core.machine's reading; ATEN_CPU_CAPABILITY=avx2 says no)."""
    from sentitune.core.machine import cpu_info

    return cpu_info().native_bf16


def bf16_matmul_gflops(n: int = 4096, repeats: int = 5) -> float | None:
    """`matmul_gflops(torch.bfloat16)`, or None on a CPU without native bf16: there bf16 is emulated at ~0.2 GFLOP/s
    and one 4096^3 matmul takes minutes (the whole measurement over an hour). Report None as `NO_BF16`."""
    return matmul_gflops(torch.bfloat16, n, repeats) if native_bf16() else None


def matmul_gflops(dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> float:
    """Best-of-`repeats` GFLOP/s of an n x n x n matmul in `dtype` (the machine's practical peak)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def train_flops(config, batch: int, width: int) -> float:
    """Forward + backward matmul FLOPs of one BERT-style batch of `batch` sequences padded to `width` tokens.

    Per token and layer the forward pass does 2*(4d^2 + 2*d*d_ff) in the projections and 4*width*d in
    attention (QK^T and AV); backward costs twice the forward. Embedding lookups, norms and the tiny
    classifier head are left out, as in the usual model-FLOPs accounting."""
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = layers * (2 * (4 * d * d + 2 * d * ff) + 4 * width * d)
    return 3 * per_token * batch * width


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of `rows` (floats to 3 significant digits) in the order of `columns`."""
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def run_json(script: str, spec: dict) -> dict:
    """Run `benchmarks/<script> --spec JSON` in a fresh process (clean peak RSS) and return its last JSON line."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--spec", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
