"""A small labeled catalog for the inference tests: shoes that share some attributes and differ in others."""
from __future__ import annotations

from pathlib import Path

from tests.helpers import make_photo

RGB = {"Red": (200, 30, 30), "Blue": (30, 40, 200), "Black": (20, 20, 20), "White": (235, 235, 235)}
SHOES = [("Nike", "High", "Red", "Air Test Red"), ("Nike", "Low", "Blue", "Dunk Test Blue"),
         ("Nike", "High", "Blue", "Air Test Blue"), ("Nike", "Low", "Red", "Dunk Test Red"),
         ("Vans", "Low", "Black", "Old Test Black"), ("Vans", "Low", "Red", "Era Test Red"),
         ("Converse", "High", "White", "Chuck Test White"), ("Converse", "Low", "White", "Chuck Low White"),
         ("Adidas", "Low", "Red", "Samba Test Red")]


def shoe_folder(brand, top, color, name) -> str:
    return f"{brand}_{top}_{color}_Plain Sole_{name}"


def make_catalog_dataset(root: Path, photos_per_shoe: int = 2) -> Path:
    for i, (brand, top, color, name) in enumerate(SHOES):
        for j in range(photos_per_shoe):
            make_photo(root / shoe_folder(brand, top, color, name) / f"photo {j}.jpg", color=RGB[color],
                       seed=i * 10 + j)
    return root


def catalog_photo(root: Path, name: str, j: int = 0) -> Path:
    brand, top, color, _ = next(s for s in SHOES if s[3] == name)
    return root / shoe_folder(brand, top, color, name) / f"photo {j}.jpg"
