"""MIME multipart user data, as cloud-init and nodeadm read it: parse the user's parts, write an archive.

Used by `nodeadm` (AL2023) and `eksbootstrap` (AL2). A user's ``spec.userData`` is either a MIME archive
(it starts with ``MIME-Version:`` or ``Content-Type:``) whose parts are kept as they are, or a single
document that becomes one part: a NodeConfig when it reads as a YAML mapping, else a shell script.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Sequence
from typing import Final

import attrs
import yaml

from nodesmith_aws.bootstrap.options import UserDataError

__all__ = ["NODE_CONFIG", "SHELL", "Part", "archive", "user_parts"]

NODE_CONFIG: Final = "application/node.eks.aws"
SHELL: Final = 'text/x-shellscript; charset="us-ascii"'
_BOUNDARIES: Final = ("//", "==NODESMITH==", "==NODESMITH-BOUNDARY-2==")


@attrs.frozen(slots=True)
class Part:
    content_type: str
    body: str
    headers: tuple[tuple[str, str], ...] = ()
    """Other headers of a user's part (``Content-Transfer-Encoding`` ...), kept as written."""


def _is_mime(text: str) -> bool:
    head = text.lstrip()
    return head.startswith(("MIME-Version:", "Content-Type:"))


def user_parts(user: str | None) -> list[Part]:
    """The user's parts, in order; raises `UserDataError` when a MIME archive cannot be read."""
    if not user:
        return []
    if not _is_mime(user):
        try:
            loaded = yaml.safe_load(user)
        except yaml.YAMLError:
            loaded = None
        return [Part(NODE_CONFIG if isinstance(loaded, dict) else SHELL, user)]
    message = email.message_from_string(user.lstrip(), policy=email.policy.compat32)
    if message.get_content_maintype() != "multipart":
        raise UserDataError(f"userData is MIME but not multipart (Content-Type {message.get_content_type()})")
    boundary = message.get_boundary()
    if not boundary or f"--{boundary}" not in user or not message.is_multipart():
        raise UserDataError(f"userData is a MIME archive without its boundary {boundary!r}")
    parts = []
    for index, part in enumerate(message.get_payload()):
        content_type = part.get("Content-Type")
        if not content_type:
            raise UserDataError(f"userData MIME part {index} has no Content-Type")
        body = part.get_payload()
        if not isinstance(body, str):
            raise UserDataError(f"userData MIME part {index} is itself multipart")
        others = tuple((k, str(v)) for k, v in part.items() if k.lower() not in ("content-type",))
        parts.append(Part(str(content_type), body, others))
    return parts


def archive(parts: Sequence[Part]) -> str:
    """One ``multipart/mixed`` document with ``parts`` in order."""
    boundary = next(b for b in _BOUNDARIES if not any(f"--{b}" in p.body for p in parts))
    out = [f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{boundary}"\n']
    for part in parts:
        headers = "".join(f"{k}: {v}\n" for k, v in part.headers)
        body = part.body if part.body.endswith("\n") else part.body + "\n"
        out.append(f"--{boundary}\nContent-Type: {part.content_type}\n{headers}\n{body}")
    out.append(f"--{boundary}--\n")
    return "\n".join(out)
