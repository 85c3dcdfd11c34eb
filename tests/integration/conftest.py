"""Fixtures every integration test shares: the anyio backend, and a Kubernetes client for the session's
control plane with nodesmith's CRDs (and the plugins') installed. A module may define its own ``kube``."""

from __future__ import annotations

import pathlib

import pytest

from nodesmith.kube.client import KubeClient
from nodesmith.runtime import crds


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def kube(kubeconfig: pathlib.Path) -> KubeClient:
    client = await KubeClient.connect(kubeconfig)
    await crds.install(client, crds.all_crds())
    return client
