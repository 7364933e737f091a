"""Settings read once: where the rules, the working data and the model come from.

`Settings.from_env()` reads every SHOEFIND_* variable in one place; options override it with
`replace`. `DataLayout` names every path under the working data folder, so no surface
rebuilds `data/images` or `data/inbox` by hand.

The working data folder: --data-dir, else $SHOEFIND_DATA, else `data/` of the checkout when
shoefind runs from one (the folder holding prefect.yaml), else the user data folder
($XDG_DATA_HOME/shoefind, i.e. ~/.local/share/shoefind). It never depends on the current
directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

PACKAGE_DIR = Path(__file__).resolve().parent
# A checkout has prefect.yaml next to the package; an installed wheel has not.
REPO_ROOT = PACKAGE_DIR.parent
IN_CHECKOUT = (REPO_ROOT / "prefect.yaml").is_file() and (REPO_ROOT / "rules").is_dir()
DEFAULT_MODEL = "ViT-B/32"


def _default_rules_dir() -> Path:
    return REPO_ROOT / "rules" if IN_CHECKOUT else PACKAGE_DIR / "rules"


def _default_data_dir() -> Path:
    if IN_CHECKOUT:
        return REPO_ROOT / "data"
    base = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(base).expanduser() / "shoefind"


def _path(value: str | os.PathLike) -> Path:
    return Path(value).expanduser().resolve()


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved once (environment first, then options via `with_options`)."""

    data_dir: Path
    rules_dir: Path
    model: str = DEFAULT_MODEL
    runtime: str = "auto"
    device: str = "auto"
    clip_cache: Path = Path("~/.cache/clip").expanduser()
    offline: bool = False
    download: bool = False      # may model weights be fetched at load time? (--download / SHOEFIND_DOWNLOAD=1)
    chromium: str | None = None
    chromedriver: str | None = None

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            data_dir=_path(env.get("SHOEFIND_DATA") or _default_data_dir()),
            rules_dir=_path(env.get("SHOEFIND_RULES") or _default_rules_dir()),
            model=env.get("SHOEFIND_MODEL") or DEFAULT_MODEL,
            runtime=(env.get("SHOEFIND_RUNTIME") or "auto").lower(),
            device=(env.get("SHOEFIND_DEVICE") or "auto").lower(),
            clip_cache=_path(env.get("SHOEFIND_CLIP_CACHE") or "~/.cache/clip"),
            offline=bool(env.get("SHOEFIND_OFFLINE")),
            download=env.get("SHOEFIND_DOWNLOAD", "").lower() in ("1", "true", "yes") and not env.get("SHOEFIND_OFFLINE"),
            chromium=env.get("SHOEFIND_CHROMIUM") or None,
            chromedriver=env.get("SHOEFIND_CHROMEDRIVER") or None,
        )

    def with_options(self, **options) -> "Settings":
        """These settings with every option that was given (None means 'not given')."""
        given = {k: v for k, v in options.items() if v is not None}
        if "data_dir" in given:
            given["data_dir"] = _path(given["data_dir"])
        return replace(self, **given)

    @property
    def layout(self) -> "DataLayout":
        return DataLayout(self.data_dir)


@dataclass(frozen=True)
class DataLayout:
    """Every path under the working data folder (see data/README.md)."""

    root: Path

    @property
    def images(self) -> Path:
        """The accepted, labeled photos: one folder per shoe."""
        return self.root / "images"

    @property
    def inbox(self) -> Path:
        """Crawled images waiting for the filter."""
        return self.root / "inbox"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def learned(self) -> Path:
        return self.root / "learned"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def filter_dir(self) -> Path:
        return self.root / "filter"

    @property
    def filter_queue(self) -> Path:
        return self.filter_dir / "queue.sqlite"

    def dataset(self, given: str | os.PathLike | None = None) -> Path:
        """The dataset a command works on: the one given, else the accepted images."""
        return _path(given) if given else self.images


_CURRENT: tuple[tuple, Settings] | None = None


def _env_snapshot() -> tuple:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("SHOEFIND_") or k == "XDG_DATA_HOME"))


def current() -> Settings:
    """The process's settings, read from the environment once (again only if it changed)."""
    global _CURRENT
    snap = _env_snapshot()
    if _CURRENT is None or _CURRENT[0] != snap:
        _CURRENT = (snap, Settings.from_env())
    return _CURRENT[1]


# Compatibility helpers used across the library.
def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The working data folder: the argument, else the settings' (see module docstring)."""
    return _path(override) if override else current().data_dir


def layout(override: str | os.PathLike | None = None) -> DataLayout:
    return DataLayout(data_dir(override))


def rules_dir() -> Path:
    return current().rules_dir


def load_rules(name: str) -> dict:
    """Read rules/<name>.yaml, checked against its schema (shoefind.rules_schema): a mistake
    is a RulesError naming the file, the key and the line."""
    from shoefind.rules_schema import RulesError, parse_rules
    path = rules_dir() / f"{name}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"rules file {path} does not exist (SHOEFIND_RULES points at {rules_dir()})") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise RulesError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    return parse_rules(path, text, name)
