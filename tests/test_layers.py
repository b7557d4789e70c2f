"""The dependency order docs/architecture.md draws, checked on every import in the package.

A module may import its own package and any package on a lower layer, never one on its own layer
(siblings stay independent) or above: that keeps e.g. the pipelines usable without the training code
and the studio out of everything but the CLI. Imports inside functions count too (lazy imports are a
speed choice, not a licence to cross the order).
"""

from __future__ import annotations

import ast
from pathlib import Path

import posedraw

PACKAGE = Path(posedraw.__file__).parent

#: Layer of each part of posedraw, lowest first (the order docs/architecture.md draws).
LAYERS: dict[str, int] = {
    "errors": 0,
    **dict.fromkeys(["io", "progress", "devices", "config", "configs_path", "builtin"], 1),
    "pose": 2,
    **dict.fromkeys(["models", "losses"], 3),
    "data": 4,
    "pipelines": 5,
    **dict.fromkeys(["eval", "tuning", "compat"], 6),
    "train": 7,
    "studio": 8,
    "demo": 9,
    "cli": 10,
}


def part_of(module: str) -> str | None:
    """The part of posedraw a dotted module name belongs to (None outside posedraw or for the root)."""
    names = module.split(".")
    return names[1] if names[0] == "posedraw" and len(names) > 1 else None


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every posedraw module the file imports, with its line, at any depth of the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, name) for line, name in found if part_of(name)]


def crossings(path: Path) -> list[str]:
    """The imports of one file that go sideways or up the order."""
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if own == "__init__":
        return []
    bad = []
    for line, module in imported_modules(path):
        target = part_of(module)
        if target != own and LAYERS[target] >= LAYERS[own]:
            bad.append(f"{path.relative_to(PACKAGE)}:{line}: {own} (layer {LAYERS[own]}) imports {module}")
    return bad


def test_every_part_of_the_package_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert modules | packages == set(LAYERS)


def test_no_import_goes_sideways_or_up_the_dependency_order():
    bad = [line for path in sorted(PACKAGE.rglob("*.py")) for line in crossings(path)]
    assert not bad, "\n".join(bad)


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a models module importing the studio is a crossing, a pose import is not."""
    fake = tmp_path / "models" / "x.py"
    fake.parent.mkdir()
    lines = ["import os", "from posedraw.pose import Pose", "def f():", "    from posedraw.studio.app import Studio"]
    fake.write_text("\n".join(lines))
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    assert crossings(fake) == ["models/x.py:4: models (layer 3) imports posedraw.studio.app"]
