"""The documentation a user reads: a short README, working links, generated benchmark tables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_readme_is_short_and_holds_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert len(readme) <= 12_500
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in readme  # the test command is exactly what CI runs
    assert "posedraw generate --pose-dir examples/poses" in readme


def test_no_page_points_outside_the_repository_or_at_the_issue_tracker():
    for page in PAGES:
        text = page.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, page
        assert not re.search(r"\bissue (#?\d+|'s target)", text), page


def test_every_relative_link_resolves():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_the_benchmark_page_is_generated_from_the_committed_results():
    script = REPO / "scripts" / "benchmark_tables.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
