"""The fault tests use the end-to-end scenario fixtures: a unique name, a namespace, a KWOKNodeClass and
`nodesmith run` processes that are always stopped; the AWS ones a moto server per module."""

from tests.chaos.aws_support import moto
from tests.e2e.conftest import daemons, name, namespace, node_class

__all__ = ["daemons", "moto", "name", "namespace", "node_class"]
