"""Choosing the runtime and device: the fastest path that keeps fidelity on this machine.

`--device auto` is CUDA when torch sees a GPU, else the CPU. `--runtime auto` tries, in
order of speed:
- on a GPU: fp16 (autocast), then torch fp32;
- on a CPU with AMX: bf16, then onnx-int8, onnx, torch fp32;
- on other CPUs: onnx-int8, then onnx, then bf16 where the CPU has AVX512-BF16, then torch
  fp32 (the onnx ones when onnxruntime is installed).
Why AVX512-BF16 alone does not put bf16 first: its dot-product instructions double the
fp32 rate at best, while AMX tiles multiply whole blocks. Measured with benchmarks/embed.py
(ViT-B/32, batch 32, against torch fp32): Xeon with AMX, bf16 5.0x vs onnx-int8 3.3x; AMD
EPYC with AVX512-BF16 and no AMX, bf16 1.6x, onnx 1.7x, onnx-int8 5.7x; AMD EPYC with AVX2
only, onnx-int8 1.9x, onnx 1.1x, bf16 0.15x (emulated).
An approximate runtime (bf16, fp16, onnx-int8) is taken only when its recorded fidelity
check passes (shoefind.encoders.runtimes.fidelity); below the bar, the next one is tried and the
encoder's `runtime_choice` says why. Exact runtimes (torch, onnx) need no check.
"""
from __future__ import annotations

import logging

from shoefind.encoders.runtimes.capability import Capability, detect, onnx_available
from shoefind.encoders.runtimes.fidelity import BARS, checked_fidelity
from shoefind.errors import UserError

RUNTIMES = ("auto", "torch", "bf16", "fp16", "onnx", "onnx-int8")
DEVICES = ("auto", "cpu", "cuda")
APPROXIMATE = tuple(BARS)
log = logging.getLogger("shoefind.runtime")


def resolve_device(device: str | None, capability: Capability | None = None) -> str:
    """cpu or cuda: auto is cuda when a GPU is usable."""
    device = (device or "auto").lower()
    if device not in DEVICES and not device.startswith("cuda:"):
        raise UserError(f"unknown device '{device}': choose auto, cpu or cuda")
    cap = capability or detect()
    if device == "auto":
        return "cuda" if cap.cuda else "cpu"
    if device.startswith("cuda") and not cap.cuda:
        raise UserError(f"--device {device}: torch sees no CUDA GPU on this machine (use --device cpu or auto)")
    return device


def check_runtime(runtime: str | None, device: str = "cpu") -> str:
    """Refuse a runtime that cannot run on this device (before anything loads)."""
    runtime = (runtime or "auto").lower()
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime '{runtime}': choose one of {', '.join(RUNTIMES)}")
    if runtime in ("onnx", "onnx-int8"):
        if not onnx_available():
            raise UserError(f"runtime '{runtime}' needs onnxruntime and onnx (pip install -r requirements.txt)")
        if device != "cpu":
            raise UserError(f"runtime '{runtime}' runs on the CPU only; use --runtime fp16 or torch on {device}")
    if runtime == "bf16" and device != "cpu":
        raise UserError(f"runtime 'bf16' is the CPU path; on {device} use --runtime fp16 (or torch)")
    if runtime == "fp16" and not device.startswith("cuda"):
        raise UserError("runtime 'fp16' needs a CUDA GPU (--device cuda); on the CPU use bf16, onnx or torch")
    return runtime


def candidates(runtime: str | None, device: str, capability: Capability | None = None) -> list[str]:
    """The runtimes to try, fastest first (one for an explicit runtime)."""
    runtime = check_runtime(runtime, device)
    if runtime != "auto":
        return [runtime]
    cap = capability or detect()
    if device.startswith("cuda"):
        return ["fp16", "torch"]
    onnx = ["onnx-int8", "onnx"] if onnx_available() else []
    if cap.amx:
        return ["bf16"] + onnx + ["torch"]
    return onnx + (["bf16"] if cap.avx512_bf16 else []) + ["torch"]


def build(base, runtime: str, checkpoint, threads: int | None):
    """The encoder of one runtime over a loaded fp32 ClipEncoder."""
    if runtime == "torch":
        return base
    if runtime in ("bf16", "fp16"):
        from shoefind.encoders.runtimes.half import half_encoder
        return half_encoder(base, runtime)
    from shoefind.encoders.runtimes.onnx_runtime import onnx_encoder
    return onnx_encoder(base, checkpoint, runtime, threads)


def choose(base, checkpoint, runtime: str | None, capability: Capability | None = None,
           threads: int | None = None, built: dict | None = None, bars: dict | None = None):
    """The encoder to use: the first candidate runtime that passes its fidelity bar.

    `built` memoises encoders per runtime (load_encoder's per-process cache).
    The chosen encoder's `runtime_choice` records what was asked, tried and measured.
    """
    cap = capability or detect()
    built = {} if built is None else built
    asked = (runtime or "auto").lower()
    tried = []
    options = candidates(asked, base.device, cap)
    for i, name in enumerate(options):
        if name not in built:
            built[name] = build(base, name, checkpoint, threads)
        enc = built[name]
        fidelity = None
        if name in APPROXIMATE:
            fidelity = checked_fidelity(base, enc, cap, bars=bars)
            if hasattr(enc, "shares_exact_cache"):
                # bf16/fp16 within 0.999 of fp32: same embeddings for every purpose the cache serves
                enc.shares_exact_cache = fidelity["passed"]
            if not fidelity["passed"]:
                message = (f"runtime {name}: min cosine {fidelity['min_cosine']:.5f} against fp32 is below "
                           f"the bar {fidelity['bar']} on this machine")
                tried.append({"runtime": name, "min_cosine": fidelity["min_cosine"], "bar": fidelity["bar"]})
                if asked == "auto" and i + 1 < len(options):
                    log.warning("%s: falling back to %s", message, options[i + 1])
                    continue
                log.warning("%s (used because it was asked for; its embeddings get their own cache)", message)
        enc.runtime_choice = {"asked": asked, "runtime": name, "device": base.device,
                              "machine": cap.describe(), "fidelity": fidelity, "fell_back_from": tried}
        return enc
    raise AssertionError("unreachable: torch fp32 is always a candidate")


def describe_choice(choice: dict) -> str:
    """One line: which runtime, why, and its fidelity."""
    line = f"runtime {choice['runtime']} on {choice['device']} (asked: {choice['asked']})"
    fid = choice.get("fidelity")
    if fid:
        line += (f", min cosine {fid['min_cosine']:.5f} against fp32 (bar {fid['bar']}), "
                 f"{'checked ' + fid['date'] if not fid.get('reused') else 'recorded ' + fid['date']}")
    for fb in choice.get("fell_back_from", []):
        line += f"; {fb['runtime']} skipped: min cosine {fb['min_cosine']:.5f} < {fb['bar']}"
    return line
