"""Where things live: the repository's rules/, the data directory, model selection."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = Path(os.environ.get("SHOEFIND_RULES", REPO_ROOT / "rules"))
DEFAULT_MODEL = "ViT-B/32"


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The working dataset folder: argument, then $SHOEFIND_DATA, then ./data."""
    return Path(override or os.environ.get("SHOEFIND_DATA") or "data").expanduser().resolve()


def model_spec(override: str | None = None) -> str:
    """A CLIP model name or checkpoint path: argument, then $SHOEFIND_MODEL, then ViT-B/32."""
    return override or os.environ.get("SHOEFIND_MODEL") or DEFAULT_MODEL


def load_rules(name: str) -> dict:
    """Read rules/<name>.yaml."""
    path = RULES_DIR / f"{name}.yaml"
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}
