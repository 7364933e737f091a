"""`--image-loading seed`: photos decoded as the seed project decodes them, for parity runs.

shoefind decodes a photo with `shoefind.images.open_image`: JPEG draft at the model's resolution (several
times faster), the EXIF orientation applied, transparent pixels pasted on white. The seed
(FindYourShoes_with_CLIP: data.py ShoesImageDataset._parse_image_files and inference.py
ImageCandidate._parse_image_files / Recommend.classify) hands `Image.open(path)` straight to CLIP's
preprocessing, whose last PIL step is `convert("RGB")`: full-size decoding, no EXIF turn, and a
transparent PNG keeps whatever colour its transparent pixels store, often black
(`shoefind.images.open_image_as_seed`). shoefind's loading stays the default: on transparent product
shots the seed's loading puts the shoe on black (figures in README, "Reproducing the seed").

The choice travels with the model spec, as test-time augmentation does (`--tta flip` is `+flip`):
`--image-loading seed` appends `+seed-loading`, so every command, stage and flow that takes a model
takes it. The wrapped encoder's model id and cache key say so: the two loadings never share an
embedding cache or a learned classifier.
"""
from __future__ import annotations

from shoefind.encoders.base import encode_in_batches
from shoefind.encoders.families.clip_parts import Preprocess
from shoefind.encoders.spec import SEED_LOADING_SUFFIX as SEED_SUFFIX
from shoefind.encoders.spec import split_image_loading  # noqa: F401  (part of this module's API)
from shoefind.images import open_image_as_seed

IMAGE_LOADINGS = ("shoefind", "seed")
DEFAULT_IMAGE_LOADING = "shoefind"
CACHE_SUFFIX = "|seed-loading"


def with_image_loading(spec: str, loading: str | None) -> str:
    """The model spec that loads photos this way ('shoefind' or None: the spec as it is)."""
    if not loading or loading == DEFAULT_IMAGE_LOADING or spec.endswith(SEED_SUFFIX):
        return spec
    if loading not in IMAGE_LOADINGS:
        raise ValueError(f"unknown image loading '{loading}' (known: {', '.join(IMAGE_LOADINGS)})")
    return spec + SEED_SUFFIX


class SeedLoadingEncoder:
    """Any encoder, decoding photos as the seed does; everything else is the wrapped encoder's."""

    image_loading = "seed"

    def __init__(self, inner):
        object.__setattr__(self, "_inner", inner)

    def __getattr__(self, name):
        if name == "_inner":          # copy/pickle build the object before its __dict__
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __setattr__(self, name, value):   # batch_size and the like belong to the wrapped handle
        setattr(self._inner, name, value)

    @property
    def model_id(self) -> str:
        return f"{self._inner.model_id}{SEED_SUFFIX}"

    @property
    def cache_key(self) -> str:
        return f"{self._inner.cache_key}{CACHE_SUFFIX}"

    def load_image(self, src):
        image = open_image_as_seed(src)
        preprocess = self._inner.preprocess
        if not isinstance(preprocess, Preprocess):
            # CLIP's Preprocess converts after its crop, as clip.clip._transform; other pipelines
            # (image backbones, open_clip, transformers) get the seed's convert("RGB") first
            image = image.convert("RGB")
        return preprocess(image)

    def encode_images(self, images, batch_size: int | None = None, progress=None):
        return encode_in_batches(self, images, batch_size or self._inner.batch_size, progress)

    def __repr__(self) -> str:
        return f"SeedLoadingEncoder({self._inner!r})"
