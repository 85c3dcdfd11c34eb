"""Session fixtures shared by every test directory.

``control_plane`` starts one real local Kubernetes control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok) the first time a test asks for it and stops it when the
session ends, also on failure or Ctrl-C; ``kubeconfig`` is the admin kubeconfig path. Integration and
e2e tests use these; unit tests never do, so they never pay for a cluster. While the control plane
runs, ``KUBECONFIG`` points at it so clients that read the environment (kr8s, kubernetes) find it.
``kube`` is a client for it with nodesmith's CRDs (and the plugins') installed; a module may define its
own. Async tests run on asyncio (``anyio_backend``).
"""

from __future__ import annotations

import collections.abc
import functools
import pathlib

import pytest

from nodesmith import errors
from nodesmith.dev import binaries
from nodesmith.kube.client import KubeClient
from nodesmith.runtime import crds
from nodesmith.testing import cluster as testing_cluster
from nodesmith.testing import faults


def _live_progress(config: pytest.Config, label: str) -> binaries.Progress:
    """Progress lines, prefixed ``label``, that reach the terminal even while pytest captures output (a
    cold build takes minutes and should not look like a hang)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    emit = binaries.stderr_progress(label)

    def progress(message: str) -> None:
        if capture is None:
            emit(message)
            return
        with capture.global_and_fixture_disabled():
            emit(message)

    return progress


@pytest.fixture(scope="session")
def live_progress(pytestconfig: pytest.Config) -> collections.abc.Callable[[str], binaries.Progress]:
    """``live_progress(label)``: a progress callback for long builds and cluster starts that prints past
    pytest's capture (the in-cluster e2e's image build and cluster use it too)."""
    return functools.partial(_live_progress, pytestconfig)


@pytest.fixture(scope="session")
def control_plane(pytestconfig: pytest.Config) -> collections.abc.Iterator[testing_cluster.ControlPlane]:
    try:
        with (
            testing_cluster.start_local_cluster(
                progress=_live_progress(pytestconfig, "nodesmith test cluster")
            ) as plane,
            pytest.MonkeyPatch.context() as patch,
        ):
            patch.setenv("KUBECONFIG", str(plane.kubeconfig))
            yield plane
    except errors.NodesmithError as err:
        pytest.fail(f"local control plane unavailable:\n{err}", pytrace=False)


@pytest.fixture(scope="session")
def kubeconfig(control_plane: testing_cluster.ControlPlane) -> pathlib.Path:
    return control_plane.kubeconfig


@pytest.fixture
async def kube(kubeconfig: pathlib.Path) -> KubeClient:
    client = await KubeClient.connect(kubeconfig)
    await crds.install(client, crds.all_crds())
    return client


@pytest.fixture(scope="session")
def apiserver(
    control_plane: testing_cluster.ControlPlane,
) -> collections.abc.Iterator[faults.ApiServerRestarter]:
    """Stops and restarts the session's kube-apiserver (one restarter for the session: it tracks the
    process it started last)."""
    if control_plane.cluster is None:
        pytest.fail(
            "restarting kube-apiserver needs the control plane this session starts (unset NODESMITH_TEST_KUBECONFIG)"
        )
    restarter = faults.ApiServerRestarter(control_plane.cluster)
    yield restarter
    restarter.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
