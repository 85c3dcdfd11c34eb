"""The controller policy (deploy/aws/cloudformation.yaml) against the AWS calls the provider makes.

Three sets, compared by the tests:

* `granted` — the actions the ``NodesmithControllerPolicy`` allows (read from the CloudFormation file);
* `called_in_source` — the AWS operations the provider's source calls (method names matched against
  botocore's service models of the services it uses), plus `IMPLIED`, the actions AWS checks on a
  call without it being an operation of its own;
* `recorded` — the actions in a moto recording, i.e. what a run really called (the e2e test).
"""

from __future__ import annotations

import base64
import json
import pathlib
import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import parse_qs, urlparse

import botocore.session
import yaml
from botocore import xform_name

import nodesmith_aws

__all__ = ["IMPLIED", "SERVICES", "called_in_source", "granted", "recorded"]

SERVICES: Final = ("ec2", "ssm", "iam", "sqs", "eks", "pricing")
IMPLIED: Final = frozenset(
    {
        "ec2:RunInstances",  # CreateFleet launches through RunInstances permissions
        "ec2:CreateTags",  # TagSpecifications on CreateFleet / CreateLaunchTemplate
        "iam:PassRole",  # launching with an instance profile passes its role
        "iam:TagInstanceProfile",  # CreateInstanceProfile with Tags
    }
)


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Sub, !Ref, !GetAtt) as plain values."""


def _tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _tag)


def granted(template: pathlib.Path) -> set[str]:
    document = yaml.load(template.read_text(), Loader=_CfnLoader)
    policy = document["Resources"]["NodesmithControllerPolicy"]["Properties"]["PolicyDocument"]
    out: set[str] = set()
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow":
            actions = statement["Action"]
            out.update([actions] if isinstance(actions, str) else actions)
    return out


def _operations() -> dict[str, set[str]]:
    """snake_case method name → the ``service:Operation`` actions it may be."""
    session = botocore.session.get_session()
    out: dict[str, set[str]] = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        prefix = model.signing_name
        for operation in model.operation_names:
            out.setdefault(xform_name(operation), set()).add(f"{prefix}:{operation}")
    return out


def called_in_source(package: pathlib.Path | None = None) -> set[str]:
    root = package or pathlib.Path(nodesmith_aws.__file__).parent
    operations = _operations()
    names: set[str] = set()
    for path in root.rglob("*.py"):
        if "testing" in path.relative_to(root).parts:
            continue
        text = path.read_text()
        names.update(re.findall(r"\.([a-z][a-z0-9_]+)\(", text))
        names.update(re.findall(r"get_paginator\(\s*\"([a-z0-9_]+)\"", text))
    return {action for name in names for action in operations.get(name, ())} | set(IMPLIED)


_SCOPE = re.compile(r"Credential=([^/]+)/\d+/[^/]+/([^/]+)/aws4_request")


def _action(entry: dict[str, Any]) -> tuple[str, str, str] | None:
    """(access key, service, operation) of one recorded request."""
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    scope = _SCOPE.search(headers.get("authorization", ""))
    if scope is None:
        return None
    key, service = scope.groups()
    target = headers.get("x-amz-target")
    if target:
        return key, service, target.rsplit(".", 1)[-1]
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    query = {**parse_qs(urlparse(entry["url"]).query), **parse_qs(body)}
    if "Action" in query:
        return key, service, query["Action"][0]
    if service == "eks" and entry["method"] == "GET" and re.search(r"/clusters/[^/]+$", entry["url"]):
        return key, service, "DescribeCluster"
    return key, service, f"{entry['method']} {urlparse(entry['url']).path}"


def recorded(lines: Iterable[str], access_key: str) -> set[str]:
    """The ``service:Operation`` actions made with ``access_key`` in a moto recording."""
    out = set()
    for line in lines:
        if not line.strip():
            continue
        found = _action(json.loads(line))
        if found is not None and found[0] == access_key:
            out.add(f"{found[1]}:{found[2]}")
    return out
