"""What this machine can run fast: CPU bf16 instructions (AMX, AVX512-BF16) and a CUDA GPU.

Detected at run time, never assumed: the CPU flags come from /proc/cpuinfo (or, where that
file does not exist, from torch's CPU capability string), the GPU from torch.cuda. Tests
build a `Capability` by hand (`Capability.simulated`) and pass it in, so the choice of
runtime can be checked for machines with and without bf16 on any machine.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# The /proc/cpuinfo flags that make bf16 matrix products fast on x86 (AMX tiles or AVX512 dot products).
AMX_FLAGS = frozenset({"amx_bf16", "amx_tile"})
AVX512_BF16_FLAG = "avx512_bf16"


@dataclass(frozen=True)
class Capability:
    cpu: str                                    # CPU model name
    flags: frozenset = field(default_factory=frozenset)   # the bf16-relevant CPU flags found
    cuda: str | None = None                     # GPU name when torch can use one
    source: str = "detected"                    # "detected" or "simulated"

    @property
    def amx(self) -> bool:
        return "amx_bf16" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return AVX512_BF16_FLAG in self.flags

    @property
    def fast_bf16(self) -> bool:
        """bf16 matrix products run in hardware (AMX or AVX512-BF16)."""
        return self.amx or self.avx512_bf16

    def describe(self) -> str:
        """One line for `shoefind doctor` and the fidelity record."""
        cpu_bf16 = "AMX" if self.amx else "AVX512-BF16" if self.avx512_bf16 else "no bf16 instructions"
        gpu = f"; GPU {self.cuda}" if self.cuda else "; no GPU"
        sim = " (simulated)" if self.source == "simulated" else ""
        return f"{self.cpu} ({cpu_bf16}){gpu}{sim}"

    def machine_key(self) -> str:
        """What a fidelity result depends on: CPU model and bf16 instructions, or the GPU."""
        hw = f"cuda:{self.cuda}" if self.cuda else f"cpu:{self.cpu}:{','.join(sorted(self.flags)) or 'fp32'}"
        return f"{hw}|torch-{torch_version()}"

    def as_dict(self) -> dict:
        return {"cpu": self.cpu, "amx": self.amx, "avx512_bf16": self.avx512_bf16, "cuda": self.cuda,
                "source": self.source}

    @classmethod
    def simulated(cls, flags=(), cuda: str | None = None, cpu: str = "simulated CPU") -> "Capability":
        return cls(cpu=cpu, flags=frozenset(flags), cuda=cuda, source="simulated")


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]] | None:
    try:
        text = path.read_text(errors="ignore")
    except OSError:
        return None
    name, flags = platform.processor() or "unknown CPU", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and name in ("unknown CPU", platform.processor()):
            name = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return name, flags


def detect_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, frozenset]:
    """(CPU model name, the bf16-relevant flags it has)."""
    found = _cpuinfo(cpuinfo)
    if found is not None:
        name, flags = found
    else:  # no /proc (macOS, Windows): torch names the best instruction set it dispatches to
        import torch
        name, flags = platform.processor() or "unknown CPU", set()
        cap = torch.backends.cpu.get_cpu_capability().upper()
        if "AMX" in cap:
            flags |= {"amx_bf16", "amx_tile"}
    return name, frozenset(flags & (AMX_FLAGS | {AVX512_BF16_FLAG}))


@functools.lru_cache(maxsize=1)
def torch_version() -> str:
    """torch.__version__ (with its local part, e.g. 2.14.1+cu130), read from torch/version.py unless
    torch is imported already: a command that needs no model does not pay for importing torch."""
    if "torch" in sys.modules:
        return sys.modules["torch"].__version__
    spec = importlib.util.find_spec("torch")
    try:
        text = (Path(list(spec.submodule_search_locations)[0]) / "version.py").read_text()
        return re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M).group(1)
    except (AttributeError, TypeError, OSError):
        import torch
        return torch.__version__


def no_gpu_here() -> bool:
    """True when this Linux machine certainly has no GPU CUDA could use (no NVIDIA device node, no
    driver, no WSL GPU): then torch need not be imported to know. False means: ask torch."""
    if not sys.platform.startswith("linux"):
        return False
    return not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/dxg"))


def onnx_available() -> bool:
    """Whether the onnx runtimes can run here (onnxruntime and onnx installed; nothing imported)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def detect_cuda() -> str | None:
    if no_gpu_here():
        return None
    import torch
    try:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except (RuntimeError, AssertionError):  # a driver that torch cannot talk to is no GPU
        return None


@functools.lru_cache(maxsize=1)
def detect() -> Capability:
    """This machine's capability (read once per process)."""
    name, flags = detect_cpu()
    return Capability(cpu=name, flags=flags, cuda=detect_cuda())
