"""Every third-party import is declared: a fresh `pip install -r requirements*.txt` brings each module that
app.py, app_pages/, mnist_core/, bench/ or tests/ import. A package installed by hand on one machine once
hid such a gap (babel, vl-convert-python): this test asks importlib.metadata, so it fails on every machine,
including one where the package happens to be installed."""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ["app.py", "app_pages", "mnist_core", "bench", "tests"]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file, following `-r` includes (options like `-e .` skipped)."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line.startswith("-r"):
            lines += requirement_lines(path.parent / line[2:].strip())
        elif line and not line.startswith("-"):
            lines.append(line)
    return lines


def dist_name(requirement: str) -> str:
    return norm(re.split(r"[\s\[<>=!~;@(]", requirement, maxsplit=1)[0])


def installed_closure(names: set[str]) -> set[str]:
    """The named distributions and everything they require (extras excluded: pip does not install them)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo += [dist_name(r) for r in requires if "extra ==" not in r]
    return seen


def imported_modules() -> dict[str, set[str]]:
    """Top-level module -> the files importing it, for every absolute import in the scanned code."""
    found: dict[str, set[str]] = {}
    files = [p for entry in SCANNED for p in ([ROOT / entry] if entry.endswith(".py") else (ROOT / entry).rglob("*.py"))]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def own_modules() -> set[str]:
    """The project's own top-level names: its packages, and the modules beside the scripts and tests."""
    names = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} | {"app_pages"}
    return names | {p.stem for entry in ("bench", "tests") for p in (ROOT / entry).glob("*.py")} | {"app"}


def declared() -> set[str]:
    return {dist_name(r) for f in ("requirements.txt", "requirements-dev.txt") for r in requirement_lines(ROOT / f)}


def undeclared(names: set[str]) -> dict[str, tuple[list[str], list[str]]]:
    """Imported module -> (its distributions, files importing it), for each module that installing the
    distributions `names` (and what they require) would not bring."""
    covered, owners, missing = installed_closure(names), md.packages_distributions(), {}
    for module, files in imported_modules().items():
        if module in sys.stdlib_module_names or module in own_modules():
            continue
        dists = {norm(d) for d in owners.get(module, [])}
        if not dists & covered:  # not installed at all, or installed but by nothing a newcomer installs
            missing[module] = (sorted(dists) or ["(not installed)"], sorted(files)[:3])
    return missing


def test_every_third_party_import_comes_from_a_declared_distribution():
    missing = undeclared(declared())
    assert not missing, "imports a fresh install would not bring; add their distribution to requirements*.txt: " + \
        "; ".join(f"{m} from {', '.join(d)} in {', '.join(f)}" for m, (d, f) in sorted(missing.items()))


def test_the_check_catches_an_undeclared_package_that_is_installed():
    """babel is installed here; left out of the requirements, the check must name it (as it would have
    when babel was installed by hand and CI was green)."""
    assert set(undeclared(declared() - {"babel"})) == {"babel"}
    assert "vl_convert" in undeclared(declared() - {"vl-convert-python"})


def test_every_requirement_has_a_version_known_to_work():
    for f in ("requirements.txt", "requirements-dev.txt"):
        for line in requirement_lines(ROOT / f):
            assert re.search(r"(==|>=)\s*\d", line), f"{f}: {line!r} needs a lower bound (>=) or a pin (==)"
