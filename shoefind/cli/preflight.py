"""`shoefind doctor`: what this machine has for each pipeline stage, and how to supply what's missing."""
from __future__ import annotations

import os
import shutil
import socket

import typer


def _clip_weights() -> tuple[bool, str]:
    from shoefind.settings import model_spec
    from shoefind.encoders.base import ModelUnavailable
    from shoefind.encoders.openai_clip import _missing_weights_message, resolve_checkpoint
    spec = model_spec()
    try:
        path = resolve_checkpoint(spec)
    except ModelUnavailable as exc:
        return False, str(exc)
    if path is None:
        import clip.clip as cc
        from shoefind.encoders.openai_clip import clip_cache
        target = clip_cache() / os.path.basename(cc._MODELS[spec])
        return False, _missing_weights_message(spec, target)
    return True, f"CLIP model {spec}: {path}"


def _browser() -> tuple[bool, str]:
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    if chromium and driver:
        return True, f"browser: {chromium} with {driver}"
    return False, ("browser: Debian's chromium and chromedriver are missing (crawling and the web tests need "
                   "them): run `bash scripts/setup.sh` as root, or `apt-get install chromium chromium-driver`")


def _internet(host: str = "www.google.com") -> tuple[bool, str]:
    try:
        with socket.create_connection((host, 443), timeout=3):
            return True, f"internet: {host} reachable (crawling can run)"
    except OSError:
        return False, (f"internet: {host} is not reachable, so the scheduled expansion's crawl step will "
                       "record a clear failure; filtering, tables, embeddings and evaluation work offline")


def _dataset() -> tuple[bool, str]:
    from shoefind.settings import data_dir
    from shoefind.features.table import count_images
    images = data_dir() / "images"
    n = count_images(images) if images.is_dir() else 0
    if n:
        return True, f"dataset: {n} images in {images}"
    return False, (f"dataset: {images} has no images yet; put labeled folders there "
                   "(Brand_Top_Color_Sole_Name/photo.jpg) or let the expansion flow crawl them")


def doctor() -> None:
    """Say what this machine has for each pipeline stage, and how to supply what is missing."""
    for ok, message in (_clip_weights(), _browser(), _internet(), _dataset()):
        print(("  ok   " if ok else "  MISSING  ") + message)


def register(app: typer.Typer) -> None:
    app.command()(doctor)


if __name__ == "__main__":
    doctor()
