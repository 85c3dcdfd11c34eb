"""The package's front door exports exactly what ``__all__`` says, and the package stays pure."""

from __future__ import annotations

import ast
from pathlib import Path

import nodesmith.scheduling as scheduling

FORBIDDEN = {"logging", "asyncio", "anyio", "time", "datetime", "random", "socket", "os", "kr8s", "httpx"}


def test_all_names_exist_and_nothing_public_is_missing() -> None:
    assert sorted(scheduling.__all__) == sorted(set(scheduling.__all__))
    for name in scheduling.__all__:
        assert hasattr(scheduling, name), name


def test_scheduling_imports_only_api_cloudprovider_and_itself() -> None:
    package = Path(scheduling.__file__).parent
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                assert root not in FORBIDDEN, f"{path.name} imports {name}"
                if root == "nodesmith":
                    assert name.split(".")[1] in ("api", "cloudprovider", "scheduling"), (
                        f"{path.name} imports {name}"
                    )
