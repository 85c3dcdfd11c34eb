"""`ListStream`: the items of a JSON list response, one at a time, as its bytes arrive.

A list the API server answers from its watch cache (``resourceVersion=0``) comes in one response, not
in pages: for 150,000 pods about 430 MB of JSON. Decoded whole it would be several GB of dicts before
an informer could compact a single pod, so `nodesmith.kube.client.KubeClient.list` feeds the body here
chunk by chunk and hands each item on as soon as it is complete; only one chunk and the item being
read are held. Each item is decoded by the standard library's C scanner (``raw_decode``), so the cost
per byte is that of ``json.loads``.

Pure: no I/O. Raises `ValueError` for a body that is not a JSON object of which ``items`` is an array of objects,
or that ended early (seen by `ListStream.close`, since truncated and malformed JSON look alike until
the end).
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import json
import typing
from collections.abc import Iterator

__all__ = ["ListStream", "collector_paused"]

Obj: typing.TypeAlias = dict[str, typing.Any]

_WHITESPACE = " \t\n\r"
_ENDS_NUMBER = ",]}" + _WHITESPACE
_decoder = json.JSONDecoder()


class ListStream:
    """Feed it a list response's body in chunks; iterate what `feed` returns for the items.

    Top-level members other than ``items`` (``kind``, ``apiVersion``, ``metadata``) land in `head`."""

    def __init__(self) -> None:
        self.head: Obj = {}
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._at = 0
        # Where a parse that ran out of data started, and how long the buffer was then: a value is
        # tried again only once the buffer has doubled past it (a huge item is not re-parsed per chunk).
        self._retry_when = 0
        self._state = "start"  # start -> key -> colon -> value | items -> items... -> after_member -> done
        self._key = ""
        self._closed = False

    @property
    def done(self) -> bool:
        """Whether the closing brace of the response has been read."""
        return self._state == "done"

    def feed(self, chunk: bytes) -> Iterator[Obj]:
        """Decode ``chunk`` and yield every item it completes."""
        self._buffer += self._text.decode(chunk)
        if len(self._buffer) < self._retry_when:
            return
        self._retry_when = 0
        yield from self._parse()
        if self._at > 65536 and self._at * 2 > len(self._buffer):
            # Drop what has been read; the retry mark counts from the same start as the buffer.
            self._retry_when = max(0, self._retry_when - self._at)
            self._buffer, self._at = self._buffer[self._at :], 0

    def close(self) -> Iterator[Obj]:
        """Say that the body has ended and yield the items still held back; raises `ValueError` if it
        ended before its closing brace."""
        self._buffer += self._text.decode(b"", final=True)
        self._retry_when = 0
        self._closed = True
        yield from self._parse()
        if not self.done:
            raise ValueError(f"list response ended early (while reading {self._state})")

    # -- the parser --------------------------------------------------------------------------------

    def _skip(self) -> str:
        """Skip whitespace; the next character, or "" when the buffer has run out."""
        buffer, at = self._buffer, self._at
        while at < len(buffer) and buffer[at] in _WHITESPACE:
            at += 1
        self._at = at
        return buffer[at] if at < len(buffer) else ""

    def _value(self) -> tuple[typing.Any, bool]:
        """Decode the JSON value at the cursor: (value, True), or (None, False) if it is incomplete."""
        try:
            value, end = _decoder.raw_decode(self._buffer, self._at)
        except json.JSONDecodeError as err:
            # Truncated and malformed JSON look alike until the body has ended.
            if self._closed:
                raise ValueError(f"list response: {err}") from err
            self._retry_when = max(len(self._buffer) * 2 - self._at, len(self._buffer) + 1)
            return None, False
        # A number may continue in the next chunk ("1" of "1.5"): whole only once something ends it.
        if (
            isinstance(value, int | float)
            and not self._closed
            and (end >= len(self._buffer) or self._buffer[end] not in _ENDS_NUMBER)
        ):
            self._retry_when = len(self._buffer) + 1
            return None, False
        self._at = end
        return value, True

    def _expect(self, char: str, state: str) -> bool:
        found = self._skip()
        if not found:
            return False
        if found != char:
            raise ValueError(f"list response: expected {char!r}, found {found!r} at {self._at}")
        self._at += 1
        self._state = state
        return True

    def _parse(self) -> Iterator[Obj]:
        while True:
            state = self._state
            if state == "start":
                if not self._expect("{", "key"):
                    return
            elif state == "key":
                found = self._skip()
                if not found:
                    return
                if found == "}":
                    self._at += 1
                    self._state = "done"
                    return
                key, complete = self._value()
                if not complete:
                    return
                if not isinstance(key, str):
                    raise ValueError(f"list response: expected a member name at {self._at}")
                self._key = key
                self._state = "colon"
            elif state == "colon":
                if not self._expect(":", "items" if self._key == "items" else "value"):
                    return
            elif state == "value":
                if not self._skip():
                    return
                value, complete = self._value()
                if not complete:
                    return
                self.head[self._key] = value
                self._state = "after_member"
            elif state == "items":
                found = self._skip()
                if not found:
                    return
                if found == "n" and self._buffer.startswith("null", self._at):
                    self._at += 4
                    self._state = "after_member"
                    continue
                if not self._expect("[", "first_item"):
                    return
            elif state in ("first_item", "next_item"):
                found = self._skip()
                if not found:
                    return
                if found == "]":
                    self._at += 1
                    self._state = "after_member"
                    continue
                if state == "next_item":
                    if not self._expect(",", "first_item"):
                        return
                    continue
                item, complete = self._value()
                if not complete:
                    return
                if not isinstance(item, dict):
                    raise ValueError(f"list response: an item is not an object ({type(item).__name__})")
                self._state = "next_item"
                yield item
            elif state == "after_member":
                found = self._skip()
                if not found:
                    return
                if found == "}":
                    self._at += 1
                    self._state = "done"
                    return
                if not self._expect(",", "key"):
                    return
            else:  # done
                if self._skip():
                    raise ValueError(f"list response: data after the closing brace at {self._at}")
                return


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause CPython's cycle collector for a synchronous block that decodes or stores a large list.

    Every decoded object survives such a block, and the collector runs a full pass each time the
    surviving objects grow by a quarter: listing 150,000 pods cost twice the CPU with it running
    (issue 19 notes), and the JSON it scanned has no cycles to free. Only for blocks with no ``await``,
    so no other task allocates while it is paused."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
