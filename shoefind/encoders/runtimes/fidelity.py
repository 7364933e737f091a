"""The fidelity check of an approximate runtime: min cosine against fp32, once per model and machine.

A few photos (the first ones under DATA/images, else generated ones) and a few prompts are
encoded by the fp32 model and by the candidate runtime; the lowest cosine between the two
is compared with the runtime's bar (bf16/fp16 >= 0.999, onnx-int8 >= 0.99). The result is
recorded next to the embedding cache, DATA/embeddings/fidelity/<model>.json, one entry per
machine and runtime (runtime, min cosine, bar, machine capability, date), so later runs
read it instead of checking again.

A record is read with suspicion: an entry whose cosines are not numbers from -1 to 1 (a string,
null, NaN, 7) is treated as absent and checked again, with one warning line; an onnx-int8 entry
names the sha256 of the graphs it measured, and applies to those graphs only (a re-made export is
checked again).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import uuid
from pathlib import Path

import numpy as np

from shoefind.encoders.runtimes.onnx_files import EXPORT_VERSION
from shoefind.images import IMAGE_SUFFIXES, ImageError

# Lowest acceptable cosine against fp32, per approximate runtime.
BARS = {"bf16": 0.999, "fp16": 0.999, "onnx-int8": 0.99}
SAMPLE_IMAGES = 8
# Record names of runtimes whose output changed: onnx-int8 with 7-bit weights since records
# of the full-range int8 (which saturated on CPUs without VNNI) are no guide to it, and with the
# export version (v2's text tower quantises the activations of the prompt's tokens only).
RECORD_NAMES = {"onnx-int8": f"onnx-int8r-e{EXPORT_VERSION}"}


def record_entry_key(runtime: str, capability) -> str:
    return f"{RECORD_NAMES.get(runtime, runtime)}|{capability.machine_key()}"


_UNRECORDED: dict[tuple, dict] = {}
COSINES = ("min_cosine", "image_min_cosine", "text_min_cosine")
log = logging.getLogger("shoefind.runtime")


def entry_problem(entry) -> str | None:
    """Why a recorded entry cannot be used (None: it can): each cosine a finite number from -1 to 1."""
    if not isinstance(entry, dict):
        return "not a record"
    for name in COSINES:
        if name not in entry and name != "min_cosine":
            continue
        value = entry.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                or not -1.0 <= value <= 1.0:
            return f"{name} {value!r} is not a cosine"
    return None


def usable_entry(entry) -> bool:
    return entry_problem(entry) is None
SAMPLE_PROMPTS = ["a photo of a red high-top sneaker.", "a white low-top leather shoe with a gum sole.",
                  "Nike Dunk Low Panda", "a black running shoe", "a photo of a shoe."]


def record_path(model_key: str, data_dir: Path | None = None) -> Path:
    """DATA/embeddings/fidelity/<model cache key>.json."""
    from shoefind.settings import folder_name, layout
    return layout(data_dir).fidelity / (folder_name(model_key) + ".json")


def read_records(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_record(path: Path, entry_key: str, entry: dict) -> bool:
    """Add one entry (atomic rename; False when the data folder is not writable)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = read_records(path)
        data[entry_key] = entry
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, path)
        return True
    except OSError:
        return False


def sample_images(n: int = SAMPLE_IMAGES, data_dir: Path | None = None) -> tuple[list, str]:
    """(images, where they came from): the first n photos under DATA/images, else generated ones."""
    from shoefind.settings import layout
    folder = layout(data_dir).images
    found: list[Path] = []
    if folder.is_dir():
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            found += [Path(root) / f for f in sorted(files) if Path(f).suffix.lower() in IMAGE_SUFFIXES]
            if len(found) >= n:
                break
    if found:
        return found[:n], f"{min(n, len(found))} photos from {folder}"
    return generated_images(n), f"{n} generated images (no photos in {folder})"


def generated_images(n: int) -> list:
    """Deterministic shoe-sized images: a coloured sole-and-upper shape on a light, noisy ground."""
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        img = Image.new("RGB", (320, 240), tuple(int(v) for v in rng.integers(200, 256, 3)))
        d = ImageDraw.Draw(img)
        d.rounded_rectangle([30, 150, 290, 185], 12, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        d.ellipse([50 + i * 5, 60, 260, 170], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        d.line([90, 90, 200, 120], fill=(20, 20, 20), width=4)
        noisy = np.asarray(img, dtype=np.int16) + rng.integers(-12, 12, (240, 320, 3))
        out.append(Image.fromarray(noisy.clip(0, 255).astype(np.uint8)))
    return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def measure(reference, candidate, images) -> dict:
    """Min cosine of candidate against reference over the images (and prompts, with a text side)."""
    pixels = []
    for im in images:
        try:
            pixels.append(reference.preprocess(im) if hasattr(im, "mode") else reference.load_image(im))
        except ImageError:
            continue
    from shoefind.encoders.base import stack_pixels
    pixels = stack_pixels(pixels)
    image_cos = float(_cosines(reference.encode_tensors(pixels), candidate.encode_tensors(pixels)).min())
    out = {"image_min_cosine": round(image_cos, 6), "images": len(pixels)}
    worst = image_cos
    if getattr(reference, "has_text", False):
        text_cos = float(_cosines(reference.encode_texts(SAMPLE_PROMPTS), candidate.encode_texts(SAMPLE_PROMPTS)).min())
        out["text_min_cosine"] = round(text_cos, 6)
        worst = min(worst, text_cos)
    out["min_cosine"] = round(worst, 6)
    return out


def checked_fidelity(reference, candidate, capability, data_dir: Path | None = None,
                     bars: dict | None = None) -> dict:
    """The recorded fidelity of `candidate` (its runtime) on this machine, checked now if never before.

    Returns the record entry: runtime, min_cosine, bar, passed, machine, date, ...
    """
    runtime = candidate.runtime
    bar = (bars or BARS)[runtime]
    path = record_path(reference.cache_key, data_dir)
    entry_key = record_entry_key(runtime, capability)
    entry = read_records(path).get(entry_key) or _UNRECORDED.get((str(path), entry_key))
    export = getattr(candidate, "export_sha256", None) or None   # the graphs an onnx runtime runs
    problem = entry_problem(entry) if entry is not None else "absent"
    if problem is None and export is not None and entry.get("export") != export:
        problem = "it measured other ONNX graphs" if "export" in entry else "absent"
    if problem is None:
        return dict(entry, bar=bar, passed=entry["min_cosine"] >= bar, recorded=str(path), reused=True)
    if problem != "absent":
        log.warning("fidelity record %s, %s: %s; checking again", path, entry_key, problem)
    images, source = sample_images(data_dir=data_dir)
    entry = {"runtime": runtime, "device": candidate.device, "model": reference.model_id,
             "machine": capability.describe(), "capability": capability.as_dict(),
             "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "sample": source} | measure(reference, candidate, images) | ({"export": export} if export else {})
    saved = _write_record(path, entry_key, entry)
    if not saved:  # a read-only data folder: at least check once per process
        _UNRECORDED[(str(path), entry_key)] = entry
    return dict(entry, bar=bar, passed=entry["min_cosine"] >= bar,
                recorded=str(path) if saved else "(not recorded: data folder not writable)", reused=False)
