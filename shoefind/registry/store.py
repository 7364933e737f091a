"""The registry's files: the dataset's configuration, its models, the pointer to the current one.

Everything is plain files under DATA_DIR/registry/<dataset>/ (see the package docstring), written so
that a process killed at any point leaves the current model as it was:
- a new model is written into a hidden folder and renamed into models/<id>/ only when complete;
- the pointer (current.json) is replaced atomically (write, fsync, rename), only after that;
- one retraining or promotion at a time (a file lock the kernel drops when its holder dies).
Half-written folders of a killed run are removed the next time the lock is taken.

Every JSON file carries a checksum of its own content, so a file edited by hand is told apart from
one shoefind wrote: reading it is one clear error naming the file, and nothing is changed or lost
(`shoefind model promote ID` writes the pointer again).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from shoefind.errors import UserError

REGISTRY_FORMAT = "shoefind-registry"
MODEL_FORMAT = "shoefind-registry-model"
POINTER_FORMAT = "shoefind-registry-current"
VERSION = 1
MODEL_ID = re.compile(r"^m\d{4,}$")


class RegistryError(UserError):
    """A registry file that cannot be used as it is (edited by hand, torn, from a newer shoefind)."""


class RegistryBusy(UserError):
    """Another process is retraining or promoting on this registry."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def registry_dir(data_dir: str | os.PathLike, dataset: str | os.PathLike) -> Path:
    """DATA_DIR/registry/<dataset folder name> (as tables/ and learned/ name a dataset)."""
    from shoefind.settings import DataLayout
    return DataLayout(Path(data_dir)).registry_dir(dataset)


def checksum(obj: dict) -> str:
    """sha256 of a JSON object's content, without its own checksum field."""
    body = {k: v for k, v in obj.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def write_json(path: Path, obj: dict) -> dict:
    """Write obj (with its checksum) atomically: a crash leaves the old file or the new one."""
    obj = {k: v for k, v in obj.items() if k != "checksum"}
    obj["checksum"] = checksum(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, indent=2, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return obj


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path, kind: str, fix: str) -> dict:
    """A JSON file shoefind wrote, checked: format, version and checksum. fix: what to do when not."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path} is missing: {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{path} cannot be read as JSON ({str(exc).splitlines()[0]}): was it edited by hand? "
                            f"{fix}") from None
    if not isinstance(obj, dict) or obj.get("format") != kind:
        raise RegistryError(f"{path} is not a {kind} file: {fix}")
    if int(obj.get("version", 0) or 0) > VERSION:
        raise RegistryError(f"{path} was written by a newer shoefind (version {obj.get('version')}): upgrade shoefind")
    if obj.get("checksum") != checksum(obj):
        raise RegistryError(f"{path} was changed outside shoefind (its checksum does not match its content): "
                            f"restore it, or {fix}")
    return obj


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class ModelRegistry:
    """The registry of one dataset (see the module docstring). Nothing is written on open."""

    def __init__(self, data_dir: str | os.PathLike, dataset: str | os.PathLike):
        self.data_dir = Path(data_dir)
        self.dataset = Path(dataset).resolve()
        self.root = registry_dir(data_dir, dataset)

    # --- paths ------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "registry.json"

    @property
    def pointer_path(self) -> Path:
        return self.root / "current.json"

    @property
    def heldout_path(self) -> Path:
        return self.root / "heldout.csv"

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def model_dir(self, model_id: str) -> Path:
        if not MODEL_ID.match(str(model_id)):
            raise UserError(f"'{model_id}' is not a model id (they look like m0003: see `shoefind models`)")
        return self.models_dir / model_id

    # --- the dataset's configuration ------------------------------------------------------------
    @property
    def registered(self) -> bool:
        return self.config_path.exists()

    def config(self) -> dict:
        config = read_json(self.config_path, REGISTRY_FORMAT,
                           f"move {self.root} aside to register the dataset again (its models stay there)")
        heldout = config.get("heldout", {})
        if not self.heldout_path.is_file() or file_sha256(self.heldout_path) != heldout.get("sha256"):
            raise RegistryError(f"{self.heldout_path} is missing or was changed outside shoefind: the held-out split is "
                                "fixed when a dataset is registered, so scores before and after would not compare. "
                                f"Restore it, or move {self.root} aside to register the dataset again")
        return config

    def write_config(self, config: dict) -> dict:
        return write_json(self.config_path, {"format": REGISTRY_FORMAT, "version": VERSION} | config)

    # --- models -----------------------------------------------------------------------------------
    def model_ids(self) -> list[str]:
        if not self.models_dir.is_dir():
            return []
        return sorted((p.name for p in self.models_dir.iterdir() if p.is_dir() and MODEL_ID.match(p.name)),
                      key=lambda m: int(m[1:]))

    def manifest(self, model_id: str) -> dict:
        folder = self.model_dir(model_id)
        if not folder.is_dir():
            raise UserError(f"no model {model_id} in {self.models_dir} (see `shoefind models`)")
        manifest = read_json(folder / "manifest.json", MODEL_FORMAT,
                             f"promote another model (`shoefind model promote ID`); {folder} is left as it is")
        for name, digest in manifest.get("files", {}).items():
            path = folder / name
            if not path.is_file() or file_sha256(path) != digest:
                raise RegistryError(f"{path} is missing or was changed after model {model_id} was written: promote "
                                    f"another model (`shoefind model promote ID`); {folder} is left as it is")
        return manifest

    def manifests(self) -> list[dict]:
        return [self.manifest(m) for m in self.model_ids()]

    @contextlib.contextmanager
    def new_model(self) -> Iterator[tuple[str, Path]]:
        """(id, hidden folder) to write a model into; renamed to models/<id> when the block ends
        without an error (an error or a kill leaves nothing under models/<id>). Hold `lock()`."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        ids = self.model_ids()
        model_id = f"m{(int(ids[-1][1:]) + 1) if ids else 1:04d}"
        tmp = self.models_dir / f".{model_id}.{os.getpid()}.part"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield model_id, tmp
            for path in tmp.iterdir():
                with open(path, "rb+") as fh:
                    os.fsync(fh.fileno())
            os.rename(tmp, self.models_dir / model_id)
            _fsync_dir(self.models_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # --- which one is current ----------------------------------------------------------------------
    def pointer(self) -> dict | None:
        """current.json, checked (None before the first promotion)."""
        if not self.pointer_path.exists():
            return None
        pointer = read_json(self.pointer_path, POINTER_FORMAT,
                            "choose the current model again with `shoefind model promote ID`")
        current = pointer.get("current")
        if not isinstance(current, str) or not MODEL_ID.match(current) or not self.model_dir(current).is_dir():
            raise RegistryError(f"{self.pointer_path} names model {current!r}, which is not in {self.models_dir}: "
                                "choose the current model again with `shoefind model promote ID`")
        return pointer

    def current_id(self) -> str | None:
        pointer = self.pointer()
        return pointer["current"] if pointer else None

    def current(self) -> dict | None:
        """The current model's manifest (None when no model was promoted yet)."""
        model_id = self.current_id()
        return self.manifest(model_id) if model_id else None

    def set_current(self, model_id: str, event: str, stack: list[str], detail: dict | None = None) -> dict:
        """Point at model_id (its manifest checked first); the event is logged."""
        self.manifest(model_id)
        pointer = write_json(self.pointer_path, {"format": POINTER_FORMAT, "version": VERSION, "current": model_id,
                                                 "stack": stack, "changed": now(), "event": event})
        self.log({"event": event, "model": model_id} | (detail or {}))
        return pointer

    def promote(self, model_id: str, event: str = "promoted", detail: dict | None = None) -> dict:
        """Make model_id current (by hand or after a comparison); rollback goes back to the one before."""
        stack = self._stack_for_change()
        if stack and stack[-1] == model_id:
            raise UserError(f"model {model_id} is already the current model")
        return self.set_current(model_id, event, [m for m in stack if m != model_id] + [model_id], detail)

    def rollback(self) -> tuple[str, str]:
        """Back to the model that was current before the current one: (from, to)."""
        pointer = self.pointer()
        if pointer is None:
            raise UserError("no model has been promoted yet: there is nothing to roll back")
        stack = [m for m in pointer.get("stack", []) if self.model_dir(m).is_dir()]
        if len(stack) < 2:
            raise UserError(f"model {pointer['current']} is the first model promoted: there is no earlier one to "
                            "roll back to (`shoefind model promote ID` picks any model)")
        self.set_current(stack[-2], "rolled back", stack[:-1], {"from": stack[-1]})
        return stack[-1], stack[-2]

    def _stack_for_change(self) -> list[str]:
        """The promotion stack, or a fresh one when the pointer itself is broken (promoting repairs it)."""
        try:
            pointer = self.pointer()
        except RegistryError:
            return []
        return list(pointer.get("stack", [])) if pointer else []

    # --- the log --------------------------------------------------------------------------------
    def log(self, record: dict) -> None:
        """One line per event, appended in one write (a crash tears at most the last line)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = (json.dumps({"time": now()} | record, sort_keys=True, default=str) + "\n").encode()
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def events(self) -> list[dict]:
        if not self.events_path.is_file():
            return []
        out = []
        for line in self.events_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    # --- one writer at a time ---------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held while retraining or changing the current model; half-written models of a killed run
        are removed once it is taken."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "registry.lock", "a+b") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RegistryBusy(f"another process is retraining or promoting a model of {self.dataset} "
                                   f"(lock {self.root / 'registry.lock'}); wait for it to finish") from None
            if self.models_dir.is_dir():
                for stale in self.models_dir.glob(".m*.part"):
                    shutil.rmtree(stale, ignore_errors=True)
            yield
