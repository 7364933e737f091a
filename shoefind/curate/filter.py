"""The crawl filter: sort every new image of a folder into accepted, rejected or review.

Steps (each over batches of paths, so a Prefect flow can run them as tasks):
scan -> sha256 -> skip what the queue already knows -> automatic checks -> exact and near
duplicates (against the batch, the dataset and the pending queue) -> CLIP semantic check ->
triage by the dataset's current model, when one is given (model_verdicts.py) -> verdicts stored in
the review queue, copies placed under the data dir.
"""
from __future__ import annotations

import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

from shoefind.curate.crawl_checks import CrawlRules, ImageCheck, check_files, load_crawl_rules
from shoefind.curate.dedupe import HashedImage, exact_duplicates, group_near_duplicates, near_duplicate_pairs
from shoefind.images import is_image_name, sha256_file
from shoefind.walk import list_files
from shoefind.curate.model_verdicts import (AUTO_ACCEPT, CONTRADICTED, LISTED_FOR_SEVERAL, REOPENED, SETTLED_BY_MODEL,
                                            Triage, apply_verdict, asked_about, intended_shoes, listed_for_several,
                                            listed_text, settle_waiting)
from shoefind.curate.queue import ReviewQueue, from_hex
from shoefind.crawl.manifest import manifest_path
from shoefind.errors import PathNotFound


@dataclass(frozen=True)
class InboxFile:
    path: Path
    rel: str
    shoe: str  # the top folder under the inbox ('' for a loose file)


def scan_inbox(folder: str | os.PathLike) -> tuple[list[InboxFile], list[str]]:
    """Image files under folder (sorted) and the names skipped (not images, symbolic links,
    special files: each with why). Links are never followed, so no file from outside the
    folder is ever read or copied."""
    root = Path(folder).expanduser().resolve()
    if root.is_file():
        raise FileNotFoundError(f"{root} is a file, not a folder of images")
    if not root.is_dir():
        raise PathNotFound(f"folder {root} does not exist")
    files, skipped = [], []
    # hidden folders (.git, .cache) are not crawl output; a file named "..shoe..jpg" is
    listing = list_files(root, skip_hidden_folders=True)
    skipped += [f"{s.path.relative_to(root)} ({s.reason})" for s in listing.skipped]
    for p in listing.files:
        rel = p.relative_to(root)
        if not is_image_name(p):
            if not p.name.startswith("."):  # hidden: the crawler's .part files, .DS_Store
                skipped.append(str(rel))
            continue
        files.append(InboxFile(p, str(rel), rel.parts[0] if len(rel.parts) > 1 else ""))
    return files, skipped


def hash_files(paths: Sequence[str | os.PathLike]) -> list[str]:
    """sha256 of each file ('' for a file that cannot be read: it is reported by the checks)."""
    out = []
    for p in paths:
        try:
            out.append(sha256_file(p))
        except OSError:
            out.append("")
    return out


class BatchRunner(Protocol):
    """How the batched steps run: in this process, or as Prefect tasks (flows/filter.py)."""

    def hash(self, batches: list[list[str]]) -> list[list[str]]: ...
    def check(self, batches: list[list[str]], shas: list[list[str]]) -> list[list[ImageCheck]]: ...
    def semantic(self, batches: list[list[str]]) -> list[list[dict | None]]: ...


class LocalRunner:
    def __init__(self, rules: CrawlRules, checker=None, progress: Callable[[str, int], None] | None = None):
        self.rules, self.checker, self.progress = rules, checker, progress

    def _tick(self, step: str, n: int) -> None:
        if self.progress:
            self.progress(step, n)

    def hash(self, batches):
        out = []
        for b in batches:
            out.append(hash_files(b))
            self._tick("hash", len(b))
        return out

    def check(self, batches, shas):
        out = []
        for b, s in zip(batches, shas):
            out.append(check_files(b, self.rules, s))
            self._tick("check", len(b))
        return out

    def semantic(self, batches):
        out = []
        for b in batches:
            out.append(self.checker.scores(b))
            self._tick("semantic", len(b))
        return out


def batched(items: Sequence, size: int) -> list[list]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _flat(batches: list[list]) -> list:
    return [x for b in batches for x in b]


@dataclass
class FilterResult:
    summary: dict
    verdicts: list[dict] = field(default_factory=list)


def _existing_images(queue: ReviewQueue, rules: CrawlRules) -> list[HashedImage]:
    """The dataset and the pending queue, as duplicate candidates for new images."""
    existing = []
    for h in queue.dataset_hashes(lambda paths: check_files(paths, rules)):
        existing.append(HashedImage(h["sha256"], from_hex(h["phash"]), from_hex(h["dhash"]), h["pixels"] or 0,
                                    _colors(h["color"]), existing=True, label=h["path"]))
    for h in queue.pending_hashes():
        existing.append(HashedImage(h["sha256"], from_hex(h["phash"]), from_hex(h["dhash"]),
                                    (h["width"] or 0) * (h["height"] or 0), _colors(h["color"]), existing=True,
                                    label=h["stored_path"] or h["sha256"]))
    return existing


def _colors(raw) -> list[int]:
    import json
    return json.loads(raw) if raw else []


def run_filter(folder: str | os.PathLike, data_dir: str | os.PathLike, checker=None, semantic_note: str = "",
               rules: CrawlRules | None = None, batch_size: int = 64, runner: BatchRunner | None = None,
               progress: Callable[[str, int], None] | None = None, triage: Triage | None = None,
               triage_note: str = "") -> FilterResult:
    """Filter every new image under folder; returns the run's summary and per-image verdicts.

    checker: a SemanticChecker, or None when no model is available (semantic_note says why).
    triage: the dataset's current model as a Triage (None: no trained model, triage_note says why).
    """
    rules = rules or load_crawl_rules()
    runner = runner or LocalRunner(rules, checker, progress)
    queue = ReviewQueue(data_dir)
    run_id = uuid.uuid4().hex[:12]
    files, skipped = scan_inbox(folder)
    paths = [str(f.path) for f in files]

    shas = _flat(runner.hash(batched(paths, batch_size)))
    known = queue.known_shas(s for s in shas if s)
    dup_of = exact_duplicates(shas)
    first_of_sha = {}
    file_rows = []
    for i, (f, sha) in enumerate(zip(files, shas)):
        first_of_sha.setdefault(sha, i)
        file_rows.append((f.rel, sha or f"unreadable:{f.rel}", files[dup_of[i]].rel if i in dup_of else None))
    new_idx = [i for i, s in enumerate(shas) if i not in dup_of and s not in known]
    shoes_of_sha: dict[str, set[str]] = {}
    for f, sha in zip(files, shas):
        shoes_of_sha.setdefault(sha, set()).add(f.shoe)
    checks = _flat(runner.check(batched([paths[i] for i in new_idx], batch_size),
                                batched([shas[i] or None for i in new_idx], batch_size)))

    # Verdicts start from the automatic checks.
    verdicts: dict[int, dict] = {}
    for i, check in zip(new_idx, checks):
        v = {"sha256": check.sha256 or f"unreadable:{files[i].rel}", "source": paths[i], "rel": files[i].rel,
             "shoe": files[i].shoe, "status": "accepted", "rule": None, "width": check.width,
             "height": check.height, "format": check.format, "file_bytes": check.file_bytes, "phash": check.phash,
             "dhash": check.dhash, "color": check.color, "duplicate_of": None, "suffix": check.suffix,
             "reasons": [{"rule": r, "reason": why} for r, why in check.failures], "scores": {}}
        if check.failures:
            v["status"], v["rule"] = "rejected", check.failures[0][0]
        elif not files[i].shoe:
            rule_outcome = "rejected" if rules.loose_images == "reject" else "review"
            v["status"], v["rule"] = rule_outcome, "loose_images"
            v["reasons"].append({"rule": "loose_images", "reason": "the image is not inside a shoe folder"})
        elif len(shoes_of_sha[shas[i]]) > 1:
            # one picture filed under two shoes: a person decides which label is right
            v["status"], v["rule"] = "review", "label_conflict"
            v["reasons"].append({"rule": "label_conflict", "reason": "the same file is in the folders "
                                 + ", ".join(sorted(shoes_of_sha[shas[i]]))})
        verdicts[i] = v

    # Duplicates: exact against the dataset, near against batch + dataset + pending queue.
    existing = _existing_images(queue, rules)
    existing_by_sha = {e.key: e for e in existing}
    check_of = dict(zip(new_idx, checks))
    settled: set[int] = set()  # verdict final before the duplicate and semantic checks
    for i in new_idx:
        if verdicts[i]["status"] != "rejected" and shas[i] in existing_by_sha:
            there = existing_by_sha[shas[i]].label
            if Path(there) == queue.target_path("accepted", shas[i], files[i].shoe, check_of[i].suffix):
                # placed by a run that was interrupted before it recorded the verdict
                verdicts[i]["reasons"].append({"rule": "already_placed", "reason": f"already in the dataset: {there}"})
                settled.add(i)
                continue
            _reject(verdicts[i], "exact_duplicate", f"same content as {there}", shas[i])
    candidates = [i for i in new_idx if verdicts[i]["status"] != "rejected" and i not in settled]
    items = existing + [HashedImage(shas[i], check_of[i].phash, check_of[i].dhash, check_of[i].pixels,
                                    check_of[i].color, label=files[i].rel) for i in candidates]
    loose_dhash = max(rules.dhash_max_distance, rules.review_dhash_max_distance)
    all_pairs = near_duplicate_pairs(items, rules.phash_max_distance, loose_dhash, rules.color_max_difference)
    pairs = [p for p in all_pairs if p[3] <= rules.dhash_max_distance]
    groups = group_near_duplicates(items, pairs)
    offset = len(existing)
    group_report = []
    for g in groups:
        keep = items[g.keep]
        for m in g.members:
            if m == g.keep or m < offset:
                continue
            dp, dd = g.distances[m]
            _reject(verdicts[candidates[m - offset]], "near_duplicate",
                    f"near duplicate of {keep.label} (pHash {dp}, dHash {dd}); kept the larger copy", keep.key)
        if g.keep >= offset and any(m < offset for m in g.members):
            v = verdicts[candidates[g.keep - offset]]
            v["status"], v["rule"] = "review", "larger_duplicate"
            v["duplicate_of"] = next(items[m].key for m in g.members if m < offset)
            v["reasons"].append({"rule": "larger_duplicate", "reason": "a larger copy of "
                                 + ", ".join(items[m].label for m in g.members if m < offset)})
        group_report.append({"keep": keep.label, "existing": keep.existing,
                             "duplicates": [{"path": items[m].label, "phash": g.distances[m][0],
                                             "dhash": g.distances[m][1], "existing": items[m].existing}
                                            for m in g.members if m != g.keep]})
    # pHash says same, dHash is not sure: a person looks (the copy is kept either way)
    for a, b, dp, dd in all_pairs:
        if dd <= rules.dhash_max_distance:
            continue
        for mine, other in ((a, b), (b, a)):
            v = verdicts[candidates[mine - offset]] if mine >= offset else None
            if v is None or v["status"] == "rejected":
                continue
            v["reasons"].append({"rule": "possible_duplicate", "reason": f"possibly the same photo as "
                                 f"{items[other].label} (pHash {dp}, dHash {dd})"})
            v["duplicate_of"] = v.get("duplicate_of") or items[other].key   # the review page shows both
            if v["status"] == "accepted":
                v["status"], v["rule"] = "review", "possible_duplicate"

    # Semantic check on what is still in the running.
    survivors = [i for i in new_idx if verdicts[i]["status"] != "rejected" and i not in settled]
    if checker is not None and survivors:
        scores = _flat(runner.semantic(batched([paths[i] for i in survivors], batch_size)))
        for i, s in zip(survivors, scores):
            v = verdicts[i]
            if s is None:
                continue
            v["scores"] = s
            sv = checker.judge(s, rules.reject_confidence, rules.accept_confidence)
            if sv.outcome == "reject":
                _reject(v, sv.rule, sv.reason)
            elif sv.outcome == "review":
                v["reasons"].append({"rule": sv.rule, "reason": sv.reason})
                if v["status"] == "accepted":
                    v["status"], v["rule"] = "review", sv.rule
    elif checker is None:
        for i in survivors:
            v = verdicts[i]
            if v["status"] == "accepted" and rules.without_model == "review":
                v["status"], v["rule"] = "review", "semantic:skipped"
                v["reasons"].append({"rule": "semantic:skipped", "reason": semantic_note or "no CLIP model"})

    # Triage: the shoe each photo was crawled for, and the current model's view of it.
    listed_for = intended_shoes(manifest_path(Path(data_dir), Path(folder)))
    for i in new_idx:
        shoes = listed_for.get(shas[i], [])
        verdicts[i]["intended"] = shoes[0] if shoes else None
        if len(shoes) > 1 and verdicts[i]["status"] != "rejected" and i not in settled:
            listed_for_several(verdicts[i], shoes)
    scored = [i for i in new_idx if verdicts[i]["status"] != "rejected" and i not in settled]
    if triage is not None and scored:
        # a photo listed for several shoes is asked about each (the first: the one it was fetched for)
        asked = [asked_about(verdicts[i]["intended"], listed_for.get(shas[i])) for i in scored]
        for i, answer in zip(scored, triage.judge([paths[i] for i in scored], asked)):
            apply_verdict(verdicts[i], answer)
            if progress:
                progress("triage", 1)
    reopened, listed_again = reopen_listed_again(queue, listed_for, {shas[i] for i in new_idx})

    ordered = [verdicts[i] for i in new_idx]
    queue.record(ordered, run_id)
    queue.record_files(file_rows, run_id)
    # photos decided or waiting before a later crawl listed them for another shoe: asked again now
    settled = settle_waiting(queue, queue.items_by_sha(listed_again), triage, listed_for) \
        if triage is not None and listed_again else {}
    rejected = Counter(v["rule"] for v in ordered if v["status"] == "rejected")
    summary = {
        "run_id": run_id, "folder": str(Path(folder).resolve()), "data_dir": str(Path(data_dir)),
        "files": len(files), "skipped_names": skipped, "known": sum(1 for i, s in enumerate(shas)
                                                                   if s in known and i not in dup_of),
        "exact_duplicates": len(dup_of), "new": len(new_idx),
        "accepted": sum(v["status"] == "accepted" for v in ordered),
        "rejected": sum(rejected.values()), "rejected_by_rule": dict(sorted(rejected.items())),
        "queued": sum(v["status"] == "review" for v in ordered),
        "near_duplicate_groups": group_report,
        "possible_duplicates": sum(any(r["rule"] == "possible_duplicate" for r in v["reasons"]) for v in ordered),
        "semantic": semantic_note or "semantic check on",
        "auto_accepted": sum(v["status"] == "accepted" and v["rule"] == AUTO_ACCEPT for v in ordered),
        "auto_rejected": sum(v["status"] == "rejected" and str(v["rule"]).startswith("triage:") for v in ordered),
        "triage": (f"triage with model {triage.model}" if triage is not None else
                   triage_note or "no triage: the dataset has no trained model yet"),
        "listed_for_several": sum(v.get("rule") == LISTED_FOR_SEVERAL for v in ordered),
        "reopened": reopened,
        "listed_again": len(listed_again),
        "listed_again_accepted": settled.get("auto_accepted", 0),
        "listed_again_rejected": settled.get("auto_rejected", 0),
        "queue_waiting": queue.counts()["review"],
    }
    queue.save_run(run_id, str(folder), summary)
    return FilterResult(summary, ordered)


def reopen_listed_again(queue: ReviewQueue, listed_for: dict[str, list[str]], batch: set[str]) \
        -> tuple[int, list[str]]:
    """Photos a later crawl listed for another shoe: a model's decision on one goes back to review, and one
    waiting for a model's doubt waits as listed for several shoes (a person's own decisions stand, and so
    does a model's decision made after the listing was known: only "no shoe of the catalog" or a sure
    answer among the listed shoes settles such a photo). (how many decisions were reopened, the sha256
    of every photo reopened or marked, for the model to be asked about all its shoes)."""
    several = [sha for sha, shoes in listed_for.items() if len(shoes) > 1 and sha not in batch]
    if not several:
        return 0, []
    reopened, marked = 0, []
    for item in queue.items_by_sha(several):
        if any(r.get("rule") == LISTED_FOR_SEVERAL for r in item.reasons):
            continue        # asked about every listed shoe once already
        reason = {"rule": LISTED_FOR_SEVERAL, "reason": listed_text(listed_for[item.sha256])}
        if item.status == "review":
            if item.rule in SETTLED_BY_MODEL or str(item.rule).startswith("triage:"):
                queue.mark(item.id, LISTED_FOR_SEVERAL, reason)
                marked.append(item.sha256)
            continue
        if not (item.decided_by or "").startswith("model:"):
            continue
        queue.reopen(item.id, rule=LISTED_FOR_SEVERAL)
        contradicted = {CONTRADICTED: item.folder} if item.status == "accepted" else {}
        queue.annotate(item.id, item.guesses, item.suggested, item.margin, item.triaged_by or "",
                       reason | contradicted | {REOPENED: item.status,
                                                "reason": f"{item.decided_by} had {item.status} it; {reason['reason']}"})
        reopened += 1
        marked.append(item.sha256)
    return reopened, marked


def _reject(verdict: dict, rule: str, reason: str, duplicate_of: str | None = None) -> None:
    verdict["status"], verdict["rule"] = "rejected", rule
    verdict["reasons"].append({"rule": rule, "reason": reason})
    if duplicate_of:
        verdict["duplicate_of"] = duplicate_of


def summary_markdown(summary: dict) -> str:
    """The run summary as a short Markdown report (Prefect artifact, CLI)."""
    lines = [f"# Crawl filter run {summary['run_id']}", "", f"Folder: `{summary['folder']}`", "",
             "| | count |", "|---|---|"]
    for key in ("files", "known", "exact_duplicates", "new", "accepted", "auto_accepted", "rejected", "auto_rejected",
                "queued", "listed_for_several", "reopened", "listed_again_accepted", "listed_again_rejected",
                "queue_waiting"):
        if key in summary:
            lines.append(f"| {key.replace('_', ' ')} | {summary[key]} |")
    if summary["rejected_by_rule"]:
        lines += ["", "Rejected by rule:", ""] + [f"- {r}: {n}" for r, n in summary["rejected_by_rule"].items()]
    if summary["near_duplicate_groups"]:
        lines += ["", f"Near-duplicate groups: {len(summary['near_duplicate_groups'])}", ""]
        for g in summary["near_duplicate_groups"]:
            lines.append(f"- keep `{g['keep']}`: " + ", ".join(
                f"`{d['path']}` (pHash {d['phash']}, dHash {d['dhash']})" for d in g["duplicates"]))
    lines += ["", f"Semantic check: {summary['semantic']}"]
    if summary.get("triage"):
        lines += ["", f"Triage: {summary['triage']}"]
    return "\n".join(lines) + "\n"
