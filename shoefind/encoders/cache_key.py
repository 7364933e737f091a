"""The embedding-cache key of a model spec, known without loading the model or importing torch, so a
command whose embeddings are all cached never loads one.

It is exactly what the loaded encoder's `cache_key` would be (tests compare the two): the weights
id, the preprocessing version and, for a runtime whose embeddings do not share the fp32 cache, that
runtime. The runtime is the one shoefind.encoders.runtimes.choose would take, read from the
fidelity checks recorded on this machine. Known for OpenAI CLIP names and checkpoints on the CPU;
anything else (other families, a GPU, a fidelity check never recorded, a named model whose file
was never verified) is None: load the model to learn it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shoefind.encoders import clip_parts
from shoefind.encoders.capability import Capability, detect, no_gpu_here
from shoefind.encoders.names import is_image_backbone, split_image_loading, weights_id
from shoefind.errors import UserError
from shoefind.settings import current, model_spec


@dataclass(frozen=True)
class KnownKey:
    key: str          # the embedding cache's key (its folder under DATA/embeddings)
    model_id: str
    runtime: str      # the runtime the loaded encoder would run
    is_random: bool   # random test weights (reports say so)
    checkpoint: Path | None = None   # the weights file
    fidelity: dict | None = None     # the recorded check of an approximate runtime
    fell_back_from: tuple = ()       # approximate runtimes skipped: below their bar here


def _clip_target(spec: str) -> str | None:
    """What load_encoder would pass to the CLIP loader for this spec, or None for another family."""
    if spec.startswith(("open_clip:", "hf:")):
        return None
    if spec.startswith("clip:"):
        return spec[len("clip:"):] or None
    if is_image_backbone(spec):
        return None
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir() or str(path).endswith(".lit.pt") or path.suffix in (".safetensors", ".bin"):
            return None
        return str(path)
    return spec if spec in clip_parts.available_models() else None


def _model_id(target: str) -> tuple[str, bool, Path] | None:
    """(model_id, random weights, weights file) as load_clip_encoder names the model; None when
    loading it would have something to say (a missing file, a named model's file not verified yet)."""
    if target in clip_parts.available_models():
        path = current().clip_cache / clip_parts.weights_file_name(target)
        if not (path.is_file() and clip_parts.checksum_known_ok(path, clip_parts.model_urls()[target].split("/")[-2])):
            return None
        return target.replace("/", "-"), False, path
    path = Path(target).expanduser()
    if not path.is_file():
        return None
    return f"{Path(target).stem}-{weights_id(path)}", clip_parts.is_tiny(path), path


def known_cache_key(spec: str | None = None, runtime: str | None = None, device: str | None = None,
                    capability: Capability | None = None) -> KnownKey | None:
    """The cache key load_encoder(spec, device=device, runtime=runtime) would give, or None when it
    cannot be known without loading the model (see the module docstring)."""
    from shoefind.encoders.fidelity import BARS, read_records, record_entry_key, record_path
    from shoefind.encoders.runtimes import candidates
    base, loading = split_image_loading(model_spec(spec).strip())
    if loading == "seed":        # the seed's image loading: its own cache (encoders/image_loading.py)
        from dataclasses import replace

        from shoefind.encoders.image_loading import CACHE_SUFFIX, SEED_SUFFIX
        known = known_cache_key(base, runtime, device, capability)
        return known and replace(known, key=known.key + CACHE_SUFFIX, model_id=known.model_id + SEED_SUFFIX)
    target = _clip_target(base)
    named = _model_id(target) if target else None
    if named is None:
        return None
    model_id, is_random, checkpoint = named
    device = (device or current().device or "auto").lower()
    if device == "auto" and capability is None and no_gpu_here():
        device = "cpu"
    cap = capability or (detect() if device == "cpu" else None)
    if device == "auto" and cap is not None and not cap.cuda:
        device = "cpu"
    if device != "cpu":
        return None        # a GPU: torch decides (and is needed anyway)
    asked = (runtime or current().runtime or "auto").lower()
    try:
        options = candidates(asked, "cpu", cap)
    except UserError:
        return None        # the loading path says what is wrong
    base = f"{model_id}|{clip_parts.PREPROCESS_VERSION}"
    path = record_path(base)
    records = read_records(path)
    skipped = []
    for i, name in enumerate(options):
        if name not in BARS:                       # exact runtimes share the fp32 cache
            return KnownKey(base, model_id, name, is_random, checkpoint, None, tuple(skipped))
        entry = records.get(record_entry_key(name, cap))
        if not isinstance(entry, dict) or "min_cosine" not in entry:
            return None    # never checked on this machine: the load checks and records it
        passed = entry["min_cosine"] >= BARS[name]
        fidelity = dict(entry, bar=BARS[name], passed=passed, recorded=str(path), reused=True)
        if not passed and asked == "auto" and i + 1 < len(options):
            skipped.append({"runtime": name, "min_cosine": entry["min_cosine"], "bar": BARS[name]})
            continue
        key = f"{base}|int8r" if name == "onnx-int8" else base if passed else f"{base}|{name}"
        return KnownKey(key, model_id, name, is_random, checkpoint, fidelity, tuple(skipped))
    return None
