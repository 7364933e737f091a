"""`shoefind crawl`: collect labeled shoe photos from an image search into the inbox (filter sorts them)."""
from __future__ import annotations

from pathlib import Path

import typer

from shoefind.cli import options as o
from shoefind.cli.common import data_layout, err, fail, print_json, progress_bar


def crawl(catalog: o.Catalog = None,
          shoes: Path = typer.Option(None, "--shoes", exists=True, dir_okay=False,
                                     help="YAML list of shoes with name, brand, color, hightop, sole and queries"),
          per_query: int = typer.Option(20, "--per-query", min=1, help="images to collect per search query"),
          engine: str = typer.Option("google", "--engine", help="search engine from rules/search_engines.yaml"),
          data_dir: o.DataDir = None,
          inbox: Path = typer.Option(None, "--inbox", file_okay=False,
                                     help="where images go (default DATA_DIR/inbox, where `shoefind filter` reads them)"),
          concurrency: int = typer.Option(None, "--concurrency", min=1, help="parallel downloads (default 4)"),
          json_out: o.Json = False,
          # For the local test site and slow networks; not needed day to day.
          base_url: str = typer.Option(None, "--base-url", hidden=True, help="override the engine's base URL"),
          allow_loopback: bool = typer.Option(False, "--allow-loopback", hidden=True,
                                              help="allow downloads from 127.0.0.1 (tests only)"),
          read_timeout: float = typer.Option(None, "--read-timeout", min=0.1, hidden=True),
          preview_timeout: float = typer.Option(None, "--preview-timeout", min=0.1, hidden=True),
          scroll_timeout: float = typer.Option(None, "--scroll-timeout", min=0, hidden=True),
          retries: int = typer.Option(None, "--retries", min=0, hidden=True),
          host_interval: float = typer.Option(None, "--host-interval", min=0, hidden=True,
                                              help="seconds between requests to one host"),
          max_mb: float = typer.Option(None, "--max-mb", min=0.001, hidden=True, help="size cap per image in MB")):
    """Search each shoe's queries, download full-size images into Brand_Top_Color_Sole_Name/ folders.

    Reruns resume: URLs and images already in the manifest (DATA_DIR/crawl/) are skipped.
    """
    from shoefind.crawl.collect import crawl as run_crawl
    from shoefind.crawl.collect import crawl_settings
    from shoefind.crawl.manifest import manifest_path
    from shoefind.crawl.search_page import SearchEngine
    from shoefind.crawl.targets import crawl_queries

    lay = data_layout(data_dir)
    d = lay.root
    target_dir = Path(inbox).expanduser().resolve() if inbox else lay.inbox  # filter moves accepted images on
    queries = crawl_queries(catalog, shoes)
    search_engine = SearchEngine.from_rules(engine, base_url)
    settings = crawl_settings(per_query=per_query, concurrency=concurrency, allow_loopback=allow_loopback,
                              read_timeout=read_timeout, preview_timeout=preview_timeout,
                              scroll_timeout=scroll_timeout, retries=retries, per_host_interval=host_interval,
                              max_bytes=int(max_mb * 1024 * 1024) if max_mb else None)

    def report_line(report):
        from rich.markup import escape
        colour = "green" if report.complete else "yellow"
        reasons = f" ({', '.join(f'{k} x{n}' for k, n in sorted(report.reasons.items()))})" if report.reasons else ""
        err.print(f"[{colour}]{escape(report.query)}[/] -> {escape(report.shoe)}: {report.downloaded} new, {report.already} before, "
                  f"{report.skipped} skipped, {report.failed} failed{escape(reasons)}", highlight=False)

    err.print(f"crawling {len(queries)} queries with {engine}, {per_query} images each, into {target_dir}",
              highlight=False)
    try:
        with progress_bar("images", len(queries) * per_query) as advance:
            def on_query(report):
                advance(report.target - report.downloaded)   # earlier runs' images and any shortfall
                report_line(report)
            reports = run_crawl(queries, search_engine, target_dir, d, settings,
                                on_event=lambda kind, _: advance(1) if kind == "downloaded" else None,
                                on_query=on_query)
    except KeyboardInterrupt:
        fail("interrupted; what was downloaded is kept and recorded: run the same command to resume", code=130)
    rows = [r.as_row() for r in reports]
    summary = {"dataset": str(target_dir), "manifest": str(manifest_path(d, target_dir)), "queries": rows,
               **{k: sum(r[k] for r in rows) for k in ("found", "downloaded", "skipped", "failed")}}
    if json_out:
        print_json(summary)
    else:
        print(f"{target_dir}: {summary['downloaded']} new images from {len(rows)} queries, "
              f"{summary['skipped']} skipped, {summary['failed']} failed (manifest: {summary['manifest']})")
    short = [r["query"] for r in rows if not r["complete"]]
    if short:
        err.print(f"{len(short)} queries found fewer than {per_query} images: {', '.join(short[:5])}"
                  + (" ..." if len(short) > 5 else ""), style="yellow", highlight=False, markup=False)
