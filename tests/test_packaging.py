"""What the running program imports is installed by `pip install .`: every third-party module that a package of
ours imports, at the top or inside a function, comes from a distribution named in `[project.dependencies]`. The
`test` extra installs more, so the suite itself would never notice a missing one (`make smoke` checks the same from
the outside)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ("core", "nlp", "bots", "ivr", "admin")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_module_the_program_imports_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {canonical(re.match(r"[A-Za-z0-9._-]+", req).group(0)) for req in project["dependencies"]}
    owners = packages_distributions()
    missing: dict[str, str] = {}
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            for module in imported_modules(path) - set(OURS) - set(sys.stdlib_module_names) - {"__future__"}:
                dists = {canonical(d) for d in owners.get(module, [])}
                if not dists & declared:
                    missing.setdefault(module, str(path.relative_to(ROOT)))
    assert not missing, f"imported but not in [project.dependencies]: {missing}"


def test_the_check_sees_an_undeclared_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom jsonschema import validate\n\ndef f():\n    import scipy.sparse\n")
    assert imported_modules(source) == {"os", "jsonschema", "scipy"}
