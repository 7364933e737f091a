"""open_clip models: `open_clip:ARCH/PRETRAINED`, `open_clip:hf-hub:ORG/REPO` (e.g. Marqo-FashionSigLIP) or a folder.

A model folder is open_clip's hub layout: open_clip_config.json ({"model_cfg", "preprocess_cfg"})
beside open_clip_model.safetensors (or open_clip_pytorch_model.bin). `hf-hub:` repos are read
from the Hugging Face cache; pretrained tags (laion2b_s34b_b79k, ...) from the HF cache or,
for the few with only a URL, open_clip's download folder (~/.cache/clip). Nothing is fetched
unless downloading is allowed. `ARCH/PATH` loads a checkpoint file into a built-in architecture.
SigLIP-style models (sigmoid loss) carry a logit_bias, exposed as `logit_bias`.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from shoefind.encoders.base import ModelUnavailable, config_id, import_family_package, weights_id
from shoefind.encoders.spec import OPEN_CLIP_CONFIG as CONFIG_FILE, is_open_clip_folder  # noqa: F401  (this module's API)
from shoefind.encoders.families.family_encoder import FamilyEncoder
from shoefind.encoders.families.hub import hub_cache, hub_mode, local_snapshot, missing_repo_message

FAMILY = "open_clip"
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin")
TINY_MARK_FILE = "shoefind-tiny.txt"


def _open_clip():
    return import_family_package("open_clip", "open-clip-torch", "open_clip")


def folder_weights(folder: Path) -> Path | None:
    return next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)


class OpenClipEncoder(FamilyEncoder):
    """An open_clip CLIP / SigLIP model with its own tokenizer and preprocessing."""

    tokenizer = None

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.device))


def _precision(device: str) -> str:
    return "fp16" if str(device).startswith("cuda") else "fp32"


def _finish(model, preprocess, tokenizer, spec_id: str, weights: Path, device: str, source: str,
            is_random: bool = False) -> OpenClipEncoder:
    model.eval()
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    size = cfg.get("size") or getattr(model.visual, "image_size", 224)
    resolution = int(size[0] if isinstance(size, (tuple, list)) else size)
    dim = int(model.text_projection.shape[1]) if getattr(model, "text_projection", None) is not None \
        and isinstance(model.text_projection, torch.Tensor) else int(model.encode_text(tokenizer(["a"]).to(device)).shape[-1])
    enc = OpenClipEncoder(
        model=model, preprocess=preprocess, model_id=spec_id, family=FAMILY, weights=weights_id(weights),
        preprocess_id=config_id({"cfg": cfg, "transform": repr(preprocess)}), resolution=resolution, dim=dim,
        is_random=is_random, device=str(device), dtype=next(model.parameters()).dtype, source=source)
    enc.tokenizer = tokenizer
    return enc


def load_open_clip_folder(folder: Path, device: str, model_id: str | None = None) -> OpenClipEncoder:
    """A folder in open_clip's hub layout (a cached hf-hub snapshot or a saved tiny model)."""
    oc = _open_clip()
    weights = folder_weights(folder)
    if weights is None:
        raise ModelUnavailable(f"{folder} has {CONFIG_FILE} but no weights file ({', '.join(WEIGHT_FILES[:3])}).")
    name = f"local-dir:{folder}"
    with hub_mode():
        try:
            model, _, preprocess = oc.create_model_and_transforms(name, device=device, precision=_precision(device))
        except Exception as exc:  # open_clip wraps its own errors as RuntimeError/ValueError
            from shoefind.artifacts.torch_files import refusal
            refused = refusal(exc, weights, "open_clip checkpoint")
            if refused is not None:
                raise refused from None
            raise ModelUnavailable(f"open_clip could not build the model in {folder} ({exc})") from exc
        tokenizer = _tokenizer(oc, name, folder)
    mid = model_id or f"{folder.name}-{weights_id(weights)[:8]}"
    return _finish(model, preprocess, tokenizer, mid, weights, device, str(folder),
                   is_random=(folder / TINY_MARK_FILE).is_file())


def _tokenizer(oc, name: str, folder: Path | None = None):
    try:
        return oc.get_tokenizer(name)
    except Exception as exc:  # an HF tokenizer (SigLIP) missing from the cache
        repo = None
        if folder is not None:
            cfg = json.loads((folder / CONFIG_FILE).read_text()).get("model_cfg", {})
            repo = cfg.get("text_cfg", {}).get("hf_tokenizer_name")
        what = f"the tokenizer repo {repo}" if repo else "its tokenizer"
        raise ModelUnavailable(
            f"open_clip model {name} needs {what}, which is not in the Hugging Face cache {hub_cache()}. "
            + (f"On a connected machine run `hf download {repo}` and copy models--{repo.replace('/', '--')} "
               f"into {hub_cache()} here, or pass --download. " if repo else "")
            + f"({exc})") from exc


def _tag_weights(arch: str, tag: str, spec: str) -> Path:
    """The cached weights file of a pretrained tag (HF cache or ~/.cache/clip), else the paragraph."""
    oc = _open_clip()
    cfg = oc.get_pretrained_cfg(arch, tag)
    hub = (cfg.get("hf_hub") or "").strip("/")
    repo, filename = (hub.rsplit("/", 1) if hub.count("/") >= 2 else (hub, "")) if hub else ("", "")
    with hub_mode() as download:
        if hub:
            try:
                return Path(oc.download_pretrained(cfg, cache_dir=None))
            except Exception as exc:
                raise ModelUnavailable(missing_repo_message(
                    spec, repo, [filename or "open_clip_model.safetensors / open_clip_pytorch_model.bin"],
                    local_dir_hint=f"open_clip:{arch}/")
                    .replace("DIR`, copy DIR over and pass --model open_clip:" + arch + "/DIR",
                             f"DIR`, copy DIR over and pass --model open_clip:{arch}/DIR/<weights file>")) from exc
        url = cfg.get("url", "")
        target = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if not target.is_file() and not download:
            raise ModelUnavailable(
                f"Model {spec} is not on this machine: open_clip reads it from {target}. On a connected machine "
                f"download {url} and copy it to {target} here (or pass --model open_clip:{arch}/PATH), "
                "or add --download.")
        return Path(oc.download_pretrained(cfg, prefer_hf_hub=False))


def load_open_clip(spec: str, target: str, device: str) -> OpenClipEncoder:
    """Dispatch within the family: hf-hub repo, local folder, ARCH/TAG, or ARCH/checkpoint file."""
    oc = _open_clip()
    if target.startswith("hf-hub:"):
        repo = target[len("hf-hub:"):]
        folder = local_snapshot(repo, spec, [CONFIG_FILE, "open_clip_model.safetensors (or open_clip_pytorch_model.bin)"],
                                local_dir_hint="")
        return load_open_clip_folder(folder, device, model_id=repo.replace("/", "-"))
    path = Path(target).expanduser()
    if is_open_clip_folder(path):
        return load_open_clip_folder(path, device)
    if "/" not in target:
        raise ModelUnavailable(f"open_clip spec '{spec}' needs ARCH/PRETRAINED (e.g. open_clip:ViT-B-32/laion2b_s34b_b79k), "
                               "open_clip:hf-hub:ORG/REPO, or a folder holding open_clip_config.json.")
    arch, pretrained = target.split("/", 1)
    if arch not in oc.list_models():
        raise ModelUnavailable(f"open_clip has no architecture '{arch}' (see `python -c \"import open_clip; "
                               "print(open_clip.list_models())\"`).")
    file = Path(pretrained).expanduser()
    if file.is_file():
        weights, kwargs, mid = file, {}, f"{arch}-{file.stem}-{weights_id(file)[:8]}"
    elif oc.get_pretrained_cfg(arch, pretrained):
        weights = _tag_weights(arch, pretrained, spec)
        tag_cfg = oc.get_pretrained_cfg(arch, pretrained)
        kwargs = {k2: tag_cfg[k] for k, k2 in (("mean", "image_mean"), ("std", "image_std"),
                                               ("interpolation", "image_interpolation"),
                                               ("resize_mode", "image_resize_mode")) if k in tag_cfg}
        if tag_cfg.get("quick_gelu"):
            kwargs["force_quick_gelu"] = True
        mid = f"{arch}-{pretrained}"
    else:
        tags = ", ".join(oc.list_pretrained_tags_by_model(arch)) or "none"
        raise ModelUnavailable(f"'{pretrained}' is neither an open_clip pretrained tag of {arch} (known: {tags}) "
                               "nor an existing checkpoint file.")
    with hub_mode():
        try:
            model, _, preprocess = oc.create_model_and_transforms(arch, pretrained=str(weights), device=device,
                                                                  precision=_precision(device), **kwargs)
        except Exception as exc:
            from shoefind.artifacts.torch_files import refusal
            refused = refusal(exc, weights, "open_clip checkpoint")   # a pickle asking for code: never torch's advice
            if refused is not None:
                raise refused from None
            raise ModelUnavailable(f"open_clip could not load {weights} as {arch} ({exc})") from exc
        tokenizer = _tokenizer(oc, arch)
    return _finish(model, preprocess, tokenizer, mid, weights, device, str(weights))


TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1},
}


def make_tiny_open_clip(path: str | Path, seed: int = 0, sigmoid: bool = False) -> Path:
    """A tiny random open_clip model saved in open_clip's hub layout (config json + safetensors).

    Built with `create_model('local-dir:PATH', pretrained=None)` from the tiny config written there; it uses open_clip's own
    tokenizer (CLIP BPE, shipped in the package). sigmoid=True adds SigLIP's logit_bias.
    """
    oc = _open_clip()
    from safetensors.torch import save_file
    from shoefind.encoders.families.openai_clip import TINY_MARK
    cfg = json.loads(json.dumps(TINY_CONFIG))
    if sigmoid:
        cfg["init_logit_bias"] = -10.0
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for old in WEIGHT_FILES:  # rebuilding over an older tiny model: start from random weights
        (path / old).unlink(missing_ok=True)
    preprocess_cfg = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                      "interpolation": "bicubic", "resize_mode": "shortest"}
    (path / CONFIG_FILE).write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess_cfg}, indent=2))
    torch.manual_seed(seed)
    import logging
    logging.disable(logging.WARNING)  # open_clip logs "no weights found": random weights are the point here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = oc.create_model(f"local-dir:{path}", pretrained=None)  # config only, no weights yet: random
    finally:
        logging.disable(logging.NOTSET)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "open_clip_model.safetensors"))
    (path / TINY_MARK_FILE).write_text(f"{TINY_MARK}: a tiny open_clip model with RANDOM weights (seed {seed}); "
                                       "its answers mean nothing.\n")
    return path

