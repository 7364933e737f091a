"""`shoefind filter | review`: crawl-rule filtering and the manual-review queue."""
from __future__ import annotations

from pathlib import Path

import typer

from shoefind.cli import options as o
from shoefind.cli.common import data_layout, err, fail, print_json, printable


def _progress():
    """A rich bar per step (hash, check, semantic); totals grow as batches are handed out."""
    from rich.progress import Progress, TextColumn

    from shoefind.cli.common import bar_column, description_column
    bar = Progress(description_column(), bar_column(), TextColumn("{task.completed} images"),
                   console=err, transient=False)
    steps: dict[str, int] = {}

    def advance(step: str, n: int) -> None:
        if step not in steps:
            steps[step] = bar.add_task(step, total=None)
        bar.advance(steps[step], n)
    return bar, advance


def filter_images(folder: Path = typer.Argument(None, help="crawl folder, one subfolder per shoe "
                                                            "(default DATA_DIR/inbox); only read, never changed"),
                  data_dir: o.DataDir = None,
                  model: str = typer.Option(None, "--model", envvar="SHOEFIND_MODEL",
                                            help="CLIP name or checkpoint for the semantic check; "
                                                 "'none' skips it"),
                  batch_size: o.BatchSize = 64,
                  purge: bool = typer.Option(False, "--purge", help="then delete the kept copies of rejected "
                                                                    "images (their verdicts stay)"),
                  triage: bool = typer.Option(True, "--triage/--no-triage",
                                              help="let the working dataset's current model accept, reject or queue "
                                                   "each new photo (when it has one; `shoefind models`)"),
                  json_out: o.Json = False):
    """Apply the crawl rules: every new image is accepted, rejected (with the rule) or queued for review."""
    lay = data_layout(data_dir)
    d = lay.root
    folder = Path(folder).expanduser() if folder else lay.inbox
    if not folder.is_dir() and not purge:
        fail(f"folder {folder} does not exist")
    from shoefind.curate.filter import run_filter
    from shoefind.curate.queue import ReviewQueue
    from shoefind.curate.semantic import load_checker
    summary = None
    if folder.is_dir():
        checker, note, detail = load_checker(model)
        err.print(note + (f"\n  {detail}" if detail else ""),
                  style="yellow" if checker is None or checker.encoder.is_random else None,
                  highlight=False, markup=False)
        model_triage, triage_note = _triage(d, lay.images) if triage else (None, "triage off (--no-triage)")
        err.print(triage_note, highlight=False, markup=False)
        bar, advance = _progress()
        with bar:
            summary = run_filter(folder, d, checker, note, batch_size=batch_size, progress=advance,
                                 triage=model_triage, triage_note=triage_note).summary
    purged = ReviewQueue(d).purge() if purge else None
    if json_out:
        print_json({"filter": summary, "purged": purged})
        return
    if summary:
        _print_summary(summary)
    if purged is not None:
        print(f"purged the kept copies of {purged} rejected images")


def _triage(data_dir: Path, dataset: Path):
    """The working dataset's current model as the filter's triage, and a note saying so (or why not)."""
    from shoefind.registry.triage import load_triage
    return load_triage(data_dir, dataset)


def _print_summary(s: dict) -> None:
    print(f"{s['folder']}: {s['files']} files, {s['known']} already known, {s['new']} new")
    print(f"  exact duplicates: {s['exact_duplicates']} files (same sha256 as another file)")
    print(f"  accepted: {s['accepted']}   rejected: {s['rejected']}   queued for review: {s['queued']}"
          f"   (queue now: {s['queue_waiting']})")
    if s.get("auto_accepted") or s.get("auto_rejected"):
        print(f"  by the model: {s['auto_accepted']} accepted, {s['auto_rejected']} rejected ({s['triage']})")
    for rule, n in s["rejected_by_rule"].items():
        print(f"    rejected by {rule}: {n}")
    groups = s["near_duplicate_groups"]
    print(f"  near-duplicate groups: {len(groups)}")
    for g in groups:
        print(f"    keep {g['keep']}" + (" (dataset)" if g["existing"] else ""))
        for dup in g["duplicates"]:
            print(f"      ~ {dup['path']} (pHash {dup['phash']}, dHash {dup['dhash']})")
    if s["possible_duplicates"]:
        print(f"  possible duplicates sent to review: {s['possible_duplicates']}")
    if s.get("listed_for_several") or s.get("reopened"):
        print(f"  listed by the search for two shoes, sent to review: {s.get('listed_for_several', 0)} new, "
              f"{s.get('reopened', 0)} reopened (a model had decided them)")
    if s.get("listed_again_accepted") or s.get("listed_again_rejected"):
        print(f"  asked again about every shoe they were listed for, the model filed {s['listed_again_accepted']} "
              f"under one of them and rejected {s['listed_again_rejected']} as no catalog shoe")
    if s["skipped_names"]:
        print(f"  skipped {len(s['skipped_names'])} files whose names are not images")
    print(f"  {s['semantic']}")


def review(accept: list[str] = typer.Option(None, "--accept", help="accept this queue ID (or sha256 prefix)"),
           reject: list[str] = typer.Option(None, "--reject", help="reject this queue ID (or sha256 prefix)"),
           label: str = typer.Option(None, "--label", help="with --accept: file the photo under this shoe folder "
                                                           "instead of its own ('suggested': the model's suggestion)"),
           list_: bool = typer.Option(False, "--list", help="list the images waiting for review"),
           check: bool = typer.Option(False, "--check", help="check that the queue and the files on disk agree, "
                                                             "and repair what does not (orphan and missing copies)"),
           status: o.ReviewStatus = typer.Option("review", help="with --list: which images to list"),
           data_dir: o.DataDir = None,
           port: o.Port = 8765,
           open_browser: bool = typer.Option(True, "--open/--no-open", help="open the page in a browser"),
           json_out: o.Json = False):
    """Go through the manual-review queue: a local web page, or --list/--accept/--reject for scripts."""
    lay = data_layout(data_dir)
    if not lay.filter_queue.is_file():
        fail(f"no review queue in {lay.root} yet: run `shoefind filter FOLDER` first")
    from shoefind.curate.queue import ReviewQueue
    queue = ReviewQueue(lay.root)
    for note in queue.recovered:
        err.print(f"warning: {note}", style="yellow", highlight=False, markup=False)
    if check:
        _check(queue, json_out)
        return
    if label is not None and not accept:
        fail("--label files an accepted photo under a shoe: give it with --accept ID")
    if accept or reject:
        # each decision stands on its own: all are reported, and any failure makes exit code 2
        results = queue.decide_many([(r, "accept") for r in accept or []] + [(r, "reject") for r in reject or []],
                                    reviewer="cli", label=label)
        if json_out:
            print_json([r.as_dict() for r in results])
        else:
            for r in results:
                if r.item:
                    print(printable(f"{r.item.id} {r.item.status}: {r.item.stored_path}"))
        failed = [r for r in results if r.error]
        for r in failed:
            err.print(printable(f"error: --{r.decision} {r.ref}: {r.error}"), style="red", highlight=False, markup=False)
        if failed:
            raise typer.Exit(2)
        return
    if list_:
        # waiting images most informative first (the model's smallest margins, the shoes with fewest photos)
        items = queue.items(None if status == "all" else status, order="informative" if status == "review" else "id")
        if json_out:
            print_json({"items": [i.as_dict() for i in items], "counts": queue.counts()})
            return
        for i in items:
            reasons = "; ".join(f"{r['rule']}: {r['reason']}" for r in i.reasons)
            guesses = ", ".join(f"{g['shoe']} {g['probability']:.2f}" for g in i.guesses)
            print(printable(f"{i.id:>5}  {i.status:<8}  {i.folder}  {Path(i.source).name}  {reasons}"
                            + (f"  [model: {guesses}]" if guesses else "")))
        print(f"{len(items)} images ({', '.join(f'{k} {v}' for k, v in queue.counts().items())})")
        return
    _serve(queue, port, open_browser)


def _check(queue, json_out: bool) -> None:
    from shoefind.curate.queue_check import check_queue
    report = check_queue(queue)
    if json_out:
        print_json(report.as_dict())
    else:
        for finding in report.findings:
            print(("repaired " if finding.repaired else "NOT repaired ") + finding.line())
        print(f"checked {report.images} queue images and {report.files} files: {len(report.findings)} problems, "
              f"{len(report.findings) - len(report.unrepaired)} repaired")
    if report.unrepaired:
        fail(f"{len(report.unrepaired)} problems need a person: see above (NOT repaired)")


def _serve(queue, port: int, open_browser: bool) -> None:
    import webbrowser

    from shoefind.curate.crawl_checks import load_crawl_rules
    from shoefind.curate.review_server import ReviewServer
    try:
        server = ReviewServer(queue, load_crawl_rules().human_rules, port=port)
    except OSError as exc:
        fail(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); try --port 0")
    waiting = queue.counts()["review"]
    err.print(f"review page: {server.url}  ({waiting} images waiting; Ctrl-C to stop)", highlight=False)
    print(server.url, flush=True)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
