"""sentitune.core.machine: the CPU's capabilities and the one runtime policy (device, precision, attention)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import sentitune.core.machine as machine
from sentitune.core.errors import SentituneError


def cpu(**flags) -> machine.CpuInfo:
    base = dict(name="test CPU", cores=2, avx2=True, avx512=False, avx512_bf16=False, amx=False, vnni=False,
                torch_capability="AVX2")
    return machine.CpuInfo(**{**base, **flags})


def test_precision_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(machine, "_mkldnn_bf16", lambda: True)
    cpu_device = torch.device("cpu")
    assert machine.pick_precision("auto", cpu_device, cpu(avx512=True, avx512_bf16=True)) == "bf16"
    assert machine.pick_precision("auto", cpu_device, cpu(amx=True)) == "bf16"
    assert machine.pick_precision("auto", cpu_device, cpu()) == "fp32"
    assert machine.pick_precision("auto", cpu_device, cpu(avx512_bf16=True, simulated="avx2")) == "fp32"
    assert machine.pick_precision("fp32", cpu_device, cpu(avx512_bf16=True)) == "fp32"
    monkeypatch.setattr(machine.torch.cuda, "is_bf16_supported", lambda: False)
    assert machine.pick_precision("auto", torch.device("cuda"), cpu()) == "fp16"
    with pytest.raises(SentituneError, match="--precision int8"):
        machine.pick_precision("int8", cpu_device, cpu())


def test_runtime_describes_where_it_ran():
    runtime = machine.Runtime.resolve("fp32", "sdpa")
    described = runtime.describe()
    assert described["precision"] == "fp32" and described["attention"] == "sdpa" and described["threads"] >= 1
    assert runtime.cpu.name in described["cpu"] and runtime.dtype == torch.float32
    with pytest.raises(SentituneError, match="--attention flash"):
        machine.Runtime.resolve(attention="flash")


def test_simulated_weak_cpu_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    machine.cpu_info.cache_clear()
    try:
        info = machine.cpu_info()
        assert info.simulated == "avx2" and not info.native_bf16 and "simulating avx2" in info.summary()
    finally:
        machine.cpu_info.cache_clear()


def test_summary_names_the_instruction_sets():
    assert (cpu(avx512=True, avx512_bf16=True, vnni=True).summary()
            == "test CPU, 2 threads, AVX2/AVX-512/AVX512-BF16/VNNI")
    assert dataclasses.asdict(cpu())["avx2"] is True
