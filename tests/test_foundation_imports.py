"""Every third-party module that the package, the tests or the benchmarks import is declared in
pyproject.toml: a fresh machine installs only what is declared."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Import names whose distribution is named otherwise, for when it is not installed here.
ALIASES = {"PIL": "pillow", "skimage": "scikit-image", "yaml": "pyyaml"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    proj = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(proj["dependencies"])
    for extra in proj.get("optional-dependencies", {}).values():
        reqs += extra
    return {_norm(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in reqs}


def _imports() -> dict[str, set[str]]:
    local = {p.name for p in REPO.iterdir() if p.is_dir()}
    for d in ("tests", "benchmarks"):
        local |= {p.stem for p in (REPO / d).glob("*.py")}
    found: dict[str, set[str]] = {}
    for d in ("study", "analysis", "hit_templates", "tests", "benchmarks"):
        for f in (REPO / d).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(), str(f))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in local or top == "__future__":
                        continue
                    found.setdefault(top, set()).add(str(f.relative_to(REPO)))
    return found


def test_every_imported_module_is_declared():
    declared = _declared()
    dists = md.packages_distributions()
    missing = {}
    for top, files in _imports().items():
        names = {_norm(d) for d in dists.get(top, [])} | {_norm(ALIASES.get(top, top))}
        if not names & declared:
            missing[top] = sorted(files)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
