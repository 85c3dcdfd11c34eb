"""The unit tier never starts a control plane: collecting a test here that needs one (directly or through
another fixture, such as ``kube`` or ``kubeconfig``) is an error that names it. Such a test belongs in
``tests/integration``.

Once collection is done, what it left (every module imported, every test item) is moved out of the
cyclic garbage collector's sight (`gc.freeze`): it lives until the session ends anyway, and otherwise
every full collection walks those hundreds of thousands of objects again, which made the collector a
large share of allocation-heavy tests' time (instance-type lists, hypothesis examples).
"""

from __future__ import annotations

import gc
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


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    gc.collect()  # garbage is collected first, not frozen
    gc.freeze()
