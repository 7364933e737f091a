"""Shoe-like drawings with known labels: the demo catalog's photos, made with PIL alone.

A side view: an upper in the shoe's colour whose collar height is its top (high, mid, low),
a sole in the sole's colour, laces, and the brand's mark on the side (a swoosh, three
stripes, a star patch, an N, a wave stripe, a formstrip). Each photo of a shoe varies its
position, size, facing, shade and lighting, so photos of one shoe are alike but not equal.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

# Bump when the drawings change (the trained test models are keyed by it, tests/helpers/trained_models.py).
DRAWING_VERSION = 1

COLORS = {"Black": (25, 25, 28), "White": (238, 238, 232), "Red": (200, 30, 35), "Blue": (35, 70, 200),
          "Green": (40, 150, 60), "Yellow": (240, 205, 40), "Pink": (240, 130, 180), "Orange": (245, 130, 30)}
SOLES = {"Plain Sole": (245, 245, 240), "Black Sole": (30, 30, 30), "Gum Sole": (170, 110, 55)}
BRANDS = ("Nike", "Adidas", "Converse", "New Balance", "Vans", "Puma")
TOPS = ("High", "Mid", "Low")
# one model per brand and top: its name and its sole
MODELS = {
    ("Nike", "High"): ("Apex", "Plain Sole"), ("Nike", "Mid"): ("Vortex", "Black Sole"),
    ("Nike", "Low"): ("Comet", "Gum Sole"),
    ("Adidas", "High"): ("Summit", "Gum Sole"), ("Adidas", "Mid"): ("Ridge", "Plain Sole"),
    ("Adidas", "Low"): ("Sprint", "Black Sole"),
    ("Converse", "High"): ("Tower", "Plain Sole"), ("Converse", "Mid"): ("Harbor", "Gum Sole"),
    ("Converse", "Low"): ("Oxford", "Black Sole"),
    ("New Balance", "High"): ("Granite", "Black Sole"), ("New Balance", "Mid"): ("Canyon", "Plain Sole"),
    ("New Balance", "Low"): ("Meadow", "Gum Sole"),
    ("Vans", "High"): ("Skyline", "Gum Sole"), ("Vans", "Mid"): ("Pier", "Black Sole"),
    ("Vans", "Low"): ("Wave", "Plain Sole"),
    ("Puma", "High"): ("Falcon", "Black Sole"), ("Puma", "Mid"): ("Panther", "Gum Sole"),
    ("Puma", "Low"): ("Arrow", "Plain Sole"),
}


@dataclass(frozen=True)
class DemoShoe:
    brand: str
    hightop: str
    color: str
    sole: str
    name: str

    @property
    def folder(self) -> str:
        """The catalog folder name: Brand_Top_Color_Sole_Name."""
        return f"{self.brand}_{self.hightop}_{self.color}_{self.sole}_{self.name}"


def demo_shoes() -> list[DemoShoe]:
    """Every model in every colour: 6 brands x 3 tops x 8 colours = 144 shoes."""
    return [DemoShoe(brand, top, color, sole, f"{model} {color}")
            for (brand, top), (model, sole) in MODELS.items() for color in COLORS]


def _jitter(rgb, rng: random.Random, amount: int):
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def _mark_color(color: str):
    r, g, b = COLORS[color]
    return (20, 20, 20) if (r + g + b) / 3 > 150 else (250, 250, 250)


def draw_shoe(shoe: DemoShoe, rng: random.Random, size: int = 96) -> Image.Image:
    """One photo of `shoe` (an RGB image size x size), varied by `rng`."""
    big = 4 * size                      # drawn large, then scaled down (smooth edges)
    grey = rng.randint(244, 252)
    img = Image.new("RGB", (big, big), (grey, grey, grey))
    d = ImageDraw.Draw(img)
    scale = big / 100 * rng.uniform(1.0, 1.1)
    dx, dy = big * rng.uniform(-0.03, 0.03), big * rng.uniform(-0.04, 0.04)

    def p(x, y):
        return (dx + big / 2 + (x - 52) * scale, dy + big / 2 + (y - 52) * scale)

    collar = {"High": 18, "Mid": 32, "Low": 46}[shoe.hightop]
    upper = _jitter(COLORS[shoe.color], rng, 8)
    outline = (40, 40, 40) if shoe.color != "Black" else (90, 90, 90)
    line = max(1, big // 120)
    top_front = p(38, collar + 10) if shoe.hightop != "Low" else p(40, 48)
    d.polygon([p(12, 72), p(11, collar + 6), p(14, collar), p(34, collar), top_front, p(58, 50), p(78, 56),
               p(90, 62), p(93, 72)], fill=upper, outline=outline, width=line)
    d.rounded_rectangle([p(9, 71), p(95, 81)], radius=int(3 * scale), fill=_jitter(SOLES[shoe.sole], rng, 10),
                        outline=outline, width=max(1, big // 160))
    mark = _mark_color(shoe.color)
    for i in range(4):                  # laces
        x = 40 + i * 7 - (0 if shoe.hightop == "Low" else 4)
        y = (collar + 12 if shoe.hightop != "Low" else 50) + i * 2
        d.line([p(x, y), p(x + 4, y + 3)], fill=mark, width=max(1, big // 90))
    _brand_mark(d, p, shoe, collar, mark, max(2, big // 60))
    img = img.resize((size, size), Image.LANCZOS)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def _brand_mark(d: ImageDraw.ImageDraw, p, shoe: DemoShoe, collar: int, mark, width: int) -> None:
    brand = shoe.brand
    if brand == "Nike":               # a swoosh
        ts = [i / 20 for i in range(21)]
        top = [p(30 + t * 55, 66 - 14 * math.sin(t * 2.6) * t) for t in ts]
        bottom = [p(30 + t * 55, 68 - 10 * math.sin(t * 2.6) * t) for t in reversed(ts)]
        d.polygon(top + bottom, fill=mark)
    elif brand == "Adidas":           # three stripes
        for k in range(3):
            x = 40 + k * 7
            d.polygon([p(x, 69), p(x + 4, 69), p(x + 12, 52), p(x + 8, 52)], fill=mark)
    elif brand == "Converse":         # a star patch at the ankle
        cx, cy, r = 20, (collar + 14 if shoe.hightop != "Low" else 58), 7
        d.ellipse([p(cx - r, cy - r), p(cx + r, cy + r)], fill=(250, 250, 250), outline=(20, 20, 20),
                  width=width // 2 + 1)
        star = [p(cx + (5 if i % 2 == 0 else 2) * math.sin(i * math.pi / 5),
                  cy - (5 if i % 2 == 0 else 2) * math.cos(i * math.pi / 5)) for i in range(10)]
        d.polygon(star, fill=(30, 30, 120))
    elif brand == "New Balance":      # a big N
        x0, y0, h = 44, 54, 14
        d.polygon([p(x0, y0 + h), p(x0, y0), p(x0 + 3, y0), p(x0 + 10, y0 + h - 4), p(x0 + 10, y0), p(x0 + 13, y0),
                   p(x0 + 13, y0 + h), p(x0 + 10, y0 + h), p(x0 + 3, y0 + 4), p(x0 + 3, y0 + h)], fill=mark)
    elif brand == "Vans":             # a wave stripe
        d.line([p(22 + t * 60, 64 - 6 * math.sin(t * 6.3)) for t in [i / 30 for i in range(31)]], fill=mark,
               width=3 * width)
    elif brand == "Puma":             # a formstrip sweeping up to the heel
        d.polygon([p(62, 68), p(56, 68), p(30, 52), p(24, 56), p(22, 50), p(32, 46)], fill=mark)
