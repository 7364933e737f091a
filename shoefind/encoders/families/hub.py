"""Offline-first access to the Hugging Face cache: find a repo's files locally, never fetch unless allowed.

open_clip's `hf-hub:` models, its pretrained tags and transformers models all live in the
Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). Loading
reads that cache only; with `--download` / SHOEFIND_DOWNLOAD=1 a missing repo is fetched.
While a model loads, HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set (unless downloading is
allowed) so no library underneath tries the network on its own.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from shoefind.encoders.base import ModelUnavailable
from shoefind.settings import current

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def download_allowed() -> bool:
    return current().download


def hub_cache() -> Path:
    """Where huggingface_hub keeps repos (respects HF_HUB_CACHE and HF_HOME)."""
    return current().hf_hub_cache


@contextlib.contextmanager
def hub_mode(download: bool | None = None):
    """Offline (unless downloading is allowed) for the libraries' own hub calls inside the block."""
    download = download_allowed() if download is None else download
    saved = {k: os.environ.get(k) for k in OFFLINE_VARS}
    patched = []
    if not download:
        for k in OFFLINE_VARS:
            os.environ[k] = "1"
        # huggingface_hub reads HF_HUB_OFFLINE once at import; when it is already imported, say it there too
        import sys
        for mod_name, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"),):
            mod = sys.modules.get(mod_name)
            if mod is not None and hasattr(mod, attr):
                patched.append((mod, attr, getattr(mod, attr)))
                setattr(mod, attr, True)
    try:
        yield download
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for mod, attr, value in patched:
            setattr(mod, attr, value)


def hub_command(repo: str, files: list[str] | None = None) -> str:
    pattern = "".join(f" --include '{f}'" for f in files or [])
    return f"hf download {repo}{pattern}"


def missing_repo_message(spec: str, repo: str, files: list[str], local_dir_hint: str) -> str:
    """The one paragraph a user needs when a hub repo is not in the local cache."""
    cache = hub_cache() / ("models--" + repo.replace("/", "--"))
    return (
        f"Model {spec} is not on this machine: shoefind loads models only from local caches and found no "
        f"{', '.join(files)} for the Hugging Face repo {repo} under {cache}. On a machine with internet, run "
        f"`pip install huggingface_hub && {hub_command(repo)}` (it fills ~/.cache/huggingface/hub; set HF_HOME "
        f"to put it elsewhere), then copy the folder models--{repo.replace('/', '--')} into {hub_cache()} here "
        f"- or run `hf download {repo} --local-dir DIR`, copy DIR over and pass --model {local_dir_hint}DIR. "
        "To let shoefind fetch it itself on a connected machine, add --download (or set SHOEFIND_DOWNLOAD=1)."
    )


def local_snapshot(repo: str, spec: str, files: list[str], local_dir_hint: str = "") -> Path:
    """The cached snapshot folder of `repo` (fetched first when downloading is allowed)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise ModelUnavailable(f"{spec} needs the package huggingface_hub (with open-clip-torch / transformers): "
                               "pip install -r requirements.txt (or pip install 'shoefind[families]')") from exc
    with hub_mode() as download:
        try:
            return Path(snapshot_download(repo, local_files_only=not download))
        except Exception as exc:  # LocalEntryNotFoundError, offline errors, HTTP errors: all mean "not here"
            raise ModelUnavailable(missing_repo_message(spec, repo, files, local_dir_hint)) from exc


def cached_file(repo: str, filename: str) -> Path | None:
    """One file of a cached repo, or None (never touches the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # the families extra is not installed: nothing of the hub can be here
        return None
    found = try_to_load_from_cache(repo, filename, cache_dir=str(hub_cache()))
    return Path(found) if isinstance(found, str) else None


def snapshot_is_cached(repo: str, filename: str = "config.json") -> bool:
    return cached_file(repo, filename) is not None
