"""The manifest of a model's ONNX exports (meta.json) and the checks an export passes before it is used.

meta.json, written last in the export folder, ties the folder to the weights it was made from and to
its files:

    {"export_version": 2, "weights_sha256": "<the weights file's sha256>",
     "input_resolution": 224, "embed_dim": 512, "logit_scale": 100.0, "context_length": 77,
     "files": {"image.onnx": "<sha256>", "text.onnx": "...", "image-int8r.onnx": "...", ...},
     "suspect_embeddings": {"<cache key>": <time in ns>}}      (only after a foreign graph was replaced)

Each graph carries the same facts in its own metadata (`shoefind.*` properties stamped at export), so
what meta.json says is judged against the export itself, never taken on trust:
- every number is present, of its type and in its range (a logit scale above CLIP's cap of 100 would
  turn every answer into a certainty; a context of 5 tokens would cut every prompt);
- the weights' sha256 is the weights file's;
- each graph's sha256 is the one the manifest records (another model's graph dropped in is not);
- each graph's stamp names the same weights, tower and numbers, and its input and output shapes agree.
An export that fails is never used: ExportProblem says why in one line; the torch-free load steps aside
and the full load exports what failed again (shoefind.encoders.runtimes.onnx_runtime).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from shoefind.encoders.runtimes.onnx_files import EXPORT_VERSION, read_meta, tower_path, weights_sha256

STAMP = "shoefind."
# name -> (type, lowest, highest): wide enough for every CLIP, narrow enough to refuse nonsense. CLIP
# clamps its logit scale to 100 in training (a hair of float rounding above it is the same 100).
NUMBERS = {"input_resolution": (int, 8, 4096), "embed_dim": (int, 1, 1 << 16),
           "context_length": (int, 2, 4096), "logit_scale": (float, 1.0, 100.0 * (1 + 1e-5))}
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ExportProblem(Exception):
    """Why an export cannot be used, in one line."""


def check_numbers(meta: dict, where: str = "meta.json") -> None:
    """ExportProblem naming the first number that is missing, of the wrong type or out of range."""
    for name, (kind, low, high) in NUMBERS.items():
        value = meta.get(name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or (kind is int and value != int(value)) or not low <= value <= high:
            raise ExportProblem(f"{where} says {name} {value!r} (expected {'an integer' if kind is int else 'a number'} "
                                f"from {low:g} to {high:g})")


def read_manifest(folder: Path, weights_sha: str) -> dict:
    """meta.json checked for itself: this export version, these weights, numbers in range, a sha256 per
    file; ExportProblem otherwise."""
    meta = read_meta(folder)
    if meta is None:
        raise ExportProblem(f"{folder / 'meta.json'} is missing, truncated or incomplete")
    if meta.get("export_version") != EXPORT_VERSION:
        raise ExportProblem(f"{folder / 'meta.json'} is for export version {meta.get('export_version')!r}")
    if meta.get("weights_sha256") != weights_sha:
        raise ExportProblem(f"{folder / 'meta.json'} does not name these weights (made by an older shoefind, "
                            "or for other weights)")
    check_numbers(meta, str(folder / "meta.json"))
    files = meta.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) and _SHA256.fullmatch(v) for v in files.values()):
        raise ExportProblem(f"{folder / 'meta.json'} lists no sha256 of its files")
    return meta


def suspect_embeddings(meta: dict) -> dict[str, int]:
    """meta.json's suspect_embeddings (cache key -> time in ns): what a foreign graph, replaced at that
    time, may have cached under that key ({} when none, or when the field is not such a map)."""
    found = meta.get("suspect_embeddings") if isinstance(meta, dict) else None
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)}


def facts(meta: dict) -> dict:
    """What an export is of: its version, the weights' sha256 and the numbers (from meta or the model)."""
    return {"export_version": EXPORT_VERSION, "weights_sha256": meta["weights_sha256"],
            **{name: (int(meta[name]) if kind is int else float(meta[name])) for name, (kind, _l, _h) in NUMBERS.items()}}


def stamp(truth: dict, tower: str, int8: bool) -> dict[str, str]:
    """The metadata a graph is stamped with at export."""
    props = {f"{STAMP}{k}": repr(v) if isinstance(v, float) else str(v) for k, v in facts(truth).items()}
    return props | {f"{STAMP}tower": tower, f"{STAMP}int8": "1" if int8 else "0"}


def check_file(path: Path, files: dict) -> str:
    """The file's sha256 when it is the one the manifest records; ExportProblem otherwise."""
    recorded = files.get(path.name)
    if recorded is None:
        raise ExportProblem(f"{path} is not in its manifest (made by an older shoefind, or dropped in)")
    try:
        actual = weights_sha256(path)   # hashed once per version of the file
    except OSError as exc:
        raise ExportProblem(f"{path} cannot be read ({exc.strerror or exc})") from None
    if actual != recorded:
        raise ExportProblem(f"{path} is not the file its manifest records (sha256 {actual[:12]}..., "
                            f"meta.json says {recorded[:12]}...)")
    return actual


def check_session(session, path: Path, truth: dict, tower: str, int8: bool) -> None:
    """ExportProblem unless the graph's stamp and shapes are those of `truth` (the model's facts)."""
    props = dict(session.get_modelmeta().custom_metadata_map)
    want = stamp(truth, tower, int8)
    if not any(k.startswith(STAMP) for k in props):
        raise ExportProblem(f"{path} carries no shoefind stamp (made by an older shoefind, or another program)")
    for key, value in want.items():
        have = props.get(key)
        same = have == value
        if not same and key == f"{STAMP}logit_scale":
            try:
                same = math.isclose(float(have), float(value), rel_tol=1e-6)
            except (TypeError, ValueError):
                same = False
        if not same:
            raise ExportProblem(f"{path} was made for {key[len(STAMP):]} {have!r}, not {value!r}")
    if len(session.get_inputs()) != 1 or len(session.get_outputs()) != 1:
        raise ExportProblem(f"{path} is not a tower graph (one input, one output)")
    (inputs,), (outputs,) = session.get_inputs(), session.get_outputs()
    if outputs.shape[-1] != truth["embed_dim"]:
        raise ExportProblem(f"{path} gives {outputs.shape[-1]}-d vectors, not {truth['embed_dim']}-d")
    if tower == "image" and list(inputs.shape[1:]) != [3, truth["input_resolution"], truth["input_resolution"]]:
        raise ExportProblem(f"{path} takes images of shape {inputs.shape[1:]}, not {truth['input_resolution']} pixels")


def verified_sessions(folder: Path, checkpoint: Path, int8: bool, open_session, threads: int | None):
    """(meta, image session, text session, {file: sha256}) of an export that passes every check above,
    for the torch-free load; ExportProblem otherwise."""
    meta = read_manifest(folder, weights_sha256(checkpoint))
    truth = facts(meta)
    sessions, digests = [], {}
    for tower in ("image", "text"):
        path = tower_path(folder, tower, int8)
        if not path.is_file():
            raise ExportProblem(f"{path} is missing")
        digests[path.name] = check_file(path, meta["files"])
        try:
            session = open_session(path, threads)
        except Exception as exc:   # ONNX Runtime's own errors: a damaged graph
            raise ExportProblem(f"{path} cannot be opened ({type(exc).__name__})") from None
        check_session(session, path, truth, tower, int8)
        sessions.append(session)
    return meta, sessions[0], sessions[1], digests
