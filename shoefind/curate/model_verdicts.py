"""What the filter asks of a trained model, and how the model's answer changes a filter verdict.

The filter (filter.py) knows nothing of models: a caller above it (shoefind.registry.triage) passes
an object with `judge(paths, intended)` that scores new photos with the dataset's current model.
Its verdict per photo:
- accept: the model agrees with the shoe the crawl query was for, with a calibrated margin;
- reject: it is sure the photo is another catalog shoe (kept as the suggested label, never filed
  under it silently) or no shoe of the catalog;
- review: anything else, with the model's guesses for the person who decides.

The shoe a photo was crawled for is the crawl manifest's (`intended_shoes`); a photo dropped into
the inbox by hand has none, so the model can suggest a label for it but never accept it. A photo the
search listed for several shoes (a query's "other shoes" are another query's own) is asked about all of
them: the model files it under one of them only as it accepts any photo (its calibrated margin, the
nearest training photo agreeing); else a person decides which it shows. A photo a model had filed under
shoe A that a later crawl lists for B is reopened, and a model may then file it under B but never under A
again: the search contradicted that answer, and the same answer from a model like the one that gave it
is no new evidence (measured on the nike-silhouettes benchmark: 37 of 37 such re-filings under A were
wrong, 94 of 94 moves to B right).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

# Filter verdicts a model may settle: nothing but the model's question is open. Images queued for
# another reason (a possible duplicate, a label conflict) keep waiting for a person, with the model's
# guesses shown beside them.
SETTLED_BY_MODEL = (None, "semantic:skipped", "semantic:uncertain")
AUTO_ACCEPT = "triage:agrees"
OTHER_SHOE = "triage:other-shoe"
NOT_IN_CATALOG = "triage:not-in-catalog"
UNSURE = "triage:unsure"
NO_INTENDED = "triage:no-intended-shoe"
LISTED_FOR_SEVERAL = "listed_for_several"
LISTINGS = ("downloaded", "duplicate", "listed-again")   # crawl manifest records that list a photo for a shoe
# A reopened photo's reason keys: the decision a later listing reopened (accepted, rejected), and the shoe a
# model had filed it under when the search listed it for another.
REOPENED = "reopened"
CONTRADICTED = "contradicted_filing"


@dataclass(frozen=True)
class TriageVerdict:
    outcome: str                      # accept | reject | review
    rule: str                         # one of the triage:* rules above
    reason: str                       # one sentence, for the queue's reasons
    guesses: list = field(default_factory=list)   # [{"shoe": folder, "probability": p}], best first
    suggested: str | None = None      # the shoe the model is sure of, when not the intended one
    margin: float | None = None       # top-1 minus top-2 probability
    model: str = ""                   # the registry model id
    shoe: str | None = None           # accepted under this listed shoe, when not the one it was fetched for

    def fields(self) -> dict:
        """The queue columns this verdict fills."""
        return {"guesses": self.guesses, "suggested": self.suggested, "margin": self.margin,
                "triaged_by": self.model}


class Triage(Protocol):
    model: str                        # the registry model id (shown in summaries)

    def judge(self, paths: Sequence[str], intended: Sequence[str | Sequence[str] | None]) \
            -> list[TriageVerdict | None]:
        """One verdict per photo (None where it cannot be read). intended: per photo the shoe it was crawled
        for, None, or the shoes the search listed it for (the first: the one it was fetched for)."""


def intended_shoes(manifest: str | os.PathLike) -> dict[str, list[str]]:
    """sha256 -> the shoe folders crawl queries listed it for, the one it was fetched for first, from a
    crawl manifest (read without its lock: a torn last line is skipped, as the manifest itself does).
    More than one: the search named the photo for several shoes (another URL with the same bytes, or
    the same URL in another query's results)."""
    out: dict[str, list[str]] = {}
    path = Path(manifest)
    if not path.is_file():
        return out
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and rec.get("status") in LISTINGS and rec.get("sha256") and rec.get("shoe"):
                shoes = out.setdefault(rec["sha256"], [])
                if rec["shoe"] not in shoes:
                    shoes.append(rec["shoe"])
    return out


def asked_about(intended: str | None, listed: Sequence[str] | None) -> str | list[str] | None:
    """What a model is asked about a photo: every shoe the search listed it for when there are several
    (a list, the first the one it was fetched for), else the shoe it was crawled for (None: by hand)."""
    return list(listed) if listed and len(listed) > 1 else intended


def how_it_came(item) -> str:
    """Which path a queue item took to a decision: "one listing", "listed for several", or "reopened
    acceptance"/"reopened rejection" (a later listing reopened a model's decision)."""
    reopened = next((r[REOPENED] for r in item.reasons if r.get(REOPENED)), None)
    if reopened:
        return "reopened acceptance" if reopened == "accepted" else "reopened rejection"
    return "listed for several" if any(r.get("rule") == LISTED_FOR_SEVERAL for r in item.reasons) else "one listing"


def listed_text(shoes: Sequence[str]) -> str:
    return "the search listed it for " + " and for ".join(shoes)


def listed_for_several(verdict: dict, shoes: Sequence[str]) -> None:
    """Mark a photo the search listed for several shoes (in place): which of them it shows is a
    person's question unless a model is sure of one of them (apply_verdict)."""
    verdict["reasons"].append({"rule": LISTED_FOR_SEVERAL, "reason": listed_text(shoes)
                               + ": a person decides which it shows, unless a model is sure"})
    if verdict["status"] == "accepted" or verdict.get("rule") in SETTLED_BY_MODEL:
        verdict["status"], verdict["rule"] = "review", LISTED_FOR_SEVERAL


def settles_listed(answer: TriageVerdict) -> bool:
    """Does a model's answer settle a photo listed for several shoes? Only "no shoe of the catalog", or
    an acceptance under one of the listed shoes (the judge was given them all)."""
    return answer.rule == NOT_IN_CATALOG or answer.outcome == "accept"


def apply_verdict(verdict: dict, answer: TriageVerdict | None) -> None:
    """Change one filter verdict (a dict, see run_filter) by the model's answer, in place."""
    if answer is None:
        return
    verdict.update(answer.fields())
    settles = verdict["status"] != "rejected" and (
        verdict.get("rule") in SETTLED_BY_MODEL
        # which of the shoes it was listed for is a person's question, unless the model is sure
        or verdict.get("rule") == LISTED_FOR_SEVERAL and settles_listed(answer))
    if not settles:
        return            # keeps its own verdict; the guesses help the person who decides it
    verdict["reasons"] = [r for r in verdict["reasons"] if r.get("rule") != "semantic:skipped"]
    verdict["reasons"].append({"rule": answer.rule, "reason": answer.reason})
    verdict["rule"] = answer.rule
    if answer.outcome == "accept":
        verdict["status"], verdict["decided_by"] = "accepted", f"model:{answer.model}"
        if answer.shoe:
            verdict["label"] = answer.shoe
    elif answer.outcome == "reject":
        verdict["status"], verdict["decided_by"] = "rejected", f"model:{answer.model}"
    else:
        verdict["status"] = "review"


def settle_waiting(queue, items: Sequence, triage: Triage, listed_for: dict[str, list[str]] | None = None) -> dict:
    """A model answers photos waiting in the review queue (each asked about every shoe the search listed it
    for); what it is sure of it decides as the filter would have, the rest keeps waiting with its guesses.
    Counts of what it settled."""
    listed_for = listed_for or {}
    counts = {"asked": len(items), "auto_accepted": 0, "auto_rejected": 0, "still_waiting": 0}
    if not items:
        return counts
    paths = [i.stored_path if i.stored_path and Path(i.stored_path).is_file() else i.source for i in items]
    asked = [asked_about(i.intended, listed_for.get(i.sha256)) for i in items]
    for item, shoes, answer in zip(items, asked, triage.judge(paths, asked)):
        if answer is None:
            counts["still_waiting"] += 1
            continue
        several = item.rule == LISTED_FOR_SEVERAL or isinstance(shoes, list)
        refiled = _refiles_contradicted(item, answer)
        settles = (settles_listed(answer) if several else True) and not refiled
        why = None
        if settles:
            why = {"rule": answer.rule, "reason": answer.reason}
        elif refiled:
            why = {"rule": UNSURE, "reason": f"model {answer.model} would file it under {refiled} again, the filing "
                                             "a later listing contradicted: a person decides"}
        queue.annotate(item.id, answer.guesses, answer.suggested if answer.suggested or not several else item.suggested,
                       answer.margin, answer.model, why)
        if settles and answer.outcome == "accept":
            queue.decide(item.id, "accept", reviewer=f"model:{answer.model}", rule=AUTO_ACCEPT, label=answer.shoe)
            counts["auto_accepted"] += 1
        elif settles and answer.outcome == "reject":
            queue.decide(item.id, "reject", reviewer=f"model:{answer.model}", rule=answer.rule)
            counts["auto_rejected"] += 1
        else:
            counts["still_waiting"] += 1
    return counts


def _refiles_contradicted(item, answer: TriageVerdict) -> str | None:
    """The shoe this answer would file the photo under again when a model had filed it there before the
    search listed it for another (see the module docstring): then a person decides. None otherwise."""
    filed = next((r[CONTRADICTED] for r in item.reasons if r.get(CONTRADICTED)), None)
    return filed if filed is not None and answer.outcome == "accept" and (answer.shoe or item.intended) == filed \
        else None
