"""Generated shoe photos a real image backbone tells apart: each shoe its own colour and silhouette, laid
out differently for every seed (no two are near-duplicates), on a light, slightly noisy background."""
from __future__ import annotations

from pathlib import Path

SHOES = {"Nike_High_Red_Plain Sole_Air Test": (200, 30, 30), "Nike_Low_Blue_Plain Sole_Dunk Test": (30, 40, 200),
         "Vans_Low_Green_Rubber Sole_Old Test": (30, 160, 60), "Converse_High_Yellow_Plain Sole_Chuck Test": (230, 200, 20)}


def shoe_photo(path: Path, color, seed: int, shape: int | None = None) -> Path:
    """A photo of the shoe of `color` (its silhouette: `shape`, default the one of that shoe)."""
    import random

    import numpy as np
    from PIL import Image, ImageDraw
    rnd = random.Random(seed)
    background = np.array([rnd.randint(200, 250) for _ in range(3)], np.float32)
    noise = np.random.default_rng(seed).normal(0, 5, (240, 320, 3))
    img = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(rnd.randint(2, 4)):
        x, y = rnd.randint(0, 300), rnd.randint(0, 220)
        draw.rectangle([x, y, x + rnd.randint(6, 20), y + rnd.randint(6, 16)],
                       fill=tuple(rnd.randint(0, 255) for _ in range(3)))
    x0, y0 = rnd.randint(5, 110), rnd.randint(30, 110)
    x1, y1 = x0 + rnd.randint(150, 200), y0 + rnd.randint(80, 120)
    shape = list(SHOES.values()).index(color) if shape is None else shape
    if shape == 0:        # each shoe its own silhouette as well as its colour, as real models differ
        draw.ellipse([x0, y0, x1, y1], fill=color)
    elif shape == 1:
        draw.rectangle([x0, y0, x1, y1], fill=color)
    elif shape == 2:
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=color)
    else:
        for k in range(x0, x1, 24):
            draw.rectangle([k, y0, k + 12, y1], fill=color)
    draw.rectangle([x0, y1 - 12, x1, y1], fill=(30, 30, 30))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=92)
    return path


def shoe_dataset(root: Path, per_shoe: int = 12, offset: int = 0) -> Path:
    """per_shoe photos of every shoe of SHOES, in Brand_Top_Color_Sole_Name folders."""
    for i, (folder, rgb) in enumerate(SHOES.items()):
        for j in range(per_shoe):
            shoe_photo(root / folder / f"photo {offset + j}.jpg", rgb, 1000 * i + offset + j)
    return root
