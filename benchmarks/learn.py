"""Learning speed: CoOp, LiT and fine-tuning training speed, and few-shot inference latency.

Everything runs on the full ViT-B/32 architecture with random weights (`make_full_random`;
the time does not depend on the weights):
- CoOp: the text tower with synthetic cached image embeddings, 28 classes x 16 shots;
- LiT: training images/s of `learn --method lit`'s own loop (shoefind.learn.lit.train_text_tower:
  captions from labels, multi-positive contrastive loss) against cached image embeddings (no
  pixels), with CLIP's ViT-B/32 text tower and with the small tower trained from scratch over an
  image-only backbone (1280-d, width 128, 3 layers), fp32 and bf16 autocast;
- finetune: training images/s from pixels (224 px), the text tower + the last `--blocks`
  visual blocks trainable, fp32 and bf16 autocast;
- few-shot latency per photo at batch 1, from an embedding (efficientnet-lite0's own
  encoding time beside it; CLIP's is in benchmarks/embed.py).
    .venv/bin/python benchmarks/learn.py [--parts coop,lit,finetune,fewshot] [--classes 28] [--shots 16]
        [--epochs 50] [--steps 3] [--batch 32] [--blocks 2] [--threads 2] [--class-specific]
It ends with a table of the training speeds (images/s, fp32 and bf16, and their ratio) and a JSON
line. On a shared machine the figures are noisy: run it on an idle one to compare.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shoefind.learn.methods import TaskSpec  # noqa: E402
from shoefind.learn.coop import train_coop  # noqa: E402
from shoefind.learn.fewshot import PrototypeClassifier, TipAdapter  # noqa: E402
from shoefind.encoders.load import load_model  # noqa: E402
from shoefind.encoders.families.tiny import make_full_random  # noqa: E402
from shoefind.learn.finetune import _image_features, _text_features, trainable_parameters  # noqa: E402
from shoefind.prompts import name_prompts  # noqa: E402

NAMES = ["Yeezy Boost 350 v2 Beluga", "Yeezy Boost 350 v2 Bone", "Yeezy Boost 350 v2 Zebra",
         "Adidas Samba Vegan Black", "Adidas Superstar Black", "Adidas Stan Smith", "Adidas Gazelle Almost Yellow",
         "Converse High Parchment", "Converse High White", "Converse Low Black", "Converse Onestar Black",
         "Converse Low Rush Blue", "Converse Low Midnight Clover", "Converse Low White",
         "Jordan1 Retro High og University Blue", "Jordan1 Retro High og Black Mocha", "Jordan1 Mid Light Smoke Gray",
         "Jordan1 Retro High og Chicago", "Dunk Low Retro Black", "Dunk Low Retro Valerian Blue",
         "Dunk Low Retro Gym Red", "Vans Sk8 Hi Golden Yellow", "Vans Checkerboard Slipon", "Vans Oldskool Black",
         "Vans Style 36 Suede Dress Blues", "Vans Marshmallow Green", "Vans Authentic Red", "Vans Marshmallow Red"]


def synthetic_embeddings(classes: int, per_class: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around one random centre per class (cos to the centre about 0.8, as for real photos)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(classes), per_class)
    noise = rng.normal(size=(len(y), dim)) * 0.75 / np.sqrt(dim)
    x = centres[y] + noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def per_image_ms(fn, x: np.ndarray, repeats: int = 200) -> float:
    fn(x[:1])
    start = time.perf_counter()
    for i in range(repeats):
        fn(x[i % len(x): i % len(x) + 1])
    return (time.perf_counter() - start) / repeats * 1000


def _autocast(precision: str):
    import contextlib
    import torch
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def training_images_per_s(step, batch: int, steps: int) -> float:
    """Images per second over `steps` steps, after one warm-up step."""
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return round(batch * steps / (time.perf_counter() - start), 2)


COLOURS = ("Black", "White", "Red", "Blue", "Green", "Grey", "Yellow", "Brown")


def catalog_labels(names: list[str]):
    """Labels for the synthetic catalog (brand from the name, colours and tops dealt in turn), as
    shoefind.learn.captions reads them."""
    import pandas as pd
    return pd.DataFrame([{"shoe": n, "name": n, "brand": n.split()[0], "color": COLOURS[i % len(COLOURS)],
                          "hightop": ("High", "Low")[i % 2], "sole": "Plain Sole"} for i, n in enumerate(names)])


def lit_speed(tower, names: list[str], shots: int, batch: int, steps: int, precision: str) -> float:
    """`learn --method lit`'s training loop on `tower` (a CLIP model or a TextTower), photos' cached
    embeddings (synthetic, `shots` per shoe) against captions of their labels; images/s over the
    steps after a one-step warm-up (tokenising and caption building are not timed)."""
    import copy
    from shoefind.learn.captions import build_captions
    from shoefind.learn.lit import LitSettings, train_text_tower
    dim = int(tower.text_projection.shape[1])
    x, photo_shoe = synthetic_embeddings(len(names), shots, dim)
    captions = build_captions(catalog_labels(names), photo_shoe)
    settings = LitSettings(steps=1, batch_size=batch, negatives=min(64, batch), precision=precision)
    train_text_tower(copy.deepcopy(tower), x, captions, settings)      # warm-up
    report = train_text_tower(copy.deepcopy(tower), x, captions,
                              LitSettings(**{**settings.as_dict(), "steps": steps}))
    return round(batch * steps / report.seconds, 2)


def small_tower(dim: int = 1280):
    """The text tower `learn --method lit` trains from scratch over efficientnet-lite0/lite2."""
    import torch
    from shoefind.encoders.families.text_tower import TextTower, TowerConfig
    from shoefind.learn.lit import LitSettings
    s = LitSettings()
    torch.manual_seed(0)
    return TextTower(TowerConfig(dim, width=s.width, layers=s.layers, heads=s.heads))


def speed_table(out: dict, precisions: list[str]) -> str:
    """Training images/s per part and precision, with bf16's speed-up over fp32."""
    rows = [("LiT, CLIP ViT-B/32 text tower (cached image embeddings)", "lit"),
            ("LiT, small text tower over an image-only backbone (cached embeddings)", "lit_small"),
            ("finetune, ViT-B/32 from 224 px pixels (text + last visual blocks)", "finetune")]
    head = ["training images/s"] + precisions + (["bf16 / fp32"] if {"fp32", "bf16"} <= set(precisions) else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, key in rows:
        values = [out.get(f"{key}_train_images_per_s_{p}") for p in precisions]
        if all(v is None for v in values):
            continue
        cells = [label] + ["-" if v is None else f"{v:g}" for v in values]
        if len(head) > len(precisions) + 1:
            fp32, bf16 = out.get(f"{key}_train_images_per_s_fp32"), out.get(f"{key}_train_images_per_s_bf16")
            cells.append(f"{bf16 / fp32:.2f}x" if fp32 and bf16 else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def finetune_speed(model, names: list[str], batch: int, steps: int, blocks: int, precision: str) -> float:
    """Fine-tuning from pixels: text tower + last `blocks` visual blocks, prompts of every class."""
    import copy
    import torch
    m = copy.deepcopy(model).float()
    params = trainable_parameters(m, blocks)
    for name, p in m.named_parameters():
        p.requires_grad_(name in params)
    opt = torch.optim.AdamW(list(params.values()), lr=1e-5)
    res = int(m.visual.input_resolution)
    pixels = torch.randn(batch, 3, res, res, generator=torch.Generator().manual_seed(0))
    y = torch.arange(batch) % len(names)
    captions = [f"a photo of a {n} shoe." for n in names]

    def step():
        with _autocast(precision):
            logits = 100.0 * _image_features(m, pixels) @ _text_features(m, captions).T
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return training_images_per_s(step, batch, steps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="coop,lit,finetune,fewshot")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps for lit and finetune")
    ap.add_argument("--batch", type=int, default=32, help="photos per lit / finetune step")
    ap.add_argument("--blocks", type=int, default=2, help="visual blocks fine-tuned")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--classes", type=int, default=28)
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--class-specific", action="store_true", help="also time class-specific context")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    out: dict = {"classes": args.classes, "shots": args.shots, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_full_random(Path(tmp) / "vit-b32-random.pt")
        try:
            encoder = load_model(str(ckpt), runtime="torch")
        except TypeError:   # a load_model without runtime selection
            encoder = load_model(str(ckpt))
    names = (NAMES * (args.classes // len(NAMES) + 1))[:args.classes]
    names = [n if i < len(NAMES) else f"{n} {i}" for i, n in enumerate(names)]
    start = time.perf_counter()
    text = encoder.encode_ensemble(name_prompts(names))
    out["zero_shot_prompt_embedding_s"] = round(time.perf_counter() - start, 2)
    spec = TaskSpec("name", names, "shoe", text)
    train_x, train_y = synthetic_embeddings(args.classes, args.shots, encoder.embed_dim)
    test_x, _ = synthetic_embeddings(args.classes, 4, encoder.embed_dim, seed=1)

    precisions = args.precisions.split(",")
    for precision in precisions:
        if "lit" in parts:
            ips = lit_speed(encoder.model, names, args.shots, args.batch, args.steps, precision)
            out[f"lit_train_images_per_s_{precision}"] = ips
            print(f"LiT (ViT-B/32 text tower, cached image embeddings) {precision}: {ips} images/s "
                  f"(batch {args.batch})", flush=True)
            ips = lit_speed(small_tower(), names, args.shots, args.batch, args.steps, precision)
            out[f"lit_small_train_images_per_s_{precision}"] = ips
            print(f"LiT (small text tower from scratch, 1280-d cached embeddings) {precision}: {ips} images/s "
                  f"(batch {args.batch})", flush=True)
        if "finetune" in parts:
            ips = finetune_speed(encoder.model, names, args.batch, args.steps, args.blocks, precision)
            out[f"finetune_train_images_per_s_{precision}"] = ips
            print(f"finetune (ViT-B/32 from pixels, text tower + last {args.blocks} visual blocks) {precision}: "
                  f"{ips} images/s (batch {args.batch}, {args.classes} class prompts per step)", flush=True)

    if parts & {"lit", "finetune"}:
        print(f"\nTraining speed, {args.threads} threads (noisy on a shared machine):")
        print(speed_table(out, precisions), flush=True)

    for label, class_specific in (("shared", False), ("class-specific", True))[:(1 + args.class_specific)
                                                                                * ("coop" in parts)]:
        start = time.perf_counter()
        clf = train_coop(encoder, spec, train_x, train_y, class_specific=class_specific, max_epochs=args.epochs,
                         progress=False)
        seconds = time.perf_counter() - start
        t = clf.training
        epochs = t["epochs_run"] + (t.get("validation_epochs_run") or 0)
        out[f"coop_{label}"] = {"train_s": round(seconds, 2), "epochs": epochs,
                                "s_per_epoch": round(t["seconds"] / max(epochs, 1), 3),
                                "chosen_epochs": t["best_epoch"]}
        print(f"CoOp ({label} context) {args.classes} classes x {args.shots} shots: {seconds:.1f} s "
              f"({epochs} epochs with validation and refit, {out[f'coop_{label}']['s_per_epoch']} s/epoch)",
              flush=True)

    if "fewshot" not in parts:
        print(json.dumps(out))
        return
    tip = TipAdapter.fit(train_x, train_y, names, text, encoder.logit_scale)
    proto = PrototypeClassifier.fit(train_x, train_y, names, text, encoder.logit_scale)
    out["tip_adapter_ms_per_image"] = round(per_image_ms(tip.predict_proba, test_x), 4)
    out["prototype_ms_per_image"] = round(per_image_ms(proto.predict_proba, test_x), 4)
    print(f"few-shot inference from an embedding, batch 1: Tip-Adapter {out['tip_adapter_ms_per_image']} ms, "
          f"prototype {out['prototype_ms_per_image']} ms")

    from PIL import Image
    backbone = load_model("efficientnet-lite0")
    photo = Image.new("RGB", (400, 240), (200, 30, 30))
    backbone.encode_images([photo])
    start = time.perf_counter()
    for _ in range(10):
        backbone.encode_images([photo])
    out["efficientnet_lite0_encode_ms_per_image"] = round((time.perf_counter() - start) / 10 * 1000, 1)
    print(f"efficientnet-lite0 image encoding, batch 1: {out['efficientnet_lite0_encode_ms_per_image']} ms")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
