"""Rules about the code's shape that import-linter cannot express."""

from __future__ import annotations

import ast
from pathlib import Path

import nodesmith

PACKAGE = Path(nodesmith.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_runtime_uses_the_opentelemetry_sdk() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "runtime" not in path.relative_to(PACKAGE).parts
        and any(
            name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk.") for name in _imports(path)
        )
    ]
    assert offenders == []


def test_simulation_packages_say_they_are_pure() -> None:
    for package in ("scheduling", "disruption"):
        init = PACKAGE / package / "__init__.py"
        if init.exists() and init.read_text().strip():
            docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
            assert "no I/O" in docstring, (
                f"nodesmith/{package}/__init__.py must open with its purity statement"
            )
