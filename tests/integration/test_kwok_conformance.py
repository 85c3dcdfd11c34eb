"""The kwok provider passes the same provider conformance suite as the AWS one, on the real control plane."""

from __future__ import annotations

import collections.abc
import contextlib
import pathlib
import uuid

import pytest

from nodesmith.api.meta import NodeClassRef
from nodesmith.cloudprovider import manager
from nodesmith.cloudprovider.protocol import ProviderContext
from nodesmith.kube import errors as kube_errors
from nodesmith.kube.client import KubeClient
from nodesmith.runtime import crds
from nodesmith.testing import conformance
from nodesmith_kwok import nodeclass
from nodesmith_kwok import provider as kwok_provider

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


class TestKWOKConformance(conformance.ProviderConformance):
    @pytest.fixture
    async def conformance_harness(
        self, kubeconfig: pathlib.Path
    ) -> collections.abc.AsyncIterator[conformance.Harness]:
        kube = await KubeClient.connect(kubeconfig)
        await crds.install(kube, crds.all_crds())
        name = f"conformance-{uuid.uuid4().hex[:6]}"
        await kube.create(kwok_provider.NODE_CLASSES, {"metadata": {"name": name}, "spec": {}})
        provider = manager.Plugins.load().cloud_provider(
            "kwok", ProviderContext(cluster_name="test", kube=kube)
        )
        ref = NodeClassRef(nodeclass.GROUP, nodeclass.KIND, name)
        yield conformance.Harness(provider=provider, nodepool=conformance.nodepool(name, ref))
        with contextlib.suppress(kube_errors.NotFoundError):
            await kube.delete(kwok_provider.NODE_CLASSES, name)
