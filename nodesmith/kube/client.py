"""`KubeClient`: typed, plain-dict access to the Kubernetes API over kr8s's asyncio ``Api``.

Fed by a kubeconfig path or the in-cluster service account (kr8s finds credentials, renews tokens and
re-authenticates on 401/403). Consumed by the informers in `nodesmith.state` (``list`` + ``watch``),
every reconciler (CRUD, patches, eviction, status), `nodesmith.kube.events` and `nodesmith.kube.leases`.

Why not kr8s's object classes: the cache and the simulation work on plain dicts, the informers need
``resourceVersion`` of a list and watch bookmarks (which kr8s's ``watch`` does not expose), and every
call must fail with one typed error (`nodesmith.kube.errors`). So all calls go through kr8s's public
escape hatch, ``Api.call_api``, with URLs built by `nodesmith.kube.resources.Resource`. Objects in and
out are JSON-shaped dicts; nothing here mutates a dict it was given.

Every method documents its retry policy (see `nodesmith.kube.retry`).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import os
import typing
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence

import httpx
import kr8s
import kr8s.asyncio

from nodesmith.kube import errors, retry
from nodesmith.kube.liststream import ListStream, collector_paused
from nodesmith.kube.resources import PODS, Resource
from nodesmith.kube.results import ListResult, WatchEvent

__all__ = ["JSON_PATCH", "MERGE_PATCH", "KubeClient", "ListResult", "WatchEvent"]

log = logging.getLogger(__name__)

Obj: typing.TypeAlias = dict[str, typing.Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

#: Seconds a non-watch request may take before it fails with `errors.APIUnavailableError` (for a
#: streamed list: the longest silence between two chunks).
DEFAULT_TIMEOUT = 30.0

#: Bytes of a list answered whole decoded at a time (fewer, larger pieces cost less Python per byte).
_STREAM_CHUNK = 1 << 20


def _split(path: str) -> tuple[str, str]:
    """kr8s joins ``base`` and ``url`` with "/"; give it the path as (everything but the last part, last)."""
    base, _, last = path.rpartition("/")
    return base, last


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _body(response: httpx.Response) -> Mapping[str, typing.Any] | str:
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):
        try:
            return response.text
        except httpx.ResponseNotRead:
            return ""
    return body if isinstance(body, Mapping) else str(body)


def _raise_for_status(response: httpx.Response) -> None:
    """Raise the typed error for an error response (kr8s is asked not to raise, see `KubeClient.request`)."""
    if response.is_error:
        raise errors.from_status(response.status_code, _body(response), retry_after=_retry_after(response))


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn kr8s/httpx failures of the request described by ``what`` into `nodesmith.kube.errors`."""
    try:
        yield
    except kr8s.ServerError as err:
        response = err.response
        if response is None:
            raise errors.ServerError(f"{what}: {err}") from err
        raise errors.from_status(
            response.status_code, _body(response), retry_after=_retry_after(response)
        ) from err
    except httpx.HTTPStatusError as err:  # kr8s re-raises 1xx/3xx unchanged; never expected
        raise errors.from_status(err.response.status_code, _body(err.response)) from err
    except kr8s.APITimeoutError as err:
        raise errors.APIUnavailableError(f"{what}: timed out") from err
    except httpx.ConnectError as err:
        raise errors.APIUnavailableError(f"{what}: cannot connect: {err}", request_sent=False) from err
    except (httpx.TransportError, httpx.StreamError) as err:
        raise errors.APIUnavailableError(f"{what}: {type(err).__name__}: {err}") from err


def _inflated(body: collections.deque[bytes], *, gzip: bool) -> Iterator[bytes]:
    """The body's bytes in pieces of about `_STREAM_CHUNK`, gunzipped if ``gzip``; consumes ``body``
    as it goes, so the compressed and the decoded body are never both held whole."""
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if gzip else None
    pending = bytearray()
    while body:
        chunk = body.popleft()
        pending += inflate.decompress(chunk) if inflate is not None else chunk
        if len(pending) >= _STREAM_CHUNK:
            yield bytes(pending)
            pending.clear()
    if inflate is not None:
        pending += inflate.flush()
        if not inflate.eof:
            raise ValueError("the gzip stream ended early")
    if pending:
        yield bytes(pending)


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    """The query parameters for the selectors given."""
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _kept(resource: Resource, raw: Sequence[Obj], each: Callable[[Obj], Obj | None] | None) -> list[Obj]:
    """Listed objects with their kind filled in, through ``each`` (None dropping one) if given; with the
    collector paused, as everything kept from a list survives (`collector_paused`)."""
    listed = _with_kind(resource, raw)
    if each is None:
        return listed
    with collector_paused():
        return [kept for obj in listed if (kept := each(obj)) is not None]


def _with_kind(resource: Resource, items: Sequence[Obj]) -> list[Obj]:
    for item in items:
        item.setdefault("kind", resource.kind)
        item.setdefault("apiVersion", resource.api_version)
    return list(items)


def _meta(obj: Mapping[str, typing.Any]) -> Mapping[str, typing.Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


@typing.final
class KubeClient:
    """Async Kubernetes client returning plain dicts; build it with `KubeClient.connect`.

    Names follow the API: ``namespace`` is required for namespaced resources' objects and ignored for
    cluster-scoped ones. Every method raises `nodesmith.kube.errors.KubeError` subclasses only.
    """

    def __init__(self, api: kr8s.asyncio.Api, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._api = api
        self.timeout = timeout

    @classmethod
    async def connect(
        cls,
        kubeconfig: str | os.PathLike[str] | None = None,
        *,
        context: str | None = None,
        serviceaccount: str | None = None,
        request_timeout: float = DEFAULT_TIMEOUT,
    ) -> KubeClient:
        """Connect with a kubeconfig (or ``$KUBECONFIG``/``~/.kube/config``), else the in-cluster
        service account. Raises `errors.APIUnavailableError` if the API server does not answer."""
        with _translated("connect"):
            api = await kr8s.asyncio.api(
                kubeconfig=os.fspath(kubeconfig) if kubeconfig is not None else None,
                context=context,
                serviceaccount=serviceaccount,
            )
        return cls(api, timeout=request_timeout)

    @property
    def server(self) -> str:
        """The API server's base URL."""
        return str(self._api.auth.server)

    # -- the one request path --------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: typing.Any = None,
        content_type: str = "application/json",
        request_timeout: float | None = None,
    ) -> Obj:
        """One HTTP call to ``path`` (``/api/v1/...``), JSON in and out; no retry. Raises `KubeError`."""
        base, url = _split(path)
        kwargs: dict[str, typing.Any] = {"timeout": request_timeout or self.timeout}
        if params:
            kwargs["params"] = dict(params)
        if body is not None:
            kwargs["content"] = json.dumps(body)
            kwargs["headers"] = {"Content-Type": content_type}
        for attempt in (1, 2):
            with _translated(f"{method} {path}"):
                async with self._api.call_api(
                    method, version="", base=base, url=url, raise_for_status=False, **kwargs
                ) as response:
                    if response.status_code == 401 and attempt == 1:
                        await self._reauthenticate()
                        continue
                    _raise_for_status(response)
                    if not response.content:
                        return {}
                    data = response.json()
            return data if isinstance(data, dict) else {"items": data}
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.asynccontextmanager
    async def _streamed_get(
        self,
        path: str,
        params: Mapping[str, str],
        timeout: float | httpx.Timeout,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A GET whose body is read as it comes; raises the typed error for an error answer (after
        reloading credentials on a 401). Wrap it in `_translated`."""
        base, url = _split(path)
        async with self._api.call_api(
            "GET",
            version="",
            base=base,
            url=url,
            stream=True,
            params=dict(params),
            headers=dict(headers or {}),
            timeout=timeout,
            raise_for_status=False,
        ) as response:
            if response.is_error:
                await response.aread()
                if response.status_code == 401:
                    await self._reauthenticate()
                _raise_for_status(response)
            yield response

    async def _reauthenticate(self) -> None:
        """Reload credentials after a 401 (an expired or rotated token). kr8s would also do this on a 403 and
        recreate its HTTP session, dropping every open watch; a 403 is an authorization answer (say, "namespace
        is being terminated"), so nodesmith asks kr8s not to raise and decides here."""
        log.info("API server answered 401; reloading credentials")
        await self._api.reauthenticate()

    async def _call(self, policy: retry.Policy, fn: Callable[[], Awaitable[Obj]]) -> Obj:
        return await retry.call(policy, fn)

    # -- reads -----------------------------------------------------------------------------------

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        """The object, with ``kind``/``apiVersion``. Raises `errors.NotFoundError`. Retries `retry.SAFE`."""
        path = resource.path(namespace, name)
        obj = await self._call(retry.SAFE, lambda: self.request("GET", path))
        return _with_kind(resource, [obj])[0]

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        each: Callable[[Obj], Obj | None] | None = None,
        resource_version: str = "",
    ) -> ListResult:
        """Every object and the list's resourceVersion, from which a watch continues.

        ``resource_version=""`` (the default) is a consistent read, paged ``page_size`` at a time at one
        resourceVersion: each page retried with `retry.SAFE`, an expired continue token (410) restarting
        the list once. ``resource_version="0"`` accepts any version the API server has: it answers from
        its watch cache in one response, without touching etcd, as client-go's informers list at
        start-up. That response is read whole but still compressed, then decoded item by item
        (`nodesmith.kube.liststream`); it is retried whole with `retry.SAFE`. At 150,000 pods it costs
        the API server about a fifth of the CPU of the paged read, and etcd nothing.

        ``each``, if given, is applied to every object as it arrives and the result holds what it
        returns (None drops the object): an informer's compaction then runs item by item, so listing
        150,000 pods never holds 150,000 raw pods at once (their decoded JSON is several times the
        compacted size, and CPython keeps the freed arenas as RSS)."""
        path = resource.path(namespace)
        if resource_version:
            return await retry.call(
                retry.SAFE,
                functools.partial(
                    self._list_streamed,
                    resource,
                    path,
                    label_selector,
                    field_selector,
                    resource_version,
                    page_size,
                    each,
                ),
            )
        for attempt in range(2):
            try:
                return await self._list_pages(resource, path, label_selector, field_selector, page_size, each)
            except errors.GoneError:
                if attempt:
                    raise
                log.info("list %s: continue token expired, listing again", resource.name)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _list_streamed(
        self,
        resource: Resource,
        path: str,
        label_selector: str | None,
        field_selector: str | None,
        resource_version: str,
        page_size: int,
        each: Callable[[Obj], Obj | None] | None,
    ) -> ListResult:
        """One list request at ``resource_version``, its items decoded one at a time. A server
        that pages it anyway (a continue token) is followed with consistent pages from that token."""
        params = {"resourceVersion": resource_version, **_selectors(label_selector, field_selector)}
        items: list[Obj] = []
        stream = ListStream()

        def take(objects: Iterator[Obj]) -> None:
            items.extend(_kept(resource, list(objects), each))

        what = f"list {resource.name}"
        with _translated(what):
            async with self._streamed_get(
                path, params, self.timeout, headers={"Accept-Encoding": "gzip"}
            ) as response:
                encoding = response.headers.get("Content-Encoding", "identity").lower()
                if encoding not in ("gzip", "identity"):
                    raise errors.APIUnavailableError(f"{what}: unexpected Content-Encoding {encoding!r}")
                # The API server ends a request still running after its --request-timeout (60 s by
                # default), however slowly its reader decodes. So the body is taken as fast as it comes,
                # still compressed (about a tenth of its size), and decoded afterwards.
                body = collections.deque([chunk async for chunk in response.aiter_raw()])
        try:
            with collector_paused():  # the decoding too: every item it makes is kept
                for text in _inflated(body, gzip=encoding == "gzip"):
                    take(stream.feed(text))
                take(stream.close())
        except (ValueError, zlib.error) as err:
            raise errors.APIUnavailableError(f"{what}: unreadable answer: {err}") from err
        meta = stream.head.get("metadata") or {}
        version = str(meta.get("resourceVersion", "")) if isinstance(meta, dict) else ""
        token = meta.get("continue") if isinstance(meta, dict) else None
        if token:
            rest = await self._list_pages(
                resource, path, label_selector, field_selector, page_size, each, token
            )
            items.extend(rest.items)
        return ListResult(items, version)

    async def _list_pages(
        self,
        resource: Resource,
        path: str,
        label_selector: str | None,
        field_selector: str | None,
        page_size: int,
        each: Callable[[Obj], Obj | None] | None,
        token: str = "",
    ) -> ListResult:
        items: list[Obj] = []
        params = {"limit": str(page_size), **_selectors(label_selector, field_selector)}
        if token:
            params["continue"] = token
        resource_version = ""
        while True:
            page = await self._call(
                retry.SAFE, functools.partial(self.request, "GET", path, params=dict(params))
            )
            items.extend(_kept(resource, page.get("items") or [], each))
            meta = page.get("metadata") or {}
            resource_version = resource_version or str(meta.get("resourceVersion", ""))
            following = meta.get("continue")
            if not following:
                return ListResult(items, resource_version)
            params["continue"] = str(following)

    # -- writes ----------------------------------------------------------------------------------

    async def create(
        self, resource: Resource, obj: Mapping[str, typing.Any], namespace: str | None = None
    ) -> Obj:
        """Create ``obj``; its namespace is ``namespace`` or ``obj.metadata.namespace``. Raises
        `errors.AlreadyExistsError`, `errors.InvalidError`. Retries `retry.UNSAFE` only."""
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        ns = (namespace or _meta(obj).get("namespace")) if resource.namespaced else None
        path = resource.path(ns)
        return await self._call(retry.UNSAFE, lambda: self.request("POST", path, body=body))

    async def replace(
        self, resource: Resource, obj: Mapping[str, typing.Any], *, subresource: str | None = None
    ) -> Obj:
        """PUT ``obj`` whole; its ``metadata.resourceVersion`` (required) is the optimistic lock.
        Raises `errors.ConflictError` if the object changed. Retries `retry.SAFE`."""
        meta = _meta(obj)
        if not meta.get("resourceVersion"):
            raise ValueError("replace needs metadata.resourceVersion (the optimistic lock)")
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        path = resource.path(
            meta.get("namespace") if resource.namespaced else None, meta["name"], subresource
        )
        return await self._call(retry.SAFE, lambda: self.request("PUT", path, body=body))

    async def merge_patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, typing.Any],
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        """JSON merge patch (RFC 7386). With ``resource_version`` it is an optimistic lock (409 on
        change) -- use it whenever the patch replaces a list (finalizers, taints). Retries `retry.SAFE`."""
        body = dict(patch)
        if resource_version is not None:
            body["metadata"] = {**(body.get("metadata") or {}), "resourceVersion": resource_version}
        path = resource.path(namespace, name, subresource)
        return await self._call(
            retry.SAFE, lambda: self.request("PATCH", path, body=body, content_type=MERGE_PATCH)
        )

    async def json_patch(
        self,
        resource: Resource,
        name: str,
        operations: Sequence[Mapping[str, typing.Any]],
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        """JSON patch (RFC 6902) guarded by preconditions -- the safe way to edit one entry of a list
        field (``remove /metadata/finalizers/2`` must hit the entry you read).

        ``uid`` becomes a leading ``test /metadata/uid`` operation; ``resource_version`` a leading
        ``replace /metadata/resourceVersion`` (the API server treats a resourceVersion in the patched
        object as an optimistic lock and answers 409, whereas a failed ``test`` only yields a bare 422).
        Raises `errors.ConflictError` when either precondition fails (on a bare 422 the object is read
        again to tell a UID mismatch from a bad patch, which stays `errors.InvalidError`), and
        `errors.NotFoundError` when the object is gone. Retries `retry.SAFE` with preconditions,
        `retry.UNSAFE` without."""
        ops: list[Mapping[str, typing.Any]] = []
        if uid is not None:
            ops.append({"op": "test", "path": "/metadata/uid", "value": uid})
        if resource_version is not None:
            ops.append({"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version})
        ops.extend(operations)
        path = resource.path(namespace, name, subresource)
        policy = retry.SAFE if (uid or resource_version) else retry.UNSAFE

        async def attempt() -> Obj:
            try:
                return await self.request("PATCH", path, body=ops, content_type=JSON_PATCH)
            except errors.InvalidError as err:
                if uid is None:
                    raise
                current = await self.request("GET", resource.path(namespace, name))
                if _meta(current).get("uid") == uid:
                    raise
                raise errors.ConflictError(
                    f"{resource.kind} {name}: precondition failed: uid is {_meta(current).get('uid')}, not {uid}",
                    status=409,
                    reason="Conflict",
                ) from err

        return await self._call(policy, attempt)

    async def update_status(
        self,
        resource: Resource,
        name: str,
        status: Mapping[str, typing.Any],
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> Obj:
        """Merge-patch ``status`` through the status subresource (``{"status": status}``); with
        ``resource_version`` as optimistic lock. Retries `retry.SAFE`."""
        return await self.merge_patch(
            resource,
            name,
            {"status": status},
            namespace,
            resource_version=resource_version,
            subresource="status",
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> Obj:
        """Delete, optionally only if ``uid``/``resource_version`` still match (else `errors.ConflictError`).
        Returns the object as the server left it (with ``deletionTimestamp`` while finalizers remain) or
        a Status. Raises `errors.NotFoundError` when already gone. Retries `retry.SAFE`."""
        options: dict[str, typing.Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            options["preconditions"] = preconditions
        if propagation:
            options["propagationPolicy"] = propagation
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        path = resource.path(namespace, name)
        return await self._call(retry.SAFE, lambda: self.request("DELETE", path, body=options))

    async def evict(
        self,
        name: str,
        namespace: str,
        *,
        uid: str | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> None:
        """Evict a pod through the Eviction subresource (PDB-aware).

        Raises `errors.EvictionBlockedError` (429: a PDB forbids it now; retry later),
        `errors.NotFoundError` (404: pod gone, treat as done), `errors.ConflictError` (409: the
        ``uid`` precondition failed, i.e. a new pod took the name -- also done),
        `errors.ServerError` (500: typically more than one PDB covers the pod). Retries `retry.EVICT`.
        """
        body: dict[str, typing.Any] = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        delete_options: dict[str, typing.Any] = {}
        if uid:
            delete_options["preconditions"] = {"uid": uid}
        if grace_period_seconds is not None:
            delete_options["gracePeriodSeconds"] = grace_period_seconds
        if dry_run:
            delete_options["dryRun"] = ["All"]
        if delete_options:
            body["deleteOptions"] = delete_options
        path = PODS.path(namespace, name, "eviction")

        async def attempt() -> Obj:
            try:
                return await self.request("POST", path, body=body)
            except errors.TooManyRequestsError as err:
                raise errors.EvictionBlockedError(
                    err.message,
                    status=err.status,
                    reason=err.reason,
                    details=err.details,
                    retry_after=err.retry_after,
                ) from err

        await self._call(retry.EVICT, attempt)

    async def mutate(
        self,
        resource: Resource,
        name: str,
        change: Callable[[Obj], Obj | None],
        namespace: str | None = None,
        *,
        attempts: int = 5,
        subresource: str | None = None,
    ) -> Obj:
        """Read-modify-write with optimistic locking: ``change(current)`` returns the new object (or
        None for "nothing to do"), which is PUT with the read resourceVersion; on 409 re-read and call
        ``change`` again, up to ``attempts`` times (client-go's RetryOnConflict). ``change`` must be a
        pure function of its argument and may mutate it."""
        for attempt in range(attempts):
            current = await self.get(resource, name, namespace)
            wanted = change(current)
            if wanted is None:
                return current
            try:
                return await self.replace(resource, wanted, subresource=subresource)
            except errors.ConflictError:
                if attempt == attempts - 1:
                    raise
                log.debug("mutate %s %s: conflict, re-reading", resource.kind, name)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- watch -----------------------------------------------------------------------------------

    async def watch(
        self,
        resource: Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int = 300,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncGenerator[WatchEvent, None]:
        """Yield events after ``resource_version`` until the server ends the watch (about
        ``timeout_seconds``). Raises `errors.GoneError` when the version is too old (relist), other
        `KubeError`s for failed connections. Never retries. Close it with ``contextlib.aclosing``."""
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true" if allow_bookmarks else "false",
            "timeoutSeconds": str(timeout_seconds),
            **_selectors(label_selector, field_selector),
        }
        what = f"watch {resource.name}"
        # The read timeout bounds silence: bookmarks arrive about once a minute, events more often.
        timeout = httpx.Timeout(self.timeout, read=timeout_seconds + self.timeout)
        with _translated(what):
            async with self._streamed_get(resource.path(namespace), params, timeout) as response:
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                        kind, obj = event["type"], event["object"]
                    except (ValueError, KeyError, TypeError) as err:
                        raise errors.APIUnavailableError(f"{what}: unreadable event {line[:200]!r}") from err
                    if kind == "ERROR":
                        code = int(obj.get("code") or 500) if isinstance(obj, Mapping) else 500
                        raise errors.from_status(code, obj if isinstance(obj, Mapping) else str(obj))
                    if kind != "BOOKMARK":
                        obj.setdefault("kind", resource.kind)
                        obj.setdefault("apiVersion", resource.api_version)
                    yield WatchEvent(kind, obj)
