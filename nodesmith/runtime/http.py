"""A tiny HTTP/1.1 server for ``/healthz``, ``/readyz``, ``/metrics`` and ``/decisions``, on anyio.

Four GET endpoints that answer quickly do not justify a web framework and an ASGI server as
dependencies; this serves one request per connection and closes it, which is all kubelet probes,
Prometheus and ``nodesmith explain decisions`` need. The runtime starts it in its task group (``serve`` reports ready through
``task_status``) and stops it by cancelling the group.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

__all__ = ["Handler", "Response", "serve"]

log = logging.getLogger(__name__)

Response = tuple[int, str, bytes]
"""(status code, content type, body)."""
Handler = Callable[[], Awaitable[Response]]

_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


async def serve(
    port: int,
    routes: Mapping[str, Handler],
    *,
    host: str = "0.0.0.0",
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``routes`` (path → handler) on ``host:port`` until cancelled; reports the bound port."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port, reuse_port=False)
    async with listener:
        bound = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started(bound)
        await listener.serve(lambda stream: _handle(stream, routes))


async def _handle(stream: anyio.abc.SocketStream, routes: Mapping[str, Handler]) -> None:
    async with stream:
        try:
            with anyio.fail_after(10):
                buffered = BufferedByteReceiveStream(stream)
                request_line = await buffered.receive_until(b"\r\n", 8192)
                await buffered.receive_until(b"\r\n\r\n", 65536)
                method, _, rest = request_line.decode("latin-1").partition(" ")
                path = rest.split(" ", 1)[0].split("?", 1)[0]
                handler = routes.get(path)
                if method != "GET":
                    status, ctype, body = 405, "text/plain", b"method not allowed\n"
                elif handler is None:
                    status, ctype, body = 404, "text/plain", b"not found\n"
                else:
                    try:
                        status, ctype, body = await handler()
                    except Exception:
                        log.exception("handler for %s failed", path)
                        status, ctype, body = 500, "text/plain", b"internal error\n"
                head = (
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
                    f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                await stream.send(head.encode("latin-1") + body)
        except (
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.BrokenResourceError,
            TimeoutError,
            anyio.DelimiterNotFound,
        ):
            return
