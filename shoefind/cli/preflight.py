"""`shoefind doctor`: what this machine has for each pipeline stage, and how to supply what's missing.

Every check asks the same code the pipeline uses (the model loader, the crawler's browser lookup,
the data layout), so doctor cannot disagree with the commands.
"""
from __future__ import annotations

import socket

from shoefind.cli import options as o

OK, WARN, MISSING = "  ok       ", "  WARNING  ", "  MISSING  "


def _model(model: str | None) -> tuple[str, str]:
    from shoefind.encoders.base import ModelUnavailable
    from shoefind.encoders.load import load_encoder
    from shoefind.encoders.spec import spec_text
    spec = spec_text(model)
    try:
        enc = load_encoder(spec)
    except ModelUnavailable as exc:
        return MISSING, f"model {spec}: {exc}"
    text = "" if getattr(enc, "has_text", True) else " (image only: few-shot and nearest photos, no text prompts)"
    choice = getattr(enc, "runtime_choice", None)
    if choice:  # which runtime auto chose on this machine, and its recorded fidelity
        from shoefind.encoders.runtimes.choose import describe_choice
        text += f"; {describe_choice(choice)}"
    if enc.is_random:
        return WARN, (f"model {spec}: loads, but has RANDOM weights ({enc.model_id}): its answers mean nothing; "
                      f"use real weights for anything but tests{text}")
    return OK, f"model {spec}: {enc.model_id}, embed dim {enc.embed_dim}{text}"


def _runtime() -> tuple[str, str]:
    """This machine's capability and the order `--runtime auto` tries (the model line says what it chose)."""
    from shoefind.encoders.runtimes.capability import detect
    from shoefind.encoders.runtimes.choose import candidates, resolve_device
    from shoefind.settings import current
    settings = current()
    device = resolve_device(settings.device)
    order = candidates(settings.runtime, device)
    return OK, (f"runtime: {detect().describe()}; --device {settings.device} -> {device}; --runtime "
                f"{settings.runtime} tries {' > '.join(order)} (approximate ones only with min cosine "
                "against fp32 >= 0.999 for bf16/fp16, >= 0.99 for int8, checked once and recorded "
                "in DATA/embeddings/fidelity/)")


def _browser() -> tuple[str, str]:
    from shoefind.crawl.browser import local_browser
    chromium, driver = local_browser()
    if chromium and driver:
        return OK, f"browser: {chromium} with {driver}"
    missing = " and ".join(n for n, v in (("chromium", chromium), ("chromedriver", driver)) if not v)
    return MISSING, (f"browser: {missing} not found (crawling and the web tests need them): run `bash scripts/setup.sh` "
                     "as root, `apt-get install chromium chromium-driver`, or set SHOEFIND_CHROMIUM / "
                     "SHOEFIND_CHROMEDRIVER")


def _internet(host: str = "www.google.com") -> tuple[str, str]:
    try:
        with socket.create_connection((host, 443), timeout=3):
            return OK, f"internet: {host} reachable (crawling can run)"
    except OSError:
        return MISSING, (f"internet: {host} is not reachable, so the scheduled expansion's crawl step will "
                         "record a clear failure; filtering, tables, embeddings and evaluation work offline")


def _dataset(data_dir) -> tuple[str, str]:
    from shoefind.features.table import count_images
    from shoefind.settings import layout
    images = layout(data_dir).images
    n = count_images(images) if images.is_dir() else 0
    if n:
        return OK, f"dataset: {n} images in {images}"
    return MISSING, (f"dataset: {images} has no images yet; put labeled folders there "
                     "(Brand_Top_Color_Sole_Name/photo.jpg) or let the expansion flow crawl them")


def doctor(model: o.ModelDoctor = None, data_dir: o.DataDir = None, json_out: o.Json = False) -> None:
    """Say what this machine has for each pipeline stage, and how to supply what is missing."""
    checks = {"runtime": _runtime(), "model": _model(model), "browser": _browser(), "internet": _internet(), "dataset": _dataset(data_dir)}
    if json_out:
        from shoefind.cli.common import print_json
        print_json({k: {"status": s.strip().lower(), "message": m} for k, (s, m) in checks.items()})
        return
    for status, message in checks.values():
        print(status + message)
