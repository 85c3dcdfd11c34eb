"""The unit tier never starts a control plane: collecting a test here that needs one (directly or through
another fixture, such as ``kube`` or ``kubeconfig``) is an error that names it. Such a test belongs in
``tests/integration``."""

from __future__ import annotations

import pathlib

import pytest

UNIT = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    offenders = [
        item.nodeid
        for item in items
        if UNIT in item.path.parents and "control_plane" in getattr(item, "fixturenames", ())
    ]
    if offenders:
        raise pytest.UsageError(
            "unit tests must not need the local control plane; move them to tests/integration: "
            + ", ".join(offenders)
        )
