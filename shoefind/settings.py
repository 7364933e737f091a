"""Settings read once: where the rules, the working data and the model come from.

`Settings.from_env()` reads every environment variable shoefind uses (ENV_VARS), in one place, and
checks it: a value it cannot use is one line naming the variable. No other module reads the
environment (tests/unit/test_settings.py greps for it). `DataLayout` names every path under the
working data folder, so no surface rebuilds `data/images` or `data/embeddings/...` by hand.

The working data folder: --data-dir, else $SHOEFIND_DATA, else `data/` of the checkout when
shoefind runs from one (the folder holding prefect.yaml), else the user data folder
($XDG_DATA_HOME/shoefind, i.e. ~/.local/share/shoefind). It never depends on the current
directory.
"""
from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from shoefind.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent
# A checkout has prefect.yaml next to the package; an installed wheel has not.
REPO_ROOT = PACKAGE_DIR.parent
IN_CHECKOUT = (REPO_ROOT / "prefect.yaml").is_file() and (REPO_ROOT / "rules").is_dir()
DEFAULT_MODEL = "ViT-B/32"


def _default_rules_dir() -> Path:
    return REPO_ROOT / "rules" if IN_CHECKOUT else PACKAGE_DIR / "rules"


def _default_data_dir(env) -> Path:
    if IN_CHECKOUT:
        return REPO_ROOT / "data"
    base = env.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(base).expanduser() / "shoefind"


def _path(value: str | os.PathLike) -> Path:
    return Path(value).expanduser().resolve()


# Every environment variable shoefind reads, and only here (tests/unit/test_settings.py keeps it so).
ENV_VARS = ("SHOEFIND_DATA", "SHOEFIND_RULES", "SHOEFIND_MODEL", "SHOEFIND_RUNTIME", "SHOEFIND_DEVICE",
            "SHOEFIND_CLIP_CACHE", "SHOEFIND_OFFLINE", "SHOEFIND_DOWNLOAD", "SHOEFIND_CHROMIUM",
            "SHOEFIND_CHROMEDRIVER", "SHOEFIND_ANN_THRESHOLD", "SHOEFIND_BF16", "SHOEFIND_WEB_DATASET",
            "XDG_DATA_HOME", "HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "PREFECT_API_URL")
# The choices of --runtime and --device (shoefind.encoders.runtimes keeps the same lists; a test checks).
RUNTIMES = ("auto", "torch", "bf16", "fp16", "onnx", "onnx-int8")
DEVICES = ("auto", "cpu", "cuda")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class SettingsError(UserError):
    """An environment variable with a value shoefind cannot use: one line naming it."""


def _bad(name: str, value: str, expected: str) -> SettingsError:
    return SettingsError(f"environment variable {name}={value!r} is not valid: {expected} (fix or unset it)")


def _flag(env, name: str) -> bool:
    value = (env.get(name) or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _bad(name, env.get(name), "expected 1/0, true/false or yes/no")


def _choice(env, name: str, choices: tuple, extra: str = "") -> str:
    value = (env.get(name) or "auto").strip().lower()
    if value in choices or (extra and value.startswith(extra) and value[len(extra):].isdigit()):
        return value
    raise _bad(name, env.get(name), f"choose one of {', '.join(choices)}" + (f" ({extra}N too)" if extra else ""))


def _count(env, name: str, what: str) -> int | None:
    value = (env.get(name) or "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise _bad(name, env.get(name), f"expected a whole number of {what}, 1 or more")
    return number


def _tristate(env, name: str) -> bool | None:
    """A flag that may be left unset (None: shoefind decides)."""
    return _flag(env, name) if (env.get(name) or "").strip() else None


def _url(env, name: str) -> str | None:
    value = (env.get(name) or "").strip()
    if value and not value.lower().startswith(("http://", "https://")):
        raise _bad(name, env.get(name), "expected an http:// or https:// URL, e.g. http://127.0.0.1:4200/api")
    return value or None


def _hub_cache(env) -> Path:
    """Where huggingface_hub keeps repos: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved once (environment first, then options via `with_options`)."""

    data_dir: Path
    rules_dir: Path
    model: str = DEFAULT_MODEL
    runtime: str = "auto"
    device: str = "auto"
    clip_cache: Path = Path("~/.cache/clip").expanduser()
    download: bool = False      # may model weights be fetched at load time? (--download / SHOEFIND_DOWNLOAD=1)
    chromium: str | None = None         # the crawler's browser and driver, when not the Debian ones
    chromedriver: str | None = None
    ann_threshold: int | None = None    # photos from which a catalog uses the approximate index (None: default)
    bf16: bool | None = None            # bf16 autocast forced on or off (None: measured per machine)
    web_dataset: Path | None = None     # the catalog of `shoefind web` (None: DATA/images)
    hf_hub_cache: Path = Path("~/.cache/huggingface/hub").expanduser()
    prefect_api_url: str | None = None  # a Prefect API to run the stages on (None: in this process)

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        """The settings of this environment; a value shoefind cannot use is a SettingsError naming it."""
        env = os.environ if env is None else env
        offline = _flag(env, "SHOEFIND_OFFLINE")
        return cls(
            data_dir=_path(env.get("SHOEFIND_DATA") or _default_data_dir(env)),
            rules_dir=_path(env.get("SHOEFIND_RULES") or _default_rules_dir()),
            model=env.get("SHOEFIND_MODEL") or DEFAULT_MODEL,
            runtime=_choice(env, "SHOEFIND_RUNTIME", RUNTIMES),
            device=_choice(env, "SHOEFIND_DEVICE", DEVICES, extra="cuda:"),
            clip_cache=_path(env.get("SHOEFIND_CLIP_CACHE") or "~/.cache/clip"),
            # SHOEFIND_OFFLINE=1 wins over SHOEFIND_DOWNLOAD (tests set it to be sure nothing is fetched)
            download=_flag(env, "SHOEFIND_DOWNLOAD") and not offline,
            chromium=env.get("SHOEFIND_CHROMIUM") or None,
            chromedriver=env.get("SHOEFIND_CHROMEDRIVER") or None,
            ann_threshold=_count(env, "SHOEFIND_ANN_THRESHOLD", "photos"),
            bf16=_tristate(env, "SHOEFIND_BF16"),
            web_dataset=_path(env["SHOEFIND_WEB_DATASET"]) if env.get("SHOEFIND_WEB_DATASET") else None,
            hf_hub_cache=_hub_cache(env),
            prefect_api_url=_url(env, "PREFECT_API_URL"),
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
    def crawl(self) -> Path:
        """The crawl manifests, one per dataset folder."""
        return self.root / "crawl"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    def table_dir(self, dataset: str | os.PathLike) -> Path:
        """The feature table of a dataset folder: tables/<folder name>."""
        return self.tables / Path(dataset).resolve().name

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def fidelity(self) -> Path:
        """The fidelity records of approximate runtimes, one file per model."""
        return self.embeddings / "fidelity"

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
    def onnx_exports(self) -> Path:
        """ONNX exports of weights whose own folder is not writable."""
        return self.models / "onnx"

    @property
    def demo(self) -> Path:
        """The demo catalog and model, unless another folder is given."""
        return self.root / "demo"

    @property
    def filter_dir(self) -> Path:
        return self.root / "filter"

    @property
    def filter_queue(self) -> Path:
        return self.filter_dir / "queue.sqlite"

    @property
    def registries(self) -> Path:
        return self.root / "registry"

    def registry_dir(self, dataset: str | os.PathLike) -> Path:
        """A dataset's model registry: registry/<dataset folder name> (as tables/ and learned/ name it)."""
        return self.registries / (folder_name(Path(dataset).resolve().name) or "dataset")

    def learned_dir(self, model_id: str, dataset: str | os.PathLike) -> Path:
        """The classifiers `learn` saved for one model and dataset folder."""
        return self.learned / folder_name(model_id) / folder_name(Path(dataset).name)

    def dataset(self, given: str | os.PathLike | None = None) -> Path:
        """The dataset a command works on: the one given, else the accepted images."""
        return _path(given) if given else self.images


def folder_name(text: str) -> str:
    """A name that stays one folder: runs of other characters become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


_CURRENT: tuple[tuple, Settings] | None = None
_DATA_DIR_GIVEN: Path | None = None   # a command's --data-dir, while it runs (see using_data_dir)


def _env_snapshot() -> tuple:
    return tuple(os.environ.get(k) for k in ENV_VARS)


def current() -> Settings:
    """The process's settings, read from the environment once (again only if it changed); a bad value
    is a SettingsError (one line naming the variable)."""
    global _CURRENT
    snap = _env_snapshot()
    if _CURRENT is None or _CURRENT[0] != snap:
        _CURRENT = (snap, Settings.from_env())
    return replace(_CURRENT[1], data_dir=_DATA_DIR_GIVEN) if _DATA_DIR_GIVEN else _CURRENT[1]


@contextlib.contextmanager
def using_data_dir(given: str | os.PathLike | None):
    """Within the block the settings' data folder is `given` (a command's --data-dir, a flow's data_dir), so
    what is found through the settings rather than handed the folder (the fidelity record of a runtime,
    ONNX exports) lands there too. None changes nothing. One folder per process at a time: the CLI runs
    one command, a deployment run has its own process."""
    global _DATA_DIR_GIVEN
    previous = _DATA_DIR_GIVEN
    if given:
        _DATA_DIR_GIVEN = _path(given)
    try:
        yield
    finally:
        _DATA_DIR_GIVEN = previous


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
