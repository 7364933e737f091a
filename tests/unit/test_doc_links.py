"""Every local link in the README and the docs points at a file of the checkout (the README once linked
docs/learning-loop.md before it existed)."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_local_links_resolve():
    pages = [REPO / "README.md", REPO / "data" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    missing = [f"{page.relative_to(REPO)} -> {link}" for page in pages
               for link in re.findall(r"\]\(([^)#\s]+)\)", page.read_text())
               if not link.startswith(("http://", "https://", "mailto:")) and not (page.parent / link).exists()]
    assert not missing, missing
