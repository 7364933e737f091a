"""The trained test models are keyed by version constants and rules, never by source bytes: editing a
comment or moving code trains nothing (tests/helpers/trained_models.py)."""
from pathlib import Path

from tests.helpers import trained_models


def test_the_key_reads_rules_files_only(monkeypatch):
    read = []
    original = Path.read_bytes

    def recording(self):
        read.append(self)
        return original(self)
    monkeypatch.setattr(Path, "read_bytes", recording)
    key = trained_models.model_key(trained_models.DEMO_SETTINGS)
    assert len(key) == 16
    assert read and all(p.suffix == ".yaml" and p.parent.name == "rules" for p in read), read


def test_a_bumped_version_or_setting_is_another_model(monkeypatch):
    import shoefind.learn.lit as lit
    base = trained_models.model_key(trained_models.DEMO_SETTINGS)
    assert trained_models.model_key(trained_models.DEMO_SETTINGS | {"seed": 1}) != base
    monkeypatch.setattr(lit, "TRAINING_VERSION", lit.TRAINING_VERSION + 1)
    assert trained_models.model_key(trained_models.DEMO_SETTINGS) != base


def test_every_version_constant_exists():
    assert len(trained_models.versions()) == len(trained_models.VERSIONS)
