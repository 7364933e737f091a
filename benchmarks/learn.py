"""Learning speed: CoOp training time and few-shot inference latency on this CPU.

CoOp runs on the full ViT-B/32 text tower (random weights: the time does not depend on
them) with synthetic cached image embeddings, 28 classes x 16 shots; few-shot latency is
per photo at batch 1, from an embedding (the image encoder's own time is printed beside it
for efficientnet-lite0; CLIP's is in benchmarks/embed.py).
    .venv/bin/python benchmarks/learn.py [--classes 28] [--shots 16] [--epochs 50] [--threads 2] [--class-specific]
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

from shoefind.evaluate.methods import TaskSpec  # noqa: E402
from shoefind.learn.coop import train_coop  # noqa: E402
from shoefind.learn.fewshot import PrototypeClassifier, TipAdapter  # noqa: E402
from shoefind.encoders.load import load_model  # noqa: E402
from shoefind.encoders.tiny import make_full_random
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=28)
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--class-specific", action="store_true", help="also time class-specific context")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
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

    for label, class_specific in (("shared", False), ("class-specific", True))[:1 + args.class_specific]:
        start = time.perf_counter()
        clf = train_coop(encoder, spec, train_x, train_y, class_specific=class_specific, max_epochs=args.epochs,
                         progress=False)
        seconds = time.perf_counter() - start
        t = clf.training
        out[f"coop_{label}"] = {"train_s": round(seconds, 2), "epochs": t["epochs_run"],
                                "s_per_epoch": round(t["seconds"] / max(t["epochs_run"], 1), 3),
                                "stopped_early": t["stopped_early"]}
        print(f"CoOp ({label} context) {args.classes} classes x {args.shots} shots: {seconds:.1f} s "
              f"({t['epochs_run']} epochs, {out[f'coop_{label}']['s_per_epoch']} s/epoch)", flush=True)

    tip = TipAdapter.fit(train_x, train_y, names, text, encoder.logit_scale)
    proto = PrototypeClassifier.fit(train_x, train_y, names, text, encoder.logit_scale)
    out["tip_adapter_ms_per_image"] = round(per_image_ms(tip.predict_proba, test_x), 4)
    out["prototype_ms_per_image"] = round(per_image_ms(proto.predict_proba, test_x), 4)
    out["coop_ms_per_image"] = round(per_image_ms(clf.predict_proba, test_x), 4)
    print(f"few-shot inference from an embedding, batch 1: Tip-Adapter {out['tip_adapter_ms_per_image']} ms, "
          f"prototype {out['prototype_ms_per_image']} ms, CoOp {out['coop_ms_per_image']} ms")

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
