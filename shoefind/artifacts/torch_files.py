"""Reading torch files: weights only, never code, and every failure said in one line.

torch.load(weights_only=True) refuses a pickle that asks to call a function (os.system, ...), but its
message advises loading the file again with weights_only=False, which would run that code. Loaders call
`load_torch_file`, or hand a third-party loader's exception (transformers, open_clip) to `refusal`, so
the user reads shoefind's own line instead:
- a file whose pickle names a callable: CodeCarryingFile, naming it;
- a truncated, edited or foreign file: DamagedFile.
Both are UserErrors (the CLI's one `error:` line, exit code 2).
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

from shoefind.errors import PathNotFound, UserError


class CodeCarryingFile(UserError):
    """A model file that would run code when loaded."""


class DamagedFile(UserError):
    """A stored model file that cannot be read whole (truncated, edited, not what it claims to be)."""


# torch's WeightsUnpickler names what it refused: "Trying to load unsupported GLOBAL posix.system ..."
_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)")


def _unpickling_error(exc: BaseException | None) -> BaseException | None:
    """The UnpicklingError behind `exc` (a loader may wrap it), else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, pickle.UnpicklingError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def short_reason(exc: BaseException) -> str:
    """The first sentence of an exception's message, never torch's weights_only advice."""
    text = " ".join(str(exc).split())
    if "weights_only" in text or not text:
        return type(exc).__name__
    first = text.split(". ")[0].rstrip(".")
    return first[:200]


def refusal(exc: BaseException, path: str | os.PathLike, what: str) -> UserError | None:
    """shoefind's one line for a load that failed on the file's pickle (None: some other failure)."""
    err = _unpickling_error(exc)
    if err is None:
        return None
    found = _GLOBAL.search(str(err))
    if found:
        return CodeCarryingFile(
            f"{path} is not a plain {what}: loading it would call {found.group(1)}, i.e. run code stored in "
            "the file. shoefind never runs such files; use one written by shoefind or by the model's publisher.")
    return DamagedFile(f"{path} is not a {what} shoefind can read: it is damaged or not a torch weights file")


def load_torch_file(path: str | os.PathLike, what: str):
    """torch.load(path) as weights only (tensors, dicts, lists, numbers, strings), on the CPU."""
    import torch
    path = Path(path)
    if not path.is_file():
        raise PathNotFound(f"{path}: no such {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # torch raises many kinds for a file that is not a checkpoint
        refused = refusal(exc, path, what)
        if refused is not None:
            raise refused from None
        raise DamagedFile(f"{path} cannot be read as a {what} (truncated or damaged: {short_reason(exc)})") from None
