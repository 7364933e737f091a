"""Whether bfloat16 autocast is worth using on this machine's CPU: detected and measured, never assumed.

A CPU with AVX512-BF16 or AMX runs bf16 convolutions and matrix products natively and can be
several times faster than fp32 (EfficientNet-Lite0 under bf16 autocast with channels-last memory on
this project's AVX512-BF16 build machine: ~150 images/s against ~40); one without emulates them and
is slower. `bf16_is_fast()` takes the CPU's flags (shoefind.encoders.runtimes.capability) and, given a probe (a small forward pass of the real network), times it both ways,
interleaved, keeping the best of several runs. A CPU with native bf16 uses it unless bf16 measures
clearly slower twice in a row: on a busy machine single timings swing both ways, and a false "slower"
would cost a factor of several.
$SHOEFIND_BF16=0/1 overrides both (tests pin it; machines where the measurement misjudges).
"""
from __future__ import annotations

import time
from typing import Callable


SLOWER_THAN = 0.8    # native bf16 is refused only when it measures below this, twice
ROUNDS = 4


def cpu_has_bf16() -> bool:
    """The CPU has native bf16 instructions (AMX or AVX512-BF16), as shoefind.encoders.runtimes.capability
    detects them (the CPU flags, read at run time)."""
    from shoefind.encoders.runtimes.capability import detect
    return detect().fast_bf16


def forced_bf16() -> bool | None:
    """$SHOEFIND_BF16 as a decision (None when unset)."""
    from shoefind.settings import current
    return current().bf16


def measured_speedup(probe: Callable[[bool], None], rounds: int = ROUNDS) -> float:
    """fp32 time / bf16 time of `probe(bf16)`, each the best of `rounds` interleaved runs."""
    probe(False)
    probe(True)          # warm-up: kernel selection and weight reformatting happen on first calls
    best = {False: float("inf"), True: float("inf")}
    for _ in range(rounds):
        for bf16 in (False, True):
            start = time.perf_counter()
            probe(bf16)
            best[bf16] = min(best[bf16], time.perf_counter() - start)
    return best[False] / max(best[True], 1e-9)


def bf16_is_fast(device: str = "cpu", probe: Callable[[bool], None] | None = None) -> bool:
    """Use bf16 autocast here? Never on a non-CPU device (these paths run fp32 there); on a CPU, when it
    has native bf16 and (with a probe) bf16 does not measure clearly slower, twice."""
    forced = forced_bf16()
    if forced is not None:
        return forced
    if device != "cpu" or not cpu_has_bf16():
        return False
    if probe is None:
        return True
    return not all(measured_speedup(probe) < SLOWER_THAN for _ in range(2))
