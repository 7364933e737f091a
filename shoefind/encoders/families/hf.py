"""Hugging Face transformers CLIP and SigLIP models (`hf:ORG/REPO` or a saved folder), e.g. FashionCLIP.

A model folder is what `save_pretrained` writes: config.json (model_type clip or siglip),
model.safetensors (or pytorch_model.bin), the tokenizer files and preprocessor_config.json.
`hf:ORG/REPO` reads the same files from the Hugging Face cache, never the network unless
downloading is allowed. Images go through the model's own image processor; SigLIP texts are
padded to the full length, as SigLIP was trained.
"""
from __future__ import annotations

from pathlib import Path

import torch

from shoefind.encoders.base import ModelUnavailable, config_id, import_family_package, weights_id
from shoefind.encoders.spec import is_hf_folder  # noqa: F401  (this module's API)
from shoefind.encoders.families.family_encoder import FamilyEncoder
from shoefind.encoders.families.hub import hub_mode, local_snapshot

FAMILY = "hf"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# What a folder needs; named in the missing-model paragraph.
NEEDED_FILES = ["config.json", "model.safetensors (or pytorch_model.bin)", "preprocessor_config.json",
                "tokenizer files (tokenizer.json / vocab.json + merges.txt / spiece.model)"]
TINY_MARK_FILE = "shoefind-tiny.txt"


def weights_file(folder: Path) -> Path | None:
    return next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)


class HfEncoder(FamilyEncoder):
    """A transformers CLIPModel / SiglipModel with its tokenizer and image processor."""

    tokenizer = None
    model_type = "clip"

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return _pooled(self.model.get_image_features(pixel_values=pixels))

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        max_len = int(self.model.config.text_config.max_position_embeddings)
        # SigLIP reads the last position and was trained on texts padded to full length
        padding = "max_length" if self.model_type == "siglip" else True
        enc = self.tokenizer(list(texts), padding=padding, truncation=True, max_length=max_len, return_tensors="pt")
        inputs = {"input_ids": enc["input_ids"].to(self.device)}
        if self.model_type != "siglip" and "attention_mask" in enc:
            inputs["attention_mask"] = enc["attention_mask"].to(self.device)
        return _pooled(self.model.get_text_features(**inputs))


def _quiet_transformers():
    """transformers without its progress bars and notices (shoefind shows its own progress)."""
    transformers = import_family_package("transformers", "transformers", "Hugging Face")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def _pooled(out) -> torch.Tensor:
    """transformers 5 returns a model output whose pooler_output is the projected feature."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _image_preprocess(processor):
    def preprocess(image):
        return processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]
    return preprocess


def _resolution(processor) -> int:
    for attr in ("crop_size", "size"):
        value = getattr(processor, attr, None)
        if value is not None and not isinstance(value, int):
            value = dict(value.items()) if hasattr(value, "items") else vars(value)
            value = value.get("height") or value.get("shortest_edge")
        if value:
            return int(value)
    return 224


def load_hf_folder(folder: Path, device: str, spec: str, model_id: str | None = None) -> HfEncoder:
    """Load a saved transformers CLIP/SigLIP folder (offline)."""
    _quiet_transformers()
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
    weights = weights_file(folder)
    if weights is None or not is_hf_folder(folder):
        raise ModelUnavailable(
            f"{folder} is not a complete Hugging Face CLIP/SigLIP folder: it needs {', '.join(NEEDED_FILES)} "
            "(what `save_pretrained` or `hf download REPO --local-dir DIR` writes).")
    with hub_mode(download=False):
        try:
            model = AutoModel.from_pretrained(str(folder), local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:
            from shoefind.artifacts.torch_files import refusal
            refused = refusal(exc, weights, "Hugging Face weights file")   # a pickle asking for code: never torch's advice
            if refused is not None:
                raise refused from None
            if not isinstance(exc, (OSError, ValueError)):
                raise
            raise ModelUnavailable(f"{folder}: transformers could not read this model folder ({exc})") from exc
    dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
    model.eval().to(device, dtype=dtype)
    model_type = model.config.model_type
    dim = int(getattr(model.config, "projection_dim", 0) or model.config.text_config.hidden_size)
    enc = HfEncoder(
        model=model, preprocess=_image_preprocess(processor),
        model_id=model_id or f"{folder.name}-{weights_id(weights)[:8]}", family=FAMILY,
        weights=weights_id(weights), preprocess_id=config_id(processor.to_dict()),
        resolution=_resolution(processor), dim=dim, is_random=(folder / TINY_MARK_FILE).is_file(),
        device=str(device), dtype=dtype, source=str(folder))
    enc.tokenizer = tokenizer
    enc.model_type = model_type
    return enc


def load_hf(spec: str, target: str, device: str) -> HfEncoder:
    """`hf:ORG/REPO` (from the HF cache) or a local folder."""
    path = Path(target).expanduser()
    if path.is_dir():
        return load_hf_folder(path, device, spec)
    folder = local_snapshot(target, spec, ["config.json", "model.safetensors", "preprocessor_config.json",
                                           "tokenizer files"], local_dir_hint="")
    if (folder / "open_clip_config.json").is_file():
        # repos such as Marqo's ship open_clip weights plus custom transformers code; read them with open_clip
        from shoefind.encoders.families.open_clip import load_open_clip_folder
        return load_open_clip_folder(folder, device, model_id=target.replace("/", "-"))
    return load_hf_folder(folder, device, spec, model_id=target.replace("/", "-"))


def make_tiny_hf(path: str | Path, kind: str = "clip", seed: int = 0) -> Path:
    """A tiny random CLIPModel or SiglipModel saved with save_pretrained, with a local tokenizer/processor.

    The tokenizer is CLIP's BPE cut to its first merges (built from the clip package's vocab
    file, nothing downloaded); the tiny SigLIP uses it too, as SigLIP's sentencepiece model
    is not available offline. Its answers are random.
    """
    _quiet_transformers()
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, SiglipConfig, SiglipImageProcessor, SiglipModel
    torch.manual_seed(seed)
    tokenizer = tiny_bpe_tokenizer()
    vocab = len(tokenizer)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  image_size=32, patch_size=16)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                vocab_size=vocab)
    if kind == "clip":
        config = CLIPConfig(text_config=text | {"max_position_embeddings": 77, "bos_token_id": tokenizer.bos_token_id,
                                                "eos_token_id": tokenizer.eos_token_id,
                                                "pad_token_id": tokenizer.pad_token_id},
                            vision_config=vision, projection_dim=32)
        model = CLIPModel(config)
        processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    elif kind == "siglip":
        config = SiglipConfig(text_config=text | {"max_position_embeddings": 16,
                                                  "pad_token_id": tokenizer.pad_token_id,
                                                  "eos_token_id": tokenizer.eos_token_id},
                              vision_config=vision)
        model = SiglipModel(config)
        with torch.no_grad():  # SigLIP's own initial temperature and bias (log 10, -10)
            model.logit_scale.fill_(2.302585)
            model.logit_bias.fill_(-10.0)
        processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    else:
        raise ValueError(f"unknown tiny hf kind {kind!r}: clip or siglip")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    processor.save_pretrained(str(path))
    from shoefind.encoders.families.openai_clip import TINY_MARK
    (path / TINY_MARK_FILE).write_text(f"{TINY_MARK}: a tiny {kind} transformers model with RANDOM weights "
                                       f"(seed {seed}); its answers mean nothing.\n")
    return path


def tiny_bpe_merges(n_merges: int = 2000) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's byte-level BPE vocab and merges, cut to the first `n_merges` merges (from the clip package)."""
    import gzip
    from clip import simple_tokenizer as st
    path = st.default_bpe()
    lines = gzip.open(path).read().decode("utf-8").split("\n")[1:1 + n_merges]
    merges = [tuple(line.split()) for line in lines]
    tokens = list(st.bytes_to_unicode().values())
    tokens = tokens + [t + "</w>" for t in tokens] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def tiny_bpe_tokenizer(n_merges: int = 2000):
    """A transformers CLIPTokenizer over the cut CLIP vocab: real tokenisation, tiny embedding table."""
    _quiet_transformers()
    from transformers import CLIPTokenizer
    vocab, merges = tiny_bpe_merges(n_merges)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)

