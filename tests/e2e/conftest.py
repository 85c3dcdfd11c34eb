"""Fixtures for end-to-end scenarios: a namespace and a KWOKNodeClass per test, and `nodesmith run`
processes that are always stopped (``kube``, the client with the CRDs installed, is in tests/conftest.py)."""

from __future__ import annotations

import collections.abc
import contextlib
import pathlib
import uuid

import pytest

from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e


@pytest.fixture
def name() -> str:
    """A short unique name for this test's objects."""
    return f"e2e-{uuid.uuid4().hex[:6]}"


@pytest.fixture
async def namespace(kube: KubeClient, name: str) -> collections.abc.AsyncIterator[str]:
    await e2e.create_namespace(kube, name)
    yield name
    with contextlib.suppress(kube_errors.NotFoundError):
        await kube.delete(resources.NAMESPACES, name)


@pytest.fixture
async def node_class(kube: KubeClient, name: str) -> collections.abc.AsyncIterator[str]:
    await kube.create(e2e.KWOK_NODE_CLASSES, {"metadata": {"name": name}, "spec": {}})
    yield name
    with contextlib.suppress(kube_errors.NotFoundError):
        await kube.delete(e2e.KWOK_NODE_CLASSES, name)


@pytest.fixture
def daemons(
    kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> collections.abc.Iterator[collections.abc.Callable[..., e2e.DaemonProcess]]:
    """Start `nodesmith run` processes (``daemons(*extra_flags)``); all are stopped after the test."""
    started: list[e2e.DaemonProcess] = []

    def start(*extra: str) -> e2e.DaemonProcess:
        daemon = e2e.DaemonProcess(kubeconfig, tmp_path / f"nodesmith-{len(started)}.log", *extra).start()
        started.append(daemon)
        return daemon

    yield start
    for index, daemon in enumerate(started):
        daemon.stop()
        print(f"--- nodesmith #{index} log (last lines) ---\n{daemon.tail(60)}")  # shown when the test fails
