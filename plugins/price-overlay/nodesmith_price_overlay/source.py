"""The overlay file: where it is (``NODESMITH_PRICE_OVERLAYS``), reading it, and re-reading it when it changes.

The plugin hook asks :class:`OverlaySource` for the current overlays on every provisioning pass; the file is
parsed once and parsed again only when its modification time, size or inode changes (one ``stat`` per
call otherwise). Problems are logged, never raised: an unreadable file or invalid YAML yields no overlays,
and an invalid overlay is left out while the others load. Each problem is logged once per file version.

The file holds NodeOverlay manifests as Karpenter's ``karpenter.sh/v1alpha1`` NodeOverlay objects: several
YAML documents separated by ``---``, a ``kind: List`` with ``items``, or a plain YAML list of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
import yaml

from nodesmith_price_overlay.overlay import NodeOverlay, OverlayError, parse_overlay

__all__ = ["ENV_VAR", "Loaded", "OverlaySource", "parse_documents"]

ENV_VAR: Final = "NODESMITH_PRICE_OVERLAYS"
"""Environment variable holding the overlay file's path; unset or empty: the plugin changes nothing."""

log = logging.getLogger(__name__)


@attrs.frozen(slots=True)
class Loaded:
    """One version of the overlay file: its valid overlays (possibly none) and its identity."""

    path: str
    stamp: tuple[int, int, int] | None
    overlays: tuple[NodeOverlay, ...]


def parse_documents(documents: Sequence[Any], source: str) -> tuple[NodeOverlay, ...]:
    """Valid overlays from parsed YAML documents; each invalid one is logged (naming overlay and field)."""
    overlays: list[NodeOverlay] = []
    seen: set[str] = set()
    for index, document in enumerate(_manifests(documents)):
        try:
            overlay = parse_overlay(document, index)
            if overlay.name in seen:
                raise OverlayError(overlay.name, "metadata.name", "duplicate name; only the first is used")
        except OverlayError as err:
            log.error("price overlay file %s: %s; this overlay is ignored", source, err)
            continue
        seen.add(overlay.name)
        overlays.append(overlay)
    return tuple(overlays)


def _manifests(documents: Sequence[Any]) -> Iterator[Any]:
    for document in documents:
        if document is None:
            continue
        if isinstance(document, list):
            yield from document
        elif isinstance(document, Mapping) and document.get("kind") == "List":
            yield from document.get("items") or []
        else:
            yield document


class OverlaySource:
    """The overlays of the file named by ``NODESMITH_PRICE_OVERLAYS``, cached by the file's stat stamp."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self._env = env
        self._loaded: Loaded | None = None

    def current(self) -> Loaded | None:
        """The overlays to apply now; ``None`` when no file is configured."""
        path = self._env.get(ENV_VAR, "").strip()
        if not path:
            return None
        try:
            st = os.stat(path)
        except OSError as err:
            return self._remember(Loaded(path, None, ()), f"cannot read {path}: {err.strerror or err}")
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._loaded is not None and self._loaded.path == path and self._loaded.stamp == stamp:
            return self._loaded
        try:
            with open(path, encoding="utf-8") as handle:
                documents = list(yaml.safe_load_all(handle))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            return self._remember(Loaded(path, stamp, ()), f"cannot parse {path}: {err}")
        self._loaded = Loaded(path, stamp, parse_documents(documents, path))
        log.info("price overlays: loaded %d from %s", len(self._loaded.overlays), path)
        return self._loaded

    def _remember(self, loaded: Loaded, problem: str) -> Loaded:
        if self._loaded != loaded:
            log.error("price overlay file: %s; no overlays are applied", problem)
        self._loaded = loaded
        return loaded
