"""Parity with the seed (changhyeonnam/FindYourShoes_with_CLIP): its 5-step rule, re-implemented
here from its published code (prompt_compute.py, utils.find_filtered_prod, inference.py and
config/prompt_template.yaml), against shoefind with `--prompts seed --vocabulary catalog`, on a
fixture catalog and a real (tiny, randomly initialised, deterministic) CLIP model."""
from __future__ import annotations

import itertools

import clip
import numpy as np
import pandas as pd
import pytest
import torch

from shoefind.encoders.load import load_model
from shoefind.scoring.zeroshot import ZeroShotModel, ZeroShotOptions

from tests.helpers import make_photo

# config/prompt_template.yaml of the seed, as it is there (positional slots).
SEED_TEMPLATES = {
    "name": ["a photo of the {} shoes.", "a photo of a {} sneakers.", "a photo of the {} shoes."],
    "brand": ["a photo of the {} brand shoes.", "a photo of a {} brand sneakers.",
              "a bright photo of the {} brand sneakers."],
    "color": ["a photo of the {} color shoes.", "a photo of a {} color sneakers.",
              "a bright photo of the {} color sneakers."],
    "hightop": ["a photo of the {}top shoes.", "a photo of a {}top sneakers.", "a bright photo of the {}top sneakers."],
    "sole": ["a photo of the shoes of sole is {}", "a photo of a sneakers of sole is {}",
             "a bright photo of the sneakers of sole is {}"],
    "zeroshot": ["A photo of the {} shoes, brand is {}, color is {}, hightop is {}top.",
                 "Brand is {}, color is {}, a photo of a {} shoes, hightop is {}top.",
                 "Brand is {}, color is {}, hightop is {}top, a photo of the {} shoes."],
}


def fixture_catalog() -> pd.DataFrame:
    """20 shoes over 3 brands, 3 colours, 2 tops (some combinations missing, so the filter can
    come back empty), with two soles."""
    rows = []
    for i, (brand, color, top) in enumerate(itertools.product(["Nike", "Vans", "Converse"],
                                                              ["Red", "Black", "White"], ["High", "Low"])):
        if i % 4 == 3:
            continue   # leave combinations out: a photo predicted as one of them has no match
        for model in ("One", "Two") if i % 3 == 0 else ("One",):
            rows.append({"name": f"{brand} {model} {color} {top}", "brand": brand, "color": color,
                         "hightop": top, "sole": "Gum Sole" if i % 2 else "Plain Sole"})
    shoes = pd.DataFrame(rows)
    shoes["shoe"] = shoes["name"]
    return shoes


class SeedRule:
    """The seed's classification of one photo (inference.Recommend.classify), over a catalog."""

    def __init__(self, model, catalog: pd.DataFrame):
        self.model, self.catalog = model, catalog
        # the seed's dicts: values in the order the catalog first lists them (utils.update_dict)
        self.classes = {a: list(dict.fromkeys(catalog[a])) for a in ("name", "brand", "color", "hightop", "sole")}
        self.filtered_weights: dict[tuple, torch.Tensor] = {}   # the seed recomputes them per photo
        self.weights = {a: self._ensemble([[t.format(c) for t in SEED_TEMPLATES[a]] for c in self.classes[a]])
                        for a in self.classes}

    @torch.no_grad()
    def _ensemble(self, prompt_lists) -> torch.Tensor:
        """TextPreCompute: per class, normalised prompt embeddings averaged and renormalised; (D, C)."""
        out = []
        for texts in prompt_lists:
            emb = self.model.encode_text(clip.tokenize(texts)).float()
            emb = emb / emb.norm(dim=-1, keepdim=True)
            mean = emb.mean(dim=0)
            out.append(mean / mean.norm())
        return torch.stack(out, dim=1)

    def classify(self, image_feature: torch.Tensor) -> str:
        top1 = {a: self.classes[a][int((100.0 * image_feature @ self.weights[a]).argmax())]
                for a in ("brand", "color", "hightop", "sole")}
        name_logits = 100.0 * image_feature @ self.weights["name"]
        top1_name = self.classes["name"][int(name_logits.argmax())]
        name_logit = name_logits.max()
        c = self.catalog   # utils.find_filtered_prod: brand, colour and top (sole is not used)
        products = c.loc[(c.brand == top1["brand"]) & (c.color == top1["color"]) & (c.hightop == top1["hightop"]),
                         "name"].tolist()
        if not products:
            return top1_name
        b, col, h = top1["brand"], top1["color"], top1["hightop"]
        t0, t1, t2 = SEED_TEMPLATES["zeroshot"]
        key = (tuple(products), b, col, h)
        if key not in self.filtered_weights:
            self.filtered_weights[key] = self._ensemble([[t0.format(p, b, col, h), t1.format(b, col, p, h),
                                                          t2.format(b, col, h, p)] for p in products])
        weights = self.filtered_weights[key]
        logits = 100.0 * image_feature @ weights
        best = int(logits.argmax())
        return products[best] if logits[best] > name_logit else top1_name


WORDS = ["red", "black", "white", "nike", "vans", "converse", "high", "low", "gum", "plain", "sole", "shoe",
         "photo", "sneaker", "one", "two", "leather", "canvas"]


@pytest.fixture(scope="module")
def queries(tiny_model, tmp_path_factory):
    """Query embeddings from the real tiny CLIP: 40 generated photos (image tower) and 120 short
    shoe descriptions (text tower). A random tiny model puts every photo in nearly the same place,
    so the descriptions are what spreads the queries over brands, colours and tops."""
    encoder = load_model(tiny_model, runtime="torch")  # exact fp32, as the seed rule's own text tower
    folder = tmp_path_factory.mktemp("parity")
    rng = np.random.default_rng(0)
    paths = [make_photo(folder / f"{i}.png", color=tuple(int(v) for v in rng.integers(0, 256, 3)), seed=i)
             for i in range(40)]
    photos = encoder.encode_tensors(torch.stack([encoder.load_image(p) for p in paths]))
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 7)))) for _ in range(120)]
    return encoder, np.concatenate([photos, encoder.encode_texts(texts)]).astype(np.float32)


def test_seed_prompts_and_catalog_vocabulary_pick_the_seeds_shoe(queries):
    encoder, x = queries
    catalog = fixture_catalog()
    seed = SeedRule(encoder.model, catalog)
    expected = [seed.classify(torch.from_numpy(v)) for v in x]

    options = ZeroShotOptions.parse(prompts="seed", vocabulary="catalog")
    zs = ZeroShotModel.build(encoder, catalog, options=options)
    result = zs.identify(x)
    picked = catalog["name"].to_numpy()[result.combined_scores.argmax(axis=1)]
    agree = float(np.mean(picked == np.array(expected)))
    assert agree >= 0.99, f"shoefind picks the seed's shoe on {agree:.1%} of photos"

    # the queries exercise every branch of the rule: filter empty, filtered shoe wins, name wins
    empty = result.filtered_best < 0
    filtered_won = ~empty & (picked == catalog["name"].to_numpy()[np.maximum(result.filtered_best, 0)])
    by_name = picked == catalog["name"].to_numpy()[result.name_scores.argmax(axis=1)]
    assert empty.any() and filtered_won.any() and (~empty & by_name & ~filtered_won).any(), \
        (empty.sum(), filtered_won.sum(), (~empty & by_name & ~filtered_won).sum())
