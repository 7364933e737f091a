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

from shoefind.encoders.families import clip_parts
from shoefind.encoders.runtimes.capability import Capability, detect, no_gpu_here
from shoefind.encoders.spec import ModelSpec
from shoefind.encoders.weights import weights_id
from shoefind.errors import UserError
from shoefind.settings import current


@dataclass(frozen=True)
class KnownKey:
    key: str          # the embedding cache's key (its folder under DATA/embeddings)
    model_id: str
    runtime: str      # the runtime the loaded encoder would run
    is_random: bool   # random test weights (reports say so)
    checkpoint: Path | None = None   # the weights file
    fidelity: dict | None = None     # the recorded check of an approximate runtime
    fell_back_from: tuple = ()       # approximate runtimes skipped: below their bar here


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


def known_cache_key(spec: "ModelSpec | str | None" = None, runtime: str | None = None, device: str | None = None,
                    capability: Capability | None = None) -> KnownKey | None:
    """The cache key load_encoder(spec, device=device, runtime=runtime) would give, or None when it
    cannot be known without loading the model (see the module docstring)."""
    from shoefind.encoders.spec import spec_text, split_image_loading
    base, loading = split_image_loading(spec_text(spec))
    if loading == "seed":        # the seed's image loading: its own cache (encoders/image_loading.py)
        from dataclasses import replace

        from shoefind.encoders.image_loading import CACHE_SUFFIX, SEED_SUFFIX
        known = known_cache_key(base, runtime, device, capability)
        return known and replace(known, key=known.key + CACHE_SUFFIX, model_id=known.model_id + SEED_SUFFIX)
    try:
        parsed = ModelSpec.of(base)
    except Exception:      # not a spec: the loading path says what is wrong
        return None
    from shoefind.encoders.registry import _function, family_of
    known = family_of(parsed).known_key
    if known is None:
        return None        # this family is keyed by its loaded model
    return _function(known)(parsed, runtime, device, capability)


def clip_cache_key(parsed: ModelSpec, runtime: str | None, device: str | None,
                   capability: Capability | None) -> KnownKey | None:
    """The clip family's key: its weights id and preprocessing, and the runtime the recorded fidelity
    checks choose on this machine's CPU (a GPU: None, torch decides)."""
    from shoefind.encoders.runtimes.choose import candidates
    from shoefind.encoders.runtimes.fidelity import BARS, read_records, record_entry_key, record_path, usable_entry
    from shoefind.encoders.runtimes.onnx_files import INT8_SUFFIX
    named = _model_id(parsed.target)
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
        if not usable_entry(entry):
            return None    # never checked on this machine (or the record is damaged): the load checks it
        passed = entry["min_cosine"] >= BARS[name]
        fidelity = dict(entry, bar=BARS[name], passed=passed, recorded=str(path), reused=True)
        if not passed and asked == "auto" and i + 1 < len(options):
            skipped.append({"runtime": name, "min_cosine": entry["min_cosine"], "bar": BARS[name]})
            continue
        key = f"{base}|{INT8_SUFFIX}" if name == "onnx-int8" else base if passed else f"{base}|{name}"
        return KnownKey(key, model_id, name, is_random, checkpoint, fidelity, tuple(skipped))
    return None
