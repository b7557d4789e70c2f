"""The documentation a user reads: a short README, working links, generated benchmark tables."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

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


def benchmark_tables():
    """scripts/benchmark_tables.py as a module (a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("benchmark_tables", REPO / "scripts" / "benchmark_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_page_is_exactly_what_the_script_writes_from_the_committed_results(tmp_path, capsys):
    tables = benchmark_tables()
    written = tmp_path / "benchmarks.md"
    assert tables.main(["--out", str(written)]) == 0
    assert written.read_text() == (REPO / "docs" / "benchmarks.md").read_text()
    assert tables.main(["--check"]) == 0


def test_every_results_file_has_its_section_with_its_date_command_and_settings():
    page = (REPO / "docs" / "benchmarks.md").read_text()
    sections = dict(re.findall(r"^## (\S+)\n(.*?)(?=^## |\Z)", page, flags=re.M | re.S))
    results = sorted((REPO / "bench" / "results").glob("*.json"))
    assert results and set(sections) == {path.stem for path in results}
    for path in results:
        report, section = json.loads(path.read_text()), sections[path.stem]
        assert f"- date: {report['date']}" in section and f"- command: `{report['command']}`" in section, path
        for key, value in report.items():
            if isinstance(value, (int, float, str)) and key not in ("bench", "date", "machine", "command"):
                shown = value if isinstance(value, str) else json.dumps(value)  # numbers exactly as stored
                assert f"- {key}: {shown}\n" in section, f"{path.name}: {key}"


def test_check_fails_on_a_stale_page_and_a_bad_report_is_named(tmp_path, capsys):
    tables = benchmark_tables()
    results = tmp_path / "results"
    results.mkdir()
    (results / "speed.json").write_text(json.dumps({"bench": "speed", "date": "2026-01-02", "images_per_s": 3.5}))
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\n- images_per_s: 9.9\n")  # a figure typed by hand
    assert tables.main(["--check", "--results", str(results), "--out", str(page)]) == 1
    assert "is out of date: run python3 scripts/benchmark_tables.py" in capsys.readouterr().err
    assert tables.main(["--results", str(results), "--out", str(page)]) == 0
    assert "- images_per_s: 3.5" in page.read_text() and "9.9" not in page.read_text()
    assert tables.main(["--check", "--results", str(results), "--out", str(page)]) == 0
    (results / "broken.json").write_text("[1, 2]")
    with pytest.raises(SystemExit, match=r"broken\.json: expected a JSON object, got list"):
        tables.main(["--check", "--results", str(results), "--out", str(page)])
