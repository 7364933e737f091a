"""`shoefind demo DIR`: a catalog of drawings and a model that knows them, made offline in a few minutes."""
from __future__ import annotations

from pathlib import Path
from shoefind.cli import options as o
from shoefind.cli.common import print_json
from shoefind.cli.declared import declared
from shoefind.cli.execution import run_stage
from shoefind.stages.demo import DemoRequest


@declared(DemoRequest)
def demo(request: DemoRequest, json_out: o.Json = False, prefect: o.Prefect = False):
    """Draw a demo catalog and train a model that knows it, offline; show how it scores on photos it never saw.

    The catalog: 144 shoes with known brand, colour, top, sole and name. The model: LiT over the offline
    efficientnet-lite0 backbone (no internet, no CLIP weights). Each phase shows its progress. Then try
    the printed commands with --model on the demo catalog."""
    result = run_stage("demo", prefect, request)
    if json_out:
        print_json(result)
        return
    show_demo(result)


def show_demo(result: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    out = Console()
    table = Table(title=f"zero-shot top-1 on {result['heldout_photos']} held-out demo photos (never trained on)")
    for column in ("what", "top-1", "chance", "majority class"):
        table.add_column(column, justify="left" if column == "what" else "right")

    def pct(v) -> str:
        return "-" if v is None else f"{v:.1%}"
    for key, value in result["zero_shot"].items():
        majority = f"{pct(value['majority'])} ({value.get('majority_class', '')})" if "majority" in value else "-"
        table.add_row({"name": "name (name prompts)", "name_5step": "name (5-step method)"}.get(key, key),
                      pct(value.get("top1")), pct(value.get("chance")), majority)
    out.print(table)
    for warning in result.get("warnings") or []:
        out.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    model, catalog = result["model"], result["catalog"]
    some = sorted(Path(catalog).glob("*_High_Red_*/photo-00.png")) or sorted(Path(catalog).glob("*/photo-00.png"))
    photo = str(some[0]) if some else f"{catalog}/<shoe>/photo-00.png"
    out.print(f"catalog: {catalog}\nmodel:   {model} (manifest {result['manifest']})\n"
              f"done in {result['seconds']:.0f}s. Try:\n"
              f"  shoefind infer '{photo}' --model {model} --dataset {catalog}\n"
              f"  shoefind infer '{photo}' --change 'same shoe but blue' --model {model} --dataset {catalog}\n"
              f"  shoefind search 'blue high top' --model {model} --dataset {catalog}\n"
              f"  shoefind web --model {model} --dataset {catalog}", highlight=False, soft_wrap=True)
