"""Provider conformance: the behaviour every `CloudProvider` must show, as a reusable pytest suite.

The core relies on each provider's error contract (`nodesmith.cloudprovider.protocol`): ``create``
returns a hydrated NodeClaim, ``get``/``list`` find it, ``delete`` converges to
`NodeClaimNotFoundError`, instance types define the well-known labels and their offerings name a zone
and a capacity type, and an impossible launch fails with `InsufficientCapacityError` or `CreateError`.
This module checks exactly that, for any provider, first-party (aws, kwok) or third-party.

How to run it against your provider::

    import pytest
    from nodesmith.testing import conformance

    class TestMyProviderConformance(conformance.ProviderConformance):
        @pytest.fixture
        async def conformance_harness(self):
            provider = ...  # ready to launch: NodeClass resolved, credentials or fakes in place
            yield conformance.Harness(provider=provider, nodepool=conformance.nodepool("default", ref))
            await provider.close()  # if it has one

(with anyio's pytest plugin and an ``anyio_backend`` fixture returning ``"asyncio"``). The suite launches
a handful of machines, deletes each one it launched, and never sleeps longer than ``Harness.delete_poll``
between delete attempts.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs
import pytest

from nodesmith import errors
from nodesmith.api import labels
from nodesmith.api.meta import NodeClassRef
from nodesmith.api.nodeclaim import NodeClaim
from nodesmith.api.nodepool import NodePool
from nodesmith.cloudprovider.protocol import REQUIRED_MEMBERS, CloudProvider

__all__ = ["Harness", "ProviderConformance", "delete_until_gone", "nodeclaim", "nodepool"]

_names = itertools.count(1)

REQUIRED_LABELS = (
    labels.LABEL_INSTANCE_TYPE,
    labels.LABEL_ARCH,
    labels.LABEL_OS,
    labels.LABEL_ZONE,
    labels.LABEL_CAPACITY_TYPE,
)


def nodepool(name: str, ref: NodeClassRef, requirements: Sequence[Mapping[str, Any]] = ()) -> NodePool:
    """A minimal NodePool referencing ``ref``."""
    return NodePool.from_dict(
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodePool",
            "metadata": {"name": name},
            "spec": {
                "template": {
                    "spec": {"nodeClassRef": ref.to_dict(), "requirements": [dict(r) for r in requirements]}
                }
            },
        }
    )


def nodeclaim(
    pool: NodePool, requirements: Sequence[Mapping[str, Any]] = (), name: str | None = None
) -> NodeClaim:
    """A NodeClaim as the provisioner would write it for ``pool``: the pool's labels and requirements
    plus ``requirements``, a small resource request."""
    template = pool.spec.template.spec
    return NodeClaim.from_dict(
        {
            "apiVersion": "nodesmith.io/v1",
            "kind": "NodeClaim",
            "metadata": {"name": name or f"conformance-{next(_names)}", "labels": pool.labels},
            "spec": {
                "nodeClassRef": template.node_class_ref.to_dict(),
                "requirements": [r.to_dict() for r in template.requirements]
                + [dict(r) for r in requirements],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi", "pods": "1"}},
            },
        }
    )


@attrs.frozen
class Harness:
    """What the suite needs: a ready provider and a NodePool whose NodeClass it can launch from."""

    provider: CloudProvider
    nodepool: NodePool
    requirements: Sequence[Mapping[str, Any]] = ()
    """Extra requirements for every launch (e.g. to keep a real cloud to cheap types)."""
    impossible: Sequence[Mapping[str, Any]] = (
        {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": ["no-such-instance-type"]},
    )
    """Requirements no offering can meet."""
    delete_attempts: int = 30
    delete_poll: float = 0.2


async def delete_until_gone(
    provider: CloudProvider, claim: NodeClaim, attempts: int = 30, poll: float = 0.2
) -> None:
    """Call ``delete`` until it raises `NodeClaimNotFoundError`, as the core's termination does."""
    for _ in range(attempts):
        try:
            await provider.delete(claim)
        except errors.NodeClaimNotFoundError:
            return
        await anyio.sleep(poll)
    raise AssertionError(f"delete never raised NodeClaimNotFoundError for {claim.status.provider_id}")


class ProviderConformance:
    """Subclass as ``Test<Provider>Conformance`` and provide the ``conformance_harness`` fixture."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    # -- shape ---------------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_implements_every_member(self, conformance_harness: Harness) -> None:
        missing = [m for m in REQUIRED_MEMBERS if not hasattr(conformance_harness.provider, m)]
        assert not missing
        assert isinstance(conformance_harness.provider.name, str)
        assert conformance_harness.provider.name
        assert conformance_harness.provider.supported_node_classes()
        assert isinstance(list(conformance_harness.provider.repair_policies()), list)

    @pytest.mark.anyio
    async def test_instance_types_define_well_known_labels_and_priced_offerings(
        self, conformance_harness: Harness
    ) -> None:
        types = await conformance_harness.provider.get_instance_types(conformance_harness.nodepool)
        assert types, "a ready NodeClass must yield instance types"
        for it in types:
            for key in REQUIRED_LABELS:
                assert key in it.requirements, f"{it.name} does not define {key}"
            assert it.requirements.get(labels.LABEL_INSTANCE_TYPE).has(it.name)
            for name, amount in it.allocatable.items():
                assert 0 <= amount <= it.capacity.get(name, 0), (
                    f"{it.name}: allocatable {name} exceeds capacity"
                )
            for offering in it.offerings:
                assert (
                    it.requirements.get(labels.LABEL_CAPACITY_TYPE).has(offering.capacity_type)
                    or not offering.available
                )
                assert offering.zone
                assert offering.price >= 0
        assert any(o.available for it in types for o in it.offerings), "no offering is available"

    # -- lifecycle -------------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_create_get_list_delete(self, conformance_harness: Harness) -> None:
        h = conformance_harness
        claim = nodeclaim(h.nodepool, h.requirements)
        created = await h.provider.create(claim)
        try:
            provider_id = created.status.provider_id
            assert provider_id, "create must set status.providerID"
            assert created.name == claim.name
            for key in (labels.LABEL_INSTANCE_TYPE, labels.LABEL_ZONE, labels.LABEL_CAPACITY_TYPE):
                assert created.metadata.labels.get(key), f"create must label {key}"
            assert claim.requirements.get(labels.LABEL_CAPACITY_TYPE).has(
                created.metadata.labels[labels.LABEL_CAPACITY_TYPE]
            )
            for resource in ("cpu", "memory", "pods"):
                assert created.status.capacity.get(resource, 0) > 0, f"capacity must include {resource}"
                assert 0 < created.status.allocatable.get(resource, 0) <= created.status.capacity[resource]

            found = await h.provider.get(provider_id)
            assert found.status.provider_id == provider_id
            assert (
                found.metadata.labels.get(labels.LABEL_INSTANCE_TYPE)
                == created.metadata.labels[labels.LABEL_INSTANCE_TYPE]
            )
            listed = await h.provider.list()
            assert provider_id in {c.status.provider_id for c in listed}
            assert await h.provider.is_drifted(created) in (None, "")
        finally:
            await delete_until_gone(h.provider, created, h.delete_attempts, h.delete_poll)
        with pytest.raises(errors.NodeClaimNotFoundError):
            await h.provider.get(provider_id)
        assert provider_id not in {c.status.provider_id for c in await h.provider.list()}

    @pytest.mark.anyio
    async def test_create_with_impossible_requirements_fails_per_contract(
        self, conformance_harness: Harness
    ) -> None:
        h = conformance_harness
        claim = nodeclaim(h.nodepool, [*h.requirements, *h.impossible])
        with pytest.raises((errors.InsufficientCapacityError, errors.CreateError)):
            await h.provider.create(claim)

    @pytest.mark.anyio
    async def test_get_of_unknown_provider_id_raises_not_found(self, conformance_harness: Harness) -> None:
        with pytest.raises(errors.NodeClaimNotFoundError):
            await conformance_harness.provider.get("nowhere:///no-such-machine")
