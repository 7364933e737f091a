"""Every rules/*.yaml file is checked against a schema: a mistake is one line naming the
file, the key and the line (exit 2 from the CLI), never a traceback."""
from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from shoefind.cli.main import app
from shoefind.rules_schema import SCHEMAS, RulesError, parse_rules, schema_for
from shoefind.settings import load_rules
from shoefind.vocab import vocabularies
from tests.helpers import REPO, make_labeled_dataset

SHIPPED = sorted(p.stem for p in (REPO / "rules").glob("*.yaml"))


def test_every_shipped_rules_file_has_a_schema_and_passes_it():
    assert SHIPPED and all(schema_for(name) for name in SHIPPED)
    for name in SHIPPED:
        assert load_rules(name)


# (file, broken content, key named, line named)
WRONG = [
    ("vocabularies", "brand:\n  values: [Nike]\n  aliases:\n    Jordan: Jordan Brand\n", "brand", 1),
    ("vocabularies", "brand:\n  values: Nike\n", "brand.values", 2),
    ("vocabularies", "brnd:\n  values: [Nike]\n", "brnd", 1),
    ("crawl_rules", "automatic:\n  min_file_bytes: 5120\n  min_short_side: tall\n", "automatic.min_short_side", 3),
    ("crawl_rules", "semantic:\n  without_model: maybe\n", "semantic.without_model", 2),
    ("crawl_rules", "duplicates:\n  phash_max_distnce: 6\n", "duplicates.phash_max_distnce", 2),
    ("filter_prompts", "classes:\n  a:\n    prompts: [x]\n  b:\n    prompts: [y]\n", "classes", 1),
    ("crawl_shoes", "shoes:\n  - name: X\n    brand: Nike\n", "shoes.0.color", 2),
    ("search_engines", "g:\n  base_url: http://x\n  search_url: http://x\n  thumbnails: []\n  preview_image: [img]\n",
     "g.thumbnails", 4),
    ("change_benchmark", "templates:\n  - id: t\n    text: x\n    keep: [size]\n", "templates.0.keep.0", 4),
    ("prompts_shoefind", "attributes:\n  brand:\n    templates: a photo\n", "attributes.brand.templates", 3),
    ("retrieval_prompts", "text_weight: heavy\n", "text_weight", 1),
    ("change_phrases", "negations: 3\n", "negations", 1),
]


@pytest.mark.parametrize("name,content,key,line", WRONG)
def test_wrong_keys_and_types_name_file_key_and_line(tmp_path, name, content, key, line):
    path = tmp_path / f"{name}.yaml"
    with pytest.raises(RulesError) as info:
        parse_rules(path, content, name)
    assert str(info.value).startswith(f"{path} line {line}: {key}:"), str(info.value)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_malformed_yaml_is_one_clear_line(tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    with pytest.raises(RulesError, match=rf"{name}\.yaml line 2: not valid YAML"):
        parse_rules(path, "a: [1, 2\nb: {c\n", name)


@pytest.fixture
def broken_rules(tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    monkeypatch.setenv("SHOEFIND_RULES", str(rules))
    vocabularies.cache_clear()
    yield rules
    vocabularies.cache_clear()


@pytest.mark.parametrize("content,says", [
    ("brand:\n  values: [Nike\n", "vocabularies.yaml line 3: not valid YAML"),
    ("brand:\n  values: [Nike]\n  aliases: [Jordan]\n", "vocabularies.yaml line 3: brand.aliases:"),
])
def test_cli_exits_2_with_one_line(tmp_path, broken_rules, content, says):
    (broken_rules / "vocabularies.yaml").write_text(content)
    result = CliRunner().invoke(app, ["table", str(make_labeled_dataset(tmp_path / "ds", 1)),
                                      "--data-dir", str(tmp_path / "data")])
    text = "".join(result.output.split())   # rich wraps long paths anywhere
    assert result.exit_code == 2 and "".join(says.split()) in text and "Traceback" not in text, result.output
