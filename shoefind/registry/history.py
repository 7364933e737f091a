"""A registry's history: every trained model with its held-out scores and whether it was promoted, as
rows (`shoefind models`), Markdown and a plot of held-out top-1 across runs (the expansion summary)."""
from __future__ import annotations

from pathlib import Path

from shoefind.registry.store import ModelRegistry


def history(registry: ModelRegistry) -> list[dict]:
    """One row per model, oldest first: id, when, learner, photos, held-out scores, promoted, current."""
    promoted = {e.get("model") for e in registry.events() if str(e.get("event", "")).startswith("promoted")}
    current = registry.current_id() if registry.registered else None
    rows = []
    for m in registry.manifests():
        c = m.get("comparison") or {}
        rows.append({"model": m["id"], "created": m["created"], "learner": m["learner"]["name"],
                     "photos": m["data"]["photos"], "top1": m["heldout"]["top1"], "top5": m["heldout"]["top5"],
                     "heldout_photos": m["heldout"]["photos"], "compared_with": m.get("compared_with"),
                     "difference": c.get("difference"), "se": c.get("se"), "p_value": c.get("p_value"),
                     "margin": m["thresholds"].get("margin"), "promoted": m["id"] in promoted,
                     "nearest_top1": ((m.get("references") or {}).get("nearest") or {}).get("top1"),
                     "zeroshot_top1": ((m.get("references") or {}).get("zeroshot") or {}).get("top1"),
                     "current": m["id"] == current})
    return rows


def history_markdown(rows: list[dict]) -> str:
    lines = ["| model | learner | photos | held-out top-1 | top-5 | nearest photo / zero-shot top-1 "
             "| vs. current then (SE, McNemar p) | triage margin | promoted |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vs = "" if r["compared_with"] is None else \
            f"{r['difference']:+.3f} vs {r['compared_with']} (SE {r['se']:.3f}, p={r['p_value']:.2f})"
        mark = "**current**" if r["current"] else ("yes" if r["promoted"] else "no")
        margin = "none (all to review)" if r["margin"] is None else f">= {r['margin']:.2f}"
        refs = f"{score_text(r.get('nearest_top1'))} / {score_text(r.get('zeroshot_top1'))}"
        lines.append(f"| {r['model']} | {r['learner']} | {r['photos']} | {score_text(r['top1'])} | "
                     f"{score_text(r['top5'])} | {refs} | {vs} | {margin} | {mark} |")
    return "\n".join(lines)


def score_text(v) -> str:
    """A score with 3 decimals, '-' when there is none."""
    return "-" if v is None else f"{v:.3f}"


def plot_history(rows: list[dict], path: Path) -> Path:
    """Held-out top-1 of every trained model (filled: promoted, cross: kept out) and of the model that
    was current after each run (the line), as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    xs = list(range(1, len(rows) + 1))
    current_top1, best = [], None
    for r in rows:
        if r["promoted"]:
            best = r["top1"]
        current_top1.append(best)
    ax.step(xs, current_top1, where="post", color="#1565c0", label="current model after the run")
    up = [(x, r["top1"]) for x, r in zip(xs, rows) if r["promoted"] and r["top1"] is not None]
    kept = [(x, r["top1"]) for x, r in zip(xs, rows) if not r["promoted"] and r["top1"] is not None]
    if up:
        ax.scatter(*zip(*up), color="#2e7d32", zorder=3, label="trained, promoted")
    if kept:
        ax.scatter(*zip(*kept), color="#c62828", marker="x", zorder=3, label="trained, not promoted (worse)")
    ax.set_xticks(xs, [r["model"] for r in rows], rotation=45 if len(rows) > 8 else 0)
    ax.set_xlabel("training run")
    ax.set_ylabel("held-out top-1")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
