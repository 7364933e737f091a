"""`shoefind COMMAND --help` reads cleanly in an 80-column terminal and says what each command does
with its options: no type tags (`<bool>`, `<str>`), no help cut off mid-word, no option that the
command ignores, and --model / --seed / --method described for the command they are on."""
from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from shoefind.cli.main import COMMANDS, app

MODEL_COMMANDS = ["crawl", "filter", "review", "table", "embed", "evaluate", "prompts", "learn", "demo", "infer",
                  "search", "web", "doctor"]
COMMAND_LINES = [[c] for c in COMMANDS] + [["model"], ["model", "list"], ["model", "make-tiny"], ["model", "check"],
                                           []]


def help_of(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def option_help(text: str, flag: str) -> str:
    """The help of one option, its wrapped lines joined: the rows from the one naming the flag up to the
    next row that starts left of the help column."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.search(rf"│ {re.escape(flag)}\b", line))
    first = lines[start].rstrip(" │")
    column = max(first.rfind("  ") + 2, 0)       # where the help text starts in this panel
    words = [first[column:].strip()]
    for line in lines[start + 1:]:
        body = line.rstrip(" │")
        if line.startswith("╰") or body[:column].strip("│ "):
            break
        words.append(body[column:].strip())
    return " ".join(" ".join(words).split())


def test_the_command_list_names_every_command():
    assert set(MODEL_COMMANDS) <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMAND_LINES, ids=lambda c: " ".join(c) or "shoefind")
def test_help_reads_cleanly(command):
    text = help_of(*command)
    assert not re.search(r"<(bool|str|int|float|path|dir|file|int range|float range)>", text), text
    assert "…" not in text, text                       # nothing cut off mid-word
    assert "{" not in text.split("\n\n")[0] if text.strip() else True
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and not re.search(r"\[[a-z]+\]", usage), usage     # PHOTOS... / [DATASET], as usual
    assert "4294967295" not in text


def test_the_command_list_gives_each_command_one_unbroken_summary():
    text = help_of()
    learn = next(i for i, line in enumerate(text.splitlines()) if line.startswith("│ learn "))
    summary = " ".join(line.strip("│ ").removeprefix("learn").strip() for line in text.splitlines()[learn:learn + 3])
    assert summary.startswith("Learn from the labeled photos: classifiers for inference, or a new model.")


@pytest.mark.parametrize("command, says, never", [
    (["evaluate"], "A,B,C to score several side by side", None),
    (["embed"], "the model that encodes the photos", "A,B,C"),
    (["learn"], "the model to learn with", "A,B,C"),
    (["infer"], "the model that identifies the photos", "A,B,C"),
    (["search"], "the model that reads the words", "efficientnet-lite0"),
    (["web"], "the model the page answers with", "A,B,C"),
    (["doctor"], "the model whose files to look for", "A,B,C"),
    (["model", "check"], "the model to load and describe", "A,B,C"),
])
def test_model_help_says_what_this_command_does_with_it(command, says, never):
    text = option_help(help_of(*command), "--model")
    assert says in text, text
    assert "evaluate takes" not in text
    if never:
        assert never not in text, text


@pytest.mark.parametrize("command, says", [
    (["evaluate"], "seed of the k-shot split of --method/--shots"),
    (["learn"], "seed of the held-out split and of training"),
    (["demo"], "seed of the drawings"),
    (["model", "make-tiny"], "seed of the random weights"),
])
def test_seed_help_says_what_it_seeds_here(command, says):
    assert says in option_help(help_of(*command), "--seed")


def test_each_command_offers_only_what_it_does():
    assert "learn also takes" not in option_help(help_of("evaluate"), "--method")
    assert "lit (train a text tower)" in option_help(help_of("learn"), "--method")
    assert "--prefect" not in help_of("table")               # the table is always built in this process
    web_port = option_help(help_of("web"), "--port")
    assert "any free port" not in web_port and "1 to 65535" in web_port
    assert "0: any free port" in option_help(help_of("review"), "--port")
    runtime = option_help(help_of("embed"), "--runtime")
    assert "one of: auto, torch, bf16, fp16, onnx, onnx-int8" in runtime
