"""The machine and the runtime policy: what this CPU/GPU can do, and the one decision of device, precision,
threads and attention kernel that every stage (train, predict, baselines, serve, export) uses.

`Runtime.resolve(precision="auto", attention="auto")` is the only place that turns "auto" into a choice.
`ATEN_CPU_CAPABILITY=avx2` (or `default`) simulates a weaker CPU on a stronger one: torch then runs its AVX2
kernels and the policy treats bf16 as unavailable, as on an AVX2-only machine (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from .errors import SentituneError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
ATTENTIONS = ("auto", "sdpa", "eager")
SIMULATED_WEAK = {"avx2", "default"}  # ATEN_CPU_CAPABILITY values under which native bf16 is not used


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's name and the instruction-set extensions that decide kernels and precision."""

    name: str
    cores: int
    avx2: bool
    avx512: bool
    avx512_bf16: bool
    amx: bool
    vnni: bool
    torch_capability: str
    simulated: str | None = None

    @property
    def native_bf16(self) -> bool:
        """bf16 matmuls run natively (AVX512-BF16 or AMX), not emulated at a few hundredths of fp32's speed."""
        if self.simulated in SIMULATED_WEAK:
            return False
        return (self.avx512_bf16 or self.amx) and _mkldnn_bf16()

    def summary(self) -> str:
        """`AMD EPYC 7B13, 2 threads, AVX2` in one line, as printed beside every figure."""
        isa = [name for name, has in (("AVX2", self.avx2), ("AVX-512", self.avx512), ("AVX512-BF16", self.avx512_bf16),
                                      ("AMX", self.amx), ("VNNI", self.vnni)) if has]
        sim = f", simulating {self.simulated}" if self.simulated else ""
        return f"{self.name}, {self.cores} threads, {'/'.join(isa) or 'no AVX2'}{sim}"


def _mkldnn_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cpu_flags_and_name() -> tuple[set[str], str]:
    cpuinfo = Path("/proc/cpuinfo")
    flags, name, fields = set(), platform.processor() or platform.machine(), {}
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "flags" and not flags:
                flags = set(value.split())
            elif key in {"model name", "cpu family", "model"} and value:
                fields.setdefault(key, value)
    if "model name" in fields:  # VMs often hide the model number: family/model tell Zen 3 (25/1) from Zen 5 (26/x)
        name = f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    return flags, name


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This CPU, read once from /proc/cpuinfo and torch."""
    flags, name = _cpu_flags_and_name()
    simulated = os.environ.get("ATEN_CPU_CAPABILITY", "").lower() or None
    capability = torch.backends.cpu.get_cpu_capability()
    return CpuInfo(name=name, cores=torch.get_num_threads(), avx2="avx2" in flags,
                   avx512="avx512f" in flags, avx512_bf16="avx512_bf16" in flags,
                   amx="amx_bf16" in flags or "amx_tile" in flags,
                   vnni="avx512_vnni" in flags or "avx_vnni" in flags, torch_capability=str(capability),
                   simulated=simulated)


def pick_device(requested: str | None = None) -> torch.device:
    """The device: `requested`, else the first CUDA GPU, else the CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_precision(requested: str, device: torch.device, cpu: CpuInfo) -> str:
    """bf16 on Ampere+ GPUs and CPUs with native bf16, fp16 on older GPUs, else fp32; or what the user asked."""
    if requested not in PRECISIONS:
        raise SentituneError(f"--precision {requested}: use one of {', '.join(PRECISIONS)}.")
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu.native_bf16 else "fp32"


def pick_backend(requested: str, precision: str, on_cpu: bool, available: set[str]) -> str:
    """auto on a CPU: the OpenVINO model where the CPU has native bf16 (1.8x torch and 1.09x OpenVINO's own
    Optimum path on an AMX Xeon), the int8 ONNX graph where it has not (1.96x `pipeline()` against 1.17x for fp32
    torch on an AVX2-only CPU), each when the model folder has it (docs/benchmarks.md); else torch. Or what the
    user asked."""
    if requested != "auto":
        return requested
    if on_cpu and precision == "bf16" and "openvino" in available:
        return "openvino"
    return "onnx-int8" if on_cpu and precision != "bf16" and "onnx-int8" in available else "torch"


@dataclass(frozen=True)
class Runtime:
    """Device, precision, threads and attention kernel, decided once where a model is loaded."""

    device: torch.device
    precision: str
    threads: int
    attention: str
    cpu: CpuInfo = field(repr=False)

    @classmethod
    def resolve(cls, precision: str = "auto", attention: str = "auto", device: str | None = None,
                threads: int | None = None) -> "Runtime":
        if attention not in ATTENTIONS:
            raise SentituneError(f"--attention {attention}: use one of {', '.join(ATTENTIONS)}.")
        if threads:
            torch.set_num_threads(threads)
        dev, cpu = pick_device(device), cpu_info()
        return cls(dev, pick_precision(precision, dev, cpu), torch.get_num_threads(), attention, cpu)

    @property
    def dtype(self) -> torch.dtype:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)

    @property
    def on_cpu(self) -> bool:
        return self.device.type == "cpu"

    def autocast(self, enabled: bool = True):
        """The autocast context for inference at this precision (a no-op for fp32)."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled and self.precision != "fp32")

    def describe(self) -> dict:
        """What a run or a benchmark records about where it ran."""
        info = {"device": str(self.device), "precision": self.precision, "threads": self.threads,
                "attention": self.attention, "cpu": self.cpu.summary(), "cpu_flags": asdict(self.cpu),
                "platform": platform.platform(), "torch": torch.__version__}
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info
