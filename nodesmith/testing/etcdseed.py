"""Objects written straight into a local control plane's etcd, for benchmarks that need more objects than
the API server can create in the time a benchmark has.

Why: on a small machine the API server creates a few dozen objects a second (admission, defaulting,
validation, and kwok's status writes compete for the same CPU), so 10,000 nodes and 150,000 pods would
take over an hour. etcd itself takes thousands of puts a second. kube-apiserver reads whatever is under
its storage prefix: it decodes JSON values as well as its own protobuf, defaults them on read and learns
of new keys through its etcd watch, so everything written here is then listed and watched through the
API server exactly as if it had been created there.

What the caller owns: the objects must be what the API server would have stored -- ``apiVersion``,
``kind``, ``metadata.uid``, ``metadata.creationTimestamp`` set, no ``resourceVersion`` (etcd's revision
becomes it). The usual way is `stamped`: take one object created through the API (and made Ready/Running
by kwok), then vary its name and the few fields that must differ. Nothing here validates objects; a
malformed one fails when the API server decodes it, not when it is written.

Consumed by ``tests/bench/bench_cluster.py --seed etcd``. Talks to etcd's v3 HTTP/JSON gateway (the
same client port, ``/v3/kv/txn``) with httpx, on loopback only.
"""

from __future__ import annotations

import base64
import copy
import json
import pathlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import anyio
import httpx

#: Puts per transaction: etcd's default ``--max-txn-ops``. Every object of one transaction shares its
#: etcd revision, hence its resourceVersion, which no real cluster produces; one put per transaction
#: avoids that but the API server, decoding every revision through its watch, then takes ~130 a
#: second here against ~1,500 objects a second in transactions of 128.
TXN_OPS = 128
#: Concurrent transactions in flight.
WORKERS = 8

#: Storage key prefixes that are not the resource's plural (Nodes keep their historical name).
_PREFIX = {"nodes": "minions"}


_T = TypeVar("_T")


class SeedError(Exception):
    """Raised when etcd refuses a transaction or the cluster's etcd cannot be found."""


def etcd_url(cluster_directory: pathlib.Path) -> str:
    """The client URL of a `nodesmith.dev.cluster.LocalCluster`'s etcd, from its state file.

    Raises `SeedError` when the cluster has no recorded etcd port (not started by nodesmith)."""
    state_path = cluster_directory / "state.json"
    try:
        port = json.loads(state_path.read_text())["ports"]["etcd"]
    except (OSError, KeyError, ValueError) as err:
        raise SeedError(f"no etcd port recorded in {state_path}") from err
    return f"http://127.0.0.1:{port}"


def storage_key(plural: str, name: str, namespace: str | None = None) -> str:
    """Where kube-apiserver keeps an object of a core resource (``/registry/<prefix>/[<ns>/]<name>``)."""
    prefix = _PREFIX.get(plural, plural)
    return f"/registry/{prefix}/{namespace}/{name}" if namespace else f"/registry/{prefix}/{name}"


def stamped(
    template: dict[str, Any], count: int, vary: Callable[[dict[str, Any], int], None]
) -> Iterator[dict[str, Any]]:
    """`count` copies of an object read back from the API server, each with a fresh uid, no
    resourceVersion, and whatever `vary(obj, i)` changes (at least ``metadata.name``)."""
    base = copy.deepcopy(template)
    base["metadata"].pop("resourceVersion", None)
    base["metadata"].pop("generation", None)
    for i in range(count):
        obj = copy.deepcopy(base)
        obj["metadata"]["uid"] = str(uuid.uuid4())
        vary(obj, i)
        yield obj


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _put(obj: dict[str, Any], plural: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The put of ``obj`` and the compare that makes it a create: the key must not exist yet."""
    meta = obj["metadata"]
    key = _b64(storage_key(plural, meta["name"], meta.get("namespace")).encode())
    value = json.dumps(obj, separators=(",", ":")).encode()
    absent = {"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
    return absent, {"request_put": {"key": key, "value": _b64(value)}}


async def put_all(
    url: str,
    plural: str,
    objects: Iterable[dict[str, Any]],
    *,
    workers: int = WORKERS,
    per_txn: int = TXN_OPS,
) -> int:
    """Create every object under its storage key, `per_txn` puts per transaction, `workers` at a time;
    return how many were written. Never overwrites: each transaction first checks that none of its keys
    exists (an object replaced in place with a new uid or another node is something no API server does,
    and kube-scheduler exits on a pod that moves node). Raises `SeedError` if etcd refuses a transaction
    or one of its keys exists already."""
    batches = _batches((_put(obj, plural) for obj in objects), per_txn)
    written = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal written
        for batch in batches:
            body = {"compare": [absent for absent, _ in batch], "success": [put for _, put in batch]}
            response = await client.post("/v3/kv/txn", json=body)
            if response.status_code != 200:
                raise SeedError(f"etcd refused a transaction: {response.status_code} {response.text[:300]}")
            if not response.json().get("succeeded"):
                raise SeedError(
                    f"{plural}: a key of this transaction exists already; nothing of it was written"
                )
            written += len(batch)

    try:
        async with (
            httpx.AsyncClient(base_url=url, timeout=60.0) as client,
            anyio.create_task_group() as group,
        ):
            for _ in range(workers):
                group.start_soon(worker, client)
    except BaseExceptionGroup as group_error:
        # the callers' answer is one SeedError, not the workers' group
        refused, _ = group_error.split(SeedError)
        if refused is None:
            raise
        raise refused.exceptions[0] from group_error
    return written


def _batches(items: Iterator[_T], size: int) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
