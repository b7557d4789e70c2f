"""Write docs/benchmarks.md from the benchmark reports in bench/results/*.json.

Every bench in bench/ prints one JSON report and, given `--json bench/results/<name>.json`, keeps it there
(see bench/common.py: `bench`, `date`, `machine`, `torch_threads`, `command`, then the bench's own fields).
This script turns each report into a section of docs/benchmarks.md, so that no figure in that page is
typed by hand:

- top-level scalars (and lists of scalars) become a short "settings" list above the tables;
- a dict of rows (a dict whose values are all dicts) becomes a table with one row per key and the union
  of the rows' flattened fields as columns (nested keys joined with '.');
- a list of dicts becomes a table with one row per item;
- any other dict becomes a two-column table of its flattened fields.

    python3 scripts/benchmark_tables.py            # (re)write docs/benchmarks.md
    python3 scripts/benchmark_tables.py --check    # exit 1 if docs/benchmarks.md is not what it would write

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
BENCH = REPO / "bench"
OUT = REPO / "docs" / "benchmarks.md"

# fields every report carries (bench/common.py: publish); shown in the section's header, not as settings
HEADER_FIELDS = ("bench", "date", "machine", "command")


def is_scalar(value: Any) -> bool:
    """True for JSON scalars and for lists that hold only scalars (shown joined by commas)."""
    if isinstance(value, list):
        return all(not isinstance(item, (dict, list)) for item in value)
    return not isinstance(value, dict)


def cell(value: Any) -> str:
    """One value as markdown table text: numbers as JSON writes them, lists joined, pipes escaped."""
    if isinstance(value, list):
        text = ", ".join(cell(item) for item in value)
    elif value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value)  # true/false, and numbers exactly as stored
    return text.replace("|", "\\|").replace("\n", " ")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as one level: {"a": {"b": 1}} -> {"a.b": 1}; lists of dicts are indexed (a.0.b)."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and not is_scalar(value):
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix: value}


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def rows_table(label: str, rows: list[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """One row per (name, record); columns: the union of the records' flattened fields, first seen first."""
    flat_rows = [(name, flatten(record)) for name, record in rows]
    columns: list[str] = []
    for _, flat in flat_rows:
        columns += [key for key in flat if key not in columns]
    body = [[cell(name), *(cell(flat.get(column)) for column in columns)] for name, flat in flat_rows]
    return table([label, *columns], body)


def section_tables(name: str, value: Any) -> list[str]:
    """The markdown for one non-scalar top-level field of a report."""
    lines = [f"**{name}**", ""]
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        lines += rows_table(name, [(str(key), row) for key, row in value.items()])
    elif isinstance(value, list):  # a list holding dicts (a list of scalars is a setting)
        rows = [(str(i), item if isinstance(item, dict) else {"value": item}) for i, item in enumerate(value)]
        lines += rows_table("#", rows)
    else:
        lines += table(["field", "value"], [[cell(k), cell(v)] for k, v in flatten(value).items()])
    return [*lines, ""]


def report_section(path: Path, report: Mapping[str, Any]) -> list[str]:
    """The section of one results file: its header fields, a settings list, then its tables."""
    title = path.stem  # the file's name: one bench may keep several files (e.g. one per model)
    lines = [f"## {title}", ""]
    lines += [f"- file: `{path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path}`"]
    for field in HEADER_FIELDS[1:]:
        if field in report:
            shown = f"`{report[field]}`" if field == "command" else cell(report[field])
            lines.append(f"- {field}: {shown}")
    lines.append("")
    rest = {k: v for k, v in report.items() if k not in HEADER_FIELDS}
    settings = {k: v for k, v in rest.items() if is_scalar(v)}
    if settings:
        lines += ["Settings:", ""]
        lines += [f"- {key}: {cell(value)}" for key, value in settings.items()]
        lines.append("")
    for key, value in rest.items():
        if not is_scalar(value):
            lines += section_tables(key, value)
    return lines


def load_reports(results: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every results file, sorted by name; a file that is not a JSON object is an error naming it."""
    reports = []
    for path in sorted(results.glob("*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"error: {path}: not a readable JSON report ({exc})") from None
        if not isinstance(report, dict):
            raise SystemExit(f"error: {path}: expected a JSON object, got {type(report).__name__}")
        reports.append((path, report))
    return reports


def benches_without_results(bench: Path, reports: list[tuple[Path, dict[str, Any]]]) -> list[str]:
    """Bench scripts (files in bench/ with a __main__ block) that no results file reports: none named
    bench/results/<name>.json and none whose `bench` field names it (one bench may keep several files, e.g.
    one per device: vs_original_cpu.json)."""
    reported = {path.stem for path, _ in reports} | {str(report.get("bench")) for _, report in reports}
    names = []
    for script in sorted(bench.glob("*.py")):
        if "__main__" in script.read_text(encoding="utf-8") and script.stem not in reported:
            names.append(script.stem)
    return names


def render(results: Path = RESULTS, bench: Path = BENCH) -> str:
    """The whole of docs/benchmarks.md."""
    reports = load_reports(results)
    machines: dict[str, list[str]] = {}
    for path, report in reports:
        where = str(report.get("machine", "unknown machine"))
        if "torch_threads" in report:
            where += f", {report['torch_threads']} torch threads"
        machines.setdefault(where, []).append(path.stem)
    lines = [
        "# Benchmarks",
        "",
        "<!-- generated by scripts/benchmark_tables.py from bench/results/*.json: do not edit by hand -->",
        "",
        "The scripts in `bench/` measure posedraw's speed and quality (pose fidelity read back by the toy",
        "detector, prompt fidelity read back by the toy attribute judge, seconds per image, ...). Each",
        "prints one JSON report; with `--json bench/results/<name>.json` it keeps it. Every table on this page is",
        "generated by `python3 scripts/benchmark_tables.py` from those files, never typed by hand. To rerun a",
        "bench, run the `command` of its section (from the repository root, in the project's virtual",
        "environment), then rerun `python3 scripts/benchmark_tables.py`; `--check` exits 1 when this page is",
        "not what the script would write.",
        "",
        "`machine` is the processor as Python's `platform.processor()` names it and `torch_threads` the CPU",
        "threads torch used. The current files were measured on:",
        "",
    ]
    lines += [f"- {where}: {', '.join(names)}" for where, names in machines.items()] or ["- (no results yet)"]
    missing = benches_without_results(bench, reports)
    if missing:
        lines += [
            "",
            "Benches with no file in `bench/results/` (they print their report; no figures of theirs are kept",
            "here):",
            "",
        ]
        lines += [f"- `bench/{name}.py`" for name in missing]
    lines.append("")
    for path, report in reports:
        lines += report_section(path, report)
    return "\n".join(lines).rstrip("\n") + "\n"


def _umask() -> int:
    """The process's file-creation mask (read by setting it and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file next to `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; give the page the usual permissions
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """Write (or, with --check, compare) the benchmarks page; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs from what would be written")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON reports")
    parser.add_argument("--out", type=Path, default=OUT, help="the markdown page")
    args = parser.parse_args(argv)
    text = render(args.results)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            print(f"{args.out} is out of date: run python3 scripts/benchmark_tables.py", file=sys.stderr)
            return 1
        return 0
    write_atomically(args.out, text)
    print(f"wrote {args.out} ({len(text)} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
